using System.Data.Common;
using System.Security.Cryptography;
using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gymwire.Infrastructure;

/// <summary>A start that cannot use the key ring: the key-encryption key is missing, wrong or malformed.</summary>
public sealed class KeyRingException(string message) : Exception(message);

/// <summary>
/// Loads the key-encryption key at start, before anything reads or writes the key ring, and makes sure it is the one the
/// key ring was encrypted with. A missing or wrong key with an encrypted key ring stops the start: Data Protection,
/// finding no key it can use, would otherwise create a new one, and every stored secret and session would be lost
/// without a word. Master keys stored unencrypted (by Gymwire before it encrypted them) are encrypted in place, with the
/// same key id, so what they protect still decrypts.
/// </summary>
public static partial class KeyRingSetup
{
    private static readonly XNamespace DataProtectionNamespace = "http://schemas.asp.net/2015/03/dataProtection";
    private static readonly XName EncryptedSecret = DataProtectionNamespace + "encryptedSecret";
    private static readonly XName RequiresEncryption = DataProtectionNamespace + "requiresEncryption";

    private const string MakeOne = "Make one with `openssl rand -base64 32 > gymwire.key && chmod 600 gymwire.key`";

    /// <summary>
    /// The log category of the notice that a key file was created (1102), apart from the key ring's other lines so
    /// that the admin commands, which log warnings only, still show it: the operator must back the file up.
    /// </summary>
    public static readonly string KeyFileCreatedCategory = typeof(KeyRingSetup).FullName + ".KeyFileCreated";

    /// <summary>Loads the key once per process; later calls return at once.</summary>
    public static async Task PrepareAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        var kek = services.GetRequiredService<KeyEncryptionKey>();
        if (kek.IsLoaded)
        {
            return;
        }
        var options = services.GetRequiredService<IOptions<KeyRingOptions>>().Value;
        var loggers = services.GetRequiredService<ILoggerFactory>();
        var logger = loggers.CreateLogger(typeof(KeyRingSetup).FullName!);
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();

        var rows = await db.DataProtectionKeys.AsNoTracking().ToListAsync(cancellationToken);
        var keys = rows.Where(r => r.Xml is not null).Select(r => (Row: r, Xml: XElement.Parse(r.Xml!))).ToList();
        var encrypted = EncryptedKeys(keys.Select(k => k.Xml));
        var encryptedWith = KeyIds(encrypted);

        var (key, source) = await LoadOrCreateAsync(options, db, encryptedWith, logger, loggers.CreateLogger(KeyFileCreatedCategory));
        var candidate = KeyEncryptionKey.From(key);
        var undecryptable = encrypted.Count(e => !CanDecrypt(e, candidate));
        if (undecryptable > 0)
        {
            throw new KeyRingException(
                $"{undecryptable} of the {encrypted.Count} encrypted Data Protection keys in the database cannot be decrypted with the key-encryption key " +
                $"{candidate.Id} from {source}; the key ring was encrypted with {string.Join(", ", encryptedWith)}. Configure the key it was encrypted with " +
                "(DataProtection:KeyFile or DataProtection:Key): without it, stored webhook and Stripe secrets and signed-in sessions cannot be decrypted.");
        }
        kek.Load(key);
        LogLoaded(logger, kek.Id!, source);

        var encryptor = new KeyRingEncryptor(kek);
        var reprotected = 0;
        foreach (var (row, xml) in keys)
        {
            if (!xml.DescendantsAndSelf().Any(IsUnencrypted))
            {
                continue;
            }
            var updated = Encrypt(xml, encryptor).ToString(SaveOptions.DisableFormatting);
            var old = row.Xml;
            // Conditional, so that of two nodes doing this at once neither overwrites a row the other changed since.
            reprotected += await db.DataProtectionKeys.Where(k => k.Id == row.Id && k.Xml == old)
                .ExecuteUpdateAsync(s => s.SetProperty(k => k.Xml, updated), cancellationToken);
        }
        if (reprotected > 0)
        {
            LogReprotected(logger, reprotected);
            await RemoveOldCopiesAsync(db, logger, cancellationToken);
        }
    }

    /// <summary>
    /// An updated row's old bytes (unencrypted, or encrypted with a replaced key) stay in the database's free space (and,
    /// on SQLite, in old frames of the write-ahead log) until something overwrites them, and a copy of the file carries
    /// them. Rebuilding the table (PostgreSQL) or the file (SQLite) leaves none. If that fails, the command goes on and
    /// the log says what to run.
    /// </summary>
    private static async Task RemoveOldCopiesAsync(GymwireDbContext db, ILogger logger, CancellationToken cancellationToken)
    {
        try
        {
            if (db.Provider == DatabaseProvider.Postgres)
            {
                await db.Database.ExecuteSqlRawAsync("VACUUM FULL data_protection_keys", cancellationToken);
            }
            else
            {
                await db.Database.ExecuteSqlRawAsync("VACUUM", cancellationToken);
                await db.Database.ExecuteSqlRawAsync("PRAGMA wal_checkpoint(TRUNCATE)", cancellationToken);
            }
            LogOldCopiesRemoved(logger);
        }
        catch (DbException e)
        {
            LogOldCopiesLeft(logger, e, db.Provider == DatabaseProvider.Postgres ? "VACUUM FULL data_protection_keys" : "VACUUM");
        }
    }

    private static async Task<(byte[] Key, string Source)> LoadOrCreateAsync(
        KeyRingOptions options, GymwireDbContext db, IReadOnlyList<string> encryptedWith, ILogger logger, ILogger createdLogger)
    {
        var hasFile = !string.IsNullOrWhiteSpace(options.KeyFile);
        if (!string.IsNullOrWhiteSpace(options.Key))
        {
            if (hasFile)
            {
                throw new KeyRingException("Set DataProtection:KeyFile or DataProtection:Key, not both.");
            }
            return (Decode(options.Key, "DataProtection:Key"), "DataProtection:Key");
        }

        string path;
        if (hasFile)
        {
            path = Path.GetFullPath(options.KeyFile!);
        }
        else if (db.Provider == DatabaseProvider.Postgres)
        {
            throw new KeyRingException(
                "DataProtection:KeyFile or DataProtection:Key is required with PostgreSQL: the key that encrypts the Data Protection key ring " +
                $"in the database, the same on every node. {MakeOne} and give every node that file (or its content as DataProtection__Key).");
        }
        else if (await DatabaseSetup.SqliteFileAsync(db) is { } database)
        {
            path = DefaultKeyFile(database);
        }
        else
        {
            // An in-memory database lives and dies with this process, and so may its key.
            return (RandomNumberGenerator.GetBytes(KeyEncryptionKey.Size), "memory (the database is in memory)");
        }

        var source = $"the key file {path}";
        if (File.Exists(path))
        {
            return (ReadKeyFile(path, source, logger), source);
        }
        if (encryptedWith.Count > 0)
        {
            throw new KeyRingException(
                $"The Data Protection key ring in the database is encrypted with the key-encryption key {string.Join(", ", encryptedWith)}, but the key file " +
                $"{path} does not exist. Restore it from where you keep it, or configure it (DataProtection:KeyFile or DataProtection:Key): without it, stored " +
                "webhook and Stripe secrets and signed-in sessions cannot be decrypted. Gymwire does not make a new key while keys encrypted with another exist.");
        }
        if (db.Provider == DatabaseProvider.Postgres)
        {
            throw new KeyRingException(
                $"The key file {path} (DataProtection:KeyFile) does not exist. With PostgreSQL Gymwire does not create it, because every node must use " +
                $"the same key. {MakeOne} and give every node that file.");
        }
        var key = RandomNumberGenerator.GetBytes(KeyEncryptionKey.Size);
        bool created;
        try
        {
            created = OwnerOnlyFile.TryCreate(path, Convert.ToBase64String(key) + "\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeyRingException($"Could not create the key file {path} (DataProtection:KeyFile): {e.Message}");
        }
        if (!created)
        {
            // Another process (the command line beside the server, say) created it first: use that one.
            return (ReadKeyFile(path, source, logger), source);
        }
        LogCreated(createdLogger, path, KeyEncryptionKey.IdOf(key));
        return (key, source);
    }

    /// <summary><c>gymwire.db</c> → <c>gymwire.key</c>: beside the database, but not matched by <c>gymwire.db*</c>, which a backup of the database and its WAL would copy.</summary>
    public static string DefaultKeyFile(string databaseFile)
    {
        var path = Path.ChangeExtension(databaseFile, ".key");
        return path == databaseFile ? databaseFile + ".key" : path;
    }

    private static byte[] ReadKeyFile(string path, string source, ILogger logger)
    {
        if (!OperatingSystem.IsWindows() && OwnerOnlyFile.IsTooOpen(File.GetUnixFileMode(path)))
        {
            LogTooOpen(logger, path);
        }
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeyRingException($"cannot read the key file {path} ({source}): {e.Message}; it must be readable by the user running Gymwire");
        }
        return Decode(text, source);
    }

    private static byte[] Decode(string base64, string source)
    {
        try
        {
            var key = Convert.FromBase64String(base64.Trim());
            if (key.Length == KeyEncryptionKey.Size)
            {
                return key;
            }
        }
        catch (FormatException)
        {
        }
        throw new KeyRingException($"{source} must hold a 256-bit key in base64 (32 bytes). {MakeOne}.");
    }

    /// <summary>
    /// Why the key in <paramref name="keyFile"/> or <paramref name="configuredKey"/> (DataProtection:Key) cannot decrypt a key
    /// ring stored as <paramref name="keyRingXml"/>; null when it can, when nothing in it is encrypted, or when no key is
    /// there yet (a new machine, where the backed-up key is put in place after the restore).
    /// </summary>
    public static string? CannotDecrypt(IReadOnlyList<string> keyRingXml, string keyFile, string? configuredKey)
    {
        var encrypted = EncryptedKeys(keyRingXml.Select(XElement.Parse));
        string source;
        byte[] key;
        if (!string.IsNullOrWhiteSpace(configuredKey))
        {
            (source, key) = ("DataProtection:Key", Decode(configuredKey, "DataProtection:Key"));
        }
        else if (File.Exists(keyFile))
        {
            source = $"the key file {keyFile}";
            key = ReadKeyFile(keyFile, source, NullLogger.Instance);
        }
        else
        {
            return null;
        }
        var candidate = KeyEncryptionKey.From(key);
        if (encrypted.All(e => CanDecrypt(e, candidate)))
        {
            return null;
        }
        return $"the backup's key ring was encrypted with the key-encryption key {string.Join(", ", KeyIds(encrypted))}, which {source} ({candidate.Id}) " +
            "is not: put the backed-up server's key in its place first (the server would refuse to start otherwise)";
    }

    /// <summary>The key ring's keys encrypted by Gymwire's key-encryption key (their encrypted elements).</summary>
    private static List<XElement> EncryptedKeys(IEnumerable<XElement> keys) =>
        [.. keys.SelectMany(k => k.Descendants(EncryptedSecret)).Where(IsOurs).Select(e => e.Elements().Single())];

    /// <summary>The ids of the key-encryption keys those elements were encrypted with.</summary>
    private static List<string> KeyIds(IEnumerable<XElement> encrypted) =>
        [.. encrypted.Select(e => (string?)e.Attribute(KeyRingDecryptor.KeyIdAttribute) ?? "?").Distinct().Order()];

    private static bool IsOurs(XElement encryptedSecret) =>
        ((string?)encryptedSecret.Attribute("decryptorType"))?.StartsWith(typeof(KeyRingDecryptor).FullName + ",", StringComparison.Ordinal) == true;

    private static bool IsUnencrypted(XElement element) => (bool?)element.Attribute(RequiresEncryption) == true;

    private static bool CanDecrypt(XElement encryptedKey, KeyEncryptionKey kek)
    {
        try
        {
            KeyRingDecryptor.Decrypt(encryptedKey, kek);
            return true;
        }
        catch (Exception e) when (e is CryptographicException or FormatException or System.Xml.XmlException)
        {
            return false;
        }
    }

    /// <summary>What Data Protection does with a new key: each element marked as requiring encryption is replaced by its encrypted form.</summary>
    private static XElement Encrypt(XElement key, KeyRingEncryptor encryptor)
    {
        var copy = new XElement(key);
        foreach (var element in copy.DescendantsAndSelf().Where(IsUnencrypted).ToList())
        {
            var encrypted = encryptor.Encrypt(element);
            element.ReplaceWith(new XElement(EncryptedSecret,
                new XAttribute("decryptorType", encrypted.DecryptorType.AssemblyQualifiedName!),
                encrypted.EncryptedElement));
        }
        return copy;
    }

    [LoggerMessage(EventId = 1101, Level = LogLevel.Information, Message = "Data Protection keys are encrypted with the key-encryption key {KeyId} from {Source}")]
    private static partial void LogLoaded(ILogger logger, string keyId, string source);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Information, Message = "Created the key-encryption key file {Path} (key {KeyId}). Back it up, apart from the database: without it the stored secrets and sessions cannot be decrypted")]
    private static partial void LogCreated(ILogger logger, string path, string keyId);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Information, Message = "Encrypted {Count} Data Protection keys that were stored unencrypted; what they protect still decrypts")]
    private static partial void LogReprotected(ILogger logger, int count);

    [LoggerMessage(EventId = 1105, Level = LogLevel.Information, Message = "Rebuilt the database's storage so that no old copy of the re-encrypted keys remains in its free space")]
    private static partial void LogOldCopiesRemoved(ILogger logger);

    [LoggerMessage(EventId = 1106, Level = LogLevel.Warning, Message = "Could not rebuild the database's storage after encrypting the key ring: its free space may still hold the keys' old copies. Run {Statement} on the database")]
    private static partial void LogOldCopiesLeft(ILogger logger, Exception exception, string statement);

    [LoggerMessage(EventId = 1104, Level = LogLevel.Warning, Message = "The key file {Path} can be read by other users than its owner; make it 0600 (chmod 600)")]
    private static partial void LogTooOpen(ILogger logger, string path);
}
