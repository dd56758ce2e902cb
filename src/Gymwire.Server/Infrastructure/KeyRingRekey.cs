using System.CommandLine;
using System.Security.Cryptography;
using System.Xml.Linq;
using Gymwire.Features.Cluster;

namespace Gymwire.Infrastructure;

// `gymwire key-ring rekey`: re-encrypts the key ring's master keys with a new key-encryption key, for an operator whose
// key file leaked. The master keys themselves stay the same, so every secret and session they protect still decrypts;
// afterwards only the new key opens the key ring.
public static partial class KeyRingSetup
{
    public static Command CliCommand(string[] args)
    {
        var keyRing = new Command("key-ring", "The Data Protection key ring in the database and the key-encryption key that encrypts it.");
        var newKeyFile = new Option<string>("--new-key-file")
        {
            Description = "The new key-encryption key's file: read if it exists (32 bytes in base64), else created with a random key (0600).",
            Required = true,
        };
        var rekey = new Command("rekey",
            "Re-encrypt the key ring with a new key-encryption key, every node stopped. The current key is left in place: swap it for the new one before starting.")
        {
            newKeyFile,
        };
        rekey.TreatUnmatchedTokensAsErrors = false;
        rekey.SetAction((parse, ct) => GymwireCli.AdminAsync(args, (services, ct2) => RekeyAsync(services, parse.GetValue(newKeyFile)!, ct2), ct));
        keyRing.Subcommands.Add(rekey);
        return keyRing;
    }

    private static async Task<GymwireCli.CommandResult> RekeyAsync(IServiceProvider services, string newKeyFile, CancellationToken ct)
    {
        var current = services.GetRequiredService<KeyEncryptionKey>();
        var db = services.GetRequiredService<GymwireDbContext>();
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(KeyRingSetup).FullName!);

        // A running node holds the old key and would encrypt the next key it makes with it, which the new key cannot open.
        var now = services.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime;
        var cluster = services.GetRequiredService<IOptions<ClusterOptions>>().Value;
        var live = (await ClusterHeartbeat.StatusAsync(db, now, cluster, ct)).Where(n => n.State == "live").ToList();
        if (live.Count > 0)
        {
            // Liveness as `cluster status` reads it: a node killed without a clean stop counts as running until its
            // heartbeat is Cluster:DeadAfter old, so the operator who just killed the last node is told when that is.
            // The whole second after the last heartbeat's expiry: a node is live up to and including that instant.
            var expiry = live.Max(n => n.LastSeenAt) + cluster.DeadAfter;
            var retryAt = expiry.AddTicks(TimeSpan.TicksPerSecond - expiry.Ticks % TimeSpan.TicksPerSecond);
            var wait = (int)Math.Ceiling((retryAt - now).TotalSeconds);
            return GymwireCli.Fail($"{live.Count} node(s) of this database are running (gymwire cluster status): stop every node, then rekey. " +
                $"A node stopped without a clean stop (killed) counts as running for {(int)cluster.DeadAfter.TotalSeconds} s after its last heartbeat " +
                $"(Cluster:HeartbeatInterval x Cluster:DeadAfterMissedHeartbeats): if every node is stopped, retry after {retryAt.ToString("u", CultureInfo.InvariantCulture)} (in {wait} s)");
        }

        var path = Path.GetFullPath(newKeyFile);
        byte[] key;
        bool created;
        try
        {
            (key, created) = File.Exists(path) ? (ReadKeyFile(path, $"the key file {path}", logger), false) : CreateKeyFile(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return GymwireCli.Fail($"cannot create the key file {path}: {e.Message}");
        }
        var next = KeyEncryptionKey.From(key);
        if (next.Id == current.Id)
        {
            return GymwireCli.Fail($"{path} holds the key-encryption key in use ({current.Id}): give a new key");
        }

        var encryptor = new KeyRingEncryptor(next);
        var rekeyed = 0;
        await using (var transaction = await db.Database.BeginTransactionAsync(ct))
        {
            if (db.Provider == DatabaseProvider.Postgres)
            {
                // No key is added or changed meanwhile, so none is left encrypted with the old key.
                await db.Database.ExecuteSqlRawAsync("LOCK TABLE data_protection_keys IN SHARE ROW EXCLUSIVE MODE", ct);
            }
            var rows = await db.DataProtectionKeys.AsNoTracking().Where(r => r.Xml != null).ToListAsync(ct);
            foreach (var row in rows)
            {
                var xml = XElement.Parse(row.Xml!);
                var secrets = xml.Descendants(EncryptedSecret).Where(IsOurs).Select(e => e.Elements().Single()).ToList();
                if (secrets.Count == 0)
                {
                    continue;
                }
                foreach (var secret in secrets)
                {
                    secret.ReplaceWith(encryptor.Encrypt(KeyRingDecryptor.Decrypt(secret, current)).EncryptedElement);
                }
                var updated = xml.ToString(SaveOptions.DisableFormatting);
                await db.DataProtectionKeys.Where(k => k.Id == row.Id).ExecuteUpdateAsync(s => s.SetProperty(k => k.Xml, updated), ct);
                rekeyed++;
            }
            await transaction.CommitAsync(ct);
        }
        LogRekeyed(logger, rekeyed, current.Id!, next.Id!);
        // The rows' old versions, encrypted with the old key, would otherwise stay in the database's free space.
        await RemoveOldCopiesAsync(db, logger, ct);
        return GymwireCli.Ok(new
        {
            rekeyed_keys = rekeyed,
            old_key_id = current.Id,
            new_key_id = next.Id,
            new_key_file = path,
            new_key_file_created = created,
            note = "the key ring now opens with the new key only: give every node the new key (in place of the old key file, or as " +
                "DataProtection:KeyFile or DataProtection:Key) before starting it, and back the new key up apart from the database",
        });
    }

    private static (byte[] Key, bool Created) CreateKeyFile(string path)
    {
        var key = RandomNumberGenerator.GetBytes(KeyEncryptionKey.Size);
        return OwnerOnlyFile.TryCreate(path, Convert.ToBase64String(key) + "\n")
            ? (key, true)
            : (Decode(File.ReadAllText(path), $"the key file {path}"), false); // made by someone else meanwhile
    }

    [LoggerMessage(EventId = 1107, Level = LogLevel.Information, Message = "Re-encrypted {Count} Data Protection keys: key-encryption key {OldKeyId} replaced by {NewKeyId}")]
    private static partial void LogRekeyed(ILogger logger, int count, string oldKeyId, string newKeyId);
}
