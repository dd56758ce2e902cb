using System.Collections.Concurrent;
using System.Net;
using Gymwire.Tests.Foundation;
using Gymwire.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace Gymwire.Tests.Operations;

/// <summary>
/// <c>gymwire backup</c> copies a SQLite database while the server writes to it, and <c>gymwire restore</c> puts a copy
/// back once the server is stopped. Every write acknowledged before the backup began is in the copy.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class BackupTests(SqliteWriteLoadGymwire fx) : IClassFixture<SqliteWriteLoadGymwire>
{
    private string DatabaseFile => new SqliteConnectionStringBuilder(fx.ConnectionString).DataSource;

    [Fact]
    public async Task A_backup_under_write_load_holds_every_write_acknowledged_before_it_began_and_restores()
    {
        var gym = await fx.CreateGymAsync();
        var key = (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "load", scopes = new[] { "write" } })).JsonAsync()).GetProperty("key").GetString()!;
        var acknowledged = new ConcurrentDictionary<string, DateTime>();
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            using var client = fx.Client(key);
            var i = 0;
            while (!stop.IsCancellationRequested)
            {
                var response = await client.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = $"Load{w}-{i++}", source = "website" });
                var lead = await response.AssertStatusAsync(HttpStatusCode.Created);
                acknowledged[lead.GetProperty("id").GetString()!.ToUpperInvariant()] = DateTime.UtcNow;
            }
        })).ToList();

        while (acknowledged.Count < 200)
        {
            await Task.Delay(20);
        }
        // Taken before the backup process starts: each of these was answered 201 before the backup began.
        var before = acknowledged.Keys.ToHashSet();
        var copy = Path.Combine(Path.GetTempPath(), $"gymwire-backup-{Guid.NewGuid():N}.db");
        try
        {
            var (code, stdout, stderr) = await Cli.RunAsync(fx, "backup", "--to", copy);
            var duringBackup = acknowledged.Count - before.Count;
            await stop.CancelAsync();
            await Task.WhenAll(writers);
            Assert.True(code == 0, stderr);
            Assert.Contains("\"integrity_check\":\"ok\"", stdout, StringComparison.Ordinal);
            Assert.Contains("key file is not in the backup", stdout, StringComparison.Ordinal);
            Assert.True(duringBackup > 0, "no write was acknowledged while the backup ran: the load did not overlap it");
            Assert.Equal(OwnerOnly, File.GetUnixFileMode(copy));
            Assert.False(File.Exists(copy + "-wal"));

            var inCopy = LeadIds(copy);
            Assert.True(before.IsSubsetOf(inCopy), $"{before.Count(id => !inCopy.Contains(id))} acknowledged writes are missing from the copy");
            Assert.Equal("ok", Scalar(copy, "PRAGMA integrity_check;"));

            // Restore into another location (as onto a new machine), then start a server on it with the key file carried over.
            var directory = Directory.CreateTempSubdirectory("gymwire-restore-");
            var restored = Path.Combine(directory.FullName, "gymwire.db");
            var (restoreCode, restoreOut, restoreErr) = await Cli.RunAsync(fx, "restore", "--from", copy, $"--ConnectionStrings:Gymwire=Data Source={restored}");
            Assert.True(restoreCode == 0, restoreErr);
            Assert.Contains("\"key_file_exists\":false", restoreOut, StringComparison.Ordinal);
            Assert.Equal(OwnerOnly, File.GetUnixFileMode(restored));
            Assert.Equal("ok", Scalar(restored, "PRAGMA integrity_check;"));
            Assert.Equal(inCopy, LeadIds(restored));

            File.Copy(Path.ChangeExtension(DatabaseFile, ".key"), Path.Combine(directory.FullName, "gymwire.key"));
            // Started in that directory with no connection string: gymwire.db and gymwire.key are found there, as documented.
            await using (var node = await ServerProcess.StartAsync(directory.FullName, new Dictionary<string, string>()))
            {
                // Signing in again: the fixture's sessions were issued on its fake clock, and this server runs on the real one.
                using var anonymous = new HttpClient { BaseAddress = node.BaseAddress };
                var login = await (await anonymous.PostJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = gym.OwnerPassword })).AssertStatusAsync(HttpStatusCode.OK);
                using var api = new HttpClient { BaseAddress = node.BaseAddress };
                api.DefaultRequestHeaders.Authorization = new("Bearer", login.GetProperty("token").GetString());
                var leads = await (await api.GetAsync("/api/gym/leads?limit=1")).AssertStatusAsync(HttpStatusCode.OK);
                Assert.Equal(1, leads.GetProperty("leads").GetArrayLength());
            }
            SqliteConnection.ClearAllPools();
            directory.Delete(recursive: true);
        }
        finally
        {
            File.Delete(copy);
        }
    }

    [Fact]
    public async Task Restore_refuses_while_the_server_has_the_database_open_and_changes_nothing()
    {
        var gym = await fx.CreateGymAsync();
        var copy = Path.Combine(Path.GetTempPath(), $"gymwire-backup-{Guid.NewGuid():N}.db");
        try
        {
            var (code, _, stderr) = await Cli.RunAsync(fx, "backup", "--to", copy);
            Assert.True(code == 0, stderr);
            await (await gym.Owner().PostJsonAsync("/api/gym/leads", new { first_name = "After", source = "website" })).AssertStatusAsync(HttpStatusCode.Created);

            // Even with no pooled connection left open (a quiet server's pool closes its idle ones; here, cleared).
            SqliteConnection.ClearAllPools();
            var (refused, stdout, refusal) = await Cli.RunAsync(fx, "restore", "--from", copy);
            Assert.NotEqual(0, refused);
            Assert.Equal("", stdout.Trim());
            Assert.Contains("in use", refusal, StringComparison.Ordinal);
            // The server's database still has the lead written after the backup, and the server still serves.
            var leads = await (await gym.Owner().GetAsync("/api/gym/leads")).AssertStatusAsync(HttpStatusCode.OK);
            Assert.Contains(leads.GetProperty("leads").EnumerateArray(), l => l.GetProperty("first_name").GetString() == "After");
        }
        finally
        {
            File.Delete(copy);
        }
    }

    [Fact]
    public async Task Restore_refuses_a_backup_the_key_in_place_cannot_decrypt_and_restores_once_the_right_key_is_there()
    {
        // Restored under another key, the server would refuse to start, and the database it replaced would be gone too.
        var copy = Path.Combine(Path.GetTempPath(), $"gymwire-backup-{Guid.NewGuid():N}.db");
        var directory = Directory.CreateTempSubdirectory("gymwire-restore-key-");
        try
        {
            var (code, _, stderr) = await Cli.RunAsync(fx, "backup", "--to", copy);
            Assert.True(code == 0, stderr);
            var restored = Path.Combine(directory.FullName, "gymwire.db");
            var keyHere = Path.Combine(directory.FullName, "gymwire.key");
            File.WriteAllText(keyHere, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)) + "\n");
            File.SetUnixFileMode(keyHere, OwnerOnly);

            var (refused, refusedOut, refusal) = await Cli.RunAsync(fx, "restore", "--from", copy, $"--ConnectionStrings:Gymwire=Data Source={restored}");
            Assert.Equal(1, refused);
            Assert.Equal("", refusedOut.Trim());
            Assert.Contains("key-encryption key", refusal, StringComparison.Ordinal);
            Assert.Contains("nothing was restored", refusal, StringComparison.Ordinal);
            Assert.False(File.Exists(restored));

            File.Copy(Path.ChangeExtension(DatabaseFile, ".key"), keyHere, overwrite: true);
            var (restoreCode, _, restoreErr) = await Cli.RunAsync(fx, "restore", "--from", copy, $"--ConnectionStrings:Gymwire=Data Source={restored}");
            Assert.True(restoreCode == 0, restoreErr);
            Assert.Equal("ok", Scalar(restored, "PRAGMA integrity_check;"));
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            File.Delete(copy);
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Backup_refuses_to_overwrite_and_restore_refuses_a_file_that_is_not_a_gymwire_database()
    {
        var existing = Path.GetTempFileName();
        try
        {
            var (code, _, stderr) = await Cli.RunAsync(fx, "backup", "--to", existing);
            Assert.NotEqual(0, code);
            Assert.Contains("exists", stderr, StringComparison.Ordinal);

            await File.WriteAllTextAsync(existing, "not a database");
            var target = Path.Combine(Path.GetTempPath(), $"gymwire-none-{Guid.NewGuid():N}.db");
            var (restoreCode, _, restoreErr) = await Cli.RunAsync(fx, "restore", "--from", existing, $"--ConnectionStrings:Gymwire=Data Source={target}");
            Assert.NotEqual(0, restoreCode);
            Assert.StartsWith("error:", restoreErr, StringComparison.Ordinal);
            Assert.False(File.Exists(target));
        }
        finally
        {
            File.Delete(existing);
        }
    }

    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private static HashSet<string> LeadIds(string file)
    {
        using var connection = new SqliteConnection($"Data Source={file};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT id FROM leads";
        using var reader = command.ExecuteReader();
        var ids = new HashSet<string>();
        while (reader.Read())
        {
            ids.Add(reader.GetString(0).ToUpperInvariant());
        }
        return ids;
    }

    private static string Scalar(string file, string sql)
    {
        using var connection = new SqliteConnection($"Data Source={file};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToString(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture)!;
    }
}

/// <summary>
/// On PostgreSQL the commands point to pg_dump and pg_restore, and touch nothing; the guide's pg_dump and pg_restore
/// commands, run under write load, keep every acknowledged write, and a node with the same key serves the restored copy.
/// </summary>
public sealed class PostgresBackupTests(PostgresWriteLoadGymwire fx) : IClassFixture<PostgresWriteLoadGymwire>
{
    [Theory]
    [InlineData("backup", "--to")]
    [InlineData("restore", "--from")]
    public async Task The_command_says_to_use_pg_dump(string command, string option)
    {
        var file = Path.Combine(Path.GetTempPath(), $"gymwire-pg-{Guid.NewGuid():N}.db");
        var (code, stdout, stderr) = await Cli.RunAsync(fx, command, option, file);
        Assert.NotEqual(0, code);
        Assert.Equal("", stdout.Trim());
        Assert.Contains("pg_dump", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Password=", stderr, StringComparison.OrdinalIgnoreCase);
        Assert.False(File.Exists(file));
    }

    [Fact]
    public async Task Pg_dump_under_write_load_and_pg_restore_keep_every_acknowledged_write()
    {
        var cluster = await PostgresCluster.InstanceAsync();
        var gym = await fx.CreateGymAsync();
        var key = (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "load", scopes = new[] { "write" } })).JsonAsync()).GetProperty("key").GetString()!;
        var acknowledged = new ConcurrentDictionary<Guid, bool>();
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            using var client = fx.Client(key);
            var i = 0;
            while (!stop.IsCancellationRequested)
            {
                var lead = await (await client.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = $"Load{w}-{i++}", source = "website" }))
                    .AssertStatusAsync(HttpStatusCode.Created);
                acknowledged[lead.GetProperty("id").GetGuid()] = true;
            }
        })).ToList();
        while (acknowledged.Count < 200)
        {
            await Task.Delay(20);
        }
        var before = acknowledged.Keys.ToHashSet();
        var source = new Npgsql.NpgsqlConnectionStringBuilder(fx.ConnectionString).Database!;
        var dump = Path.Combine(Path.GetTempPath(), $"gymwire-{Guid.NewGuid():N}.dump");
        try
        {
            await RunAsync(Path.Combine(cluster.BinDirectory, "pg_dump"), "--format=custom", $"--file={dump}", Libpq(cluster, source));
            var duringDump = acknowledged.Count - before.Count;
            await stop.CancelAsync();
            await Task.WhenAll(writers);
            Assert.True(duringDump > 0, "no write was acknowledged while pg_dump ran: the load did not overlap it");

            var restoredConnection = await cluster.CreateDatabaseAsync();
            var restored = new Npgsql.NpgsqlConnectionStringBuilder(restoredConnection).Database!;
            await RunAsync(Path.Combine(cluster.BinDirectory, "pg_restore"), "--clean", "--if-exists", "--no-owner", $"--dbname={Libpq(cluster, restored)}", dump);

            var inCopy = new HashSet<Guid>();
            await using (var connection = new Npgsql.NpgsqlConnection(restoredConnection))
            {
                await connection.OpenAsync();
                await using var command = new Npgsql.NpgsqlCommand("SELECT id FROM leads", connection);
                await using var reader = await command.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    inCopy.Add(reader.GetGuid(0));
                }
            }
            Assert.True(before.IsSubsetOf(inCopy), $"{before.Count(id => !inCopy.Contains(id))} acknowledged writes are missing from the dump");

            // The nodes' DataProtection key goes with the restored database: the original one, not one for the new database.
            await using var node = await GymwireProcess.StartAsync(Store.Postgres, restoredConnection, [new("DataProtection:Key", TestKeys.For(fx.ConnectionString))]);
            var login = await (await node.Client().PostJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = gym.OwnerPassword })).AssertStatusAsync(HttpStatusCode.OK);
            using var api = node.Client(login.GetProperty("token").GetString());
            var leads = await (await api.GetAsync("/api/gym/leads?limit=1")).AssertStatusAsync(HttpStatusCode.OK);
            Assert.Equal(1, leads.GetProperty("leads").GetArrayLength());
        }
        finally
        {
            File.Delete(dump);
        }
    }

    private static string Libpq(PostgresCluster cluster, string database) => $"host=127.0.0.1 port={cluster.Port} user=postgres dbname={database}";

    private static async Task RunAsync(string file, params string[] arguments)
    {
        var start = new System.Diagnostics.ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = System.Diagnostics.Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(120)).Token);
        Assert.True(process.ExitCode == 0, $"{Path.GetFileName(file)} failed: {await stdout} {await stderr}");
    }
}

/// <summary>PostgreSQL, with the request limits off so that the write load is not throttled.</summary>
public sealed class PostgresWriteLoadGymwire() : GymwireFixture(Store.Postgres)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => [new("RateLimiting:Enabled", "false")];
}

/// <summary>SQLite, with the request limits off so that the write load is not throttled.</summary>
public sealed class SqliteWriteLoadGymwire() : GymwireFixture(Store.Sqlite)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => [new("RateLimiting:Enabled", "false")];
}
