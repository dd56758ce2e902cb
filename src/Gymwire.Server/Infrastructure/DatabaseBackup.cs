using System.CommandLine;
using Microsoft.Data.Sqlite;

namespace Gymwire.Infrastructure;

/// <summary>
/// <c>gymwire backup --to FILE</c> and <c>gymwire restore --from FILE</c> for a SQLite database. A backup is SQLite's
/// online backup API run in one step: it reads one snapshot (a read transaction, which in WAL mode never blocks the
/// running server's writers), so the copy holds every write committed before it began and nothing half-written.
/// Neither command copies the key file (<c>gymwire.key</c>): a database copy alone decrypts nothing, by design.
/// PostgreSQL is backed up with <c>pg_dump</c>; both commands say so there.
/// </summary>
public static class DatabaseBackup
{
    private const string PostgresAdvice =
        "backup and restore copy a SQLite database; with PostgreSQL use pg_dump and pg_restore " +
        "(pg_dump --format=custom --file=gymwire.dump DBNAME; pg_restore --clean --if-exists --no-owner --dbname=DBNAME gymwire.dump; see docs/operations.md), " +
        "and back up the DataProtection key too, but not in the same place as the database backups";

    public static IEnumerable<Command> CliCommands(string[] args)
    {
        var to = new Option<string>("--to") { Description = "The file to write (must not exist; created readable by its owner only).", Required = true };
        var backup = new Command("backup", "Copy the SQLite database to a file while the server runs (a consistent snapshot). The key file is not included: back it up separately.") { to };
        backup.SetAction((parse, _) => RunAsync(args, db => Backup(db, parse.GetValue(to)!)));

        var from = new Option<string>("--from") { Description = "A file written by gymwire backup.", Required = true };
        var restore = new Command("restore", "Replace the SQLite database with a backup. Stop the server first: restore refuses while a process has the database open.") { from };
        restore.SetAction((parse, _) => RunAsync(args, db => Restore(db, parse.GetValue(from)!)));

        backup.TreatUnmatchedTokensAsErrors = false;
        restore.TreatUnmatchedTokensAsErrors = false;
        return [backup, restore];
    }

    private sealed record Database(string File, string KeyFile, string? ConfiguredKey);

    private static async Task<int> RunAsync(string[] args, Func<Database, GymwireCli.CommandResult> action)
    {
        GymwireCli.CommandResult result;
        try
        {
            var configuration = GymwireApp.CreateBuilder(args).Configuration;
            var options = configuration.GetSection(DatabaseOptions.Section).Get<DatabaseOptions>() ?? new DatabaseOptions();
            if (options.ProviderKind == DatabaseProvider.Postgres)
            {
                result = GymwireCli.Fail(PostgresAdvice);
            }
            else
            {
                var connectionString = configuration.GetConnectionString(DatabaseSetup.ConnectionStringName);
                var builder = new SqliteConnectionStringBuilder(string.IsNullOrWhiteSpace(connectionString) ? DatabaseSetup.DefaultSqliteConnectionString : connectionString);
                if (string.IsNullOrEmpty(builder.DataSource) || builder.DataSource == ":memory:" || builder.Mode == SqliteOpenMode.Memory)
                {
                    result = GymwireCli.Fail("the configured SQLite database is in memory: there is nothing to back up or restore");
                }
                else
                {
                    // SQLite resolves a relative Data Source against the working directory, as the server does.
                    var file = Path.GetFullPath(builder.DataSource);
                    var keyFile = configuration["DataProtection:KeyFile"] is { Length: > 0 } configured ? Path.GetFullPath(configured) : KeyRingSetup.DefaultKeyFile(file);
                    result = action(new Database(file, keyFile, configuration["DataProtection:Key"]));
                }
            }
        }
        catch (OptionsValidationException e)
        {
            await Console.Error.WriteLineAsync($"error: invalid configuration: {string.Join("; ", e.Failures)}");
            return 2;
        }
        catch (Exception e) when (e is SqliteException or IOException or UnauthorizedAccessException)
        {
            // A file that is not a database, a full disk, a directory without permission: the message says which.
            result = GymwireCli.Fail(e.Message);
        }
        catch (KeyRingException e)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}");
            return 2;
        }
        if (result.Error is not null)
        {
            await Console.Error.WriteLineAsync($"error: {result.Error}");
        }
        else
        {
            await Console.Out.WriteLineAsync(JsonSerializer.Serialize(result.Output, GymwireJson.Options));
        }
        return result.ExitCode;
    }

    private static GymwireCli.CommandResult Backup(Database database, string to)
    {
        var target = Path.GetFullPath(to);
        if (!File.Exists(database.File))
        {
            return GymwireCli.Fail($"the database {database.File} does not exist");
        }
        if (File.Exists(target))
        {
            return GymwireCli.Fail($"{target} exists; choose a new file name");
        }
        // Written under a temporary name and moved into place at the end, so a failed backup leaves no file that looks complete.
        var partial = target + ".partial-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            CreateOwnerOnly(partial);
            using (var source = Open(database.File, SqliteOpenMode.ReadWrite))
            using (var copy = Open(partial, SqliteOpenMode.ReadWrite))
            {
                var integrity = CopyInto(source, copy);
                if (integrity != "ok")
                {
                    return GymwireCli.Fail($"the copy failed its integrity check: {integrity}");
                }
            }
            File.Move(partial, target, overwrite: false);
            OwnerOnlyFile.Restrict(target);
            return GymwireCli.Ok(new
            {
                backup = target,
                database = database.File,
                bytes = new FileInfo(target).Length,
                integrity_check = "ok",
                key_file = database.KeyFile,
                note = "the key file is not in the backup: keep a copy of it, apart from the database backups; without it a restored database decrypts nothing",
            });
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (var leftover in new[] { partial, partial + "-journal" })
            {
                if (File.Exists(leftover))
                {
                    File.Delete(leftover);
                }
            }
        }
    }

    private static List<string> KeyRing(SqliteConnection connection)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT xml FROM data_protection_keys WHERE xml IS NOT NULL";
        using var reader = command.ExecuteReader();
        var rows = new List<string>();
        while (reader.Read())
        {
            rows.Add(reader.GetString(0));
        }
        return rows;
    }

    private static GymwireCli.CommandResult Restore(Database database, string from)
    {
        var source = Path.GetFullPath(from);
        if (!File.Exists(source))
        {
            return GymwireCli.Fail($"{source} does not exist");
        }
        try
        {
            using (var backup = Open(source, SqliteOpenMode.ReadOnly))
            {
                var integrity = Scalar(backup, "PRAGMA integrity_check;");
                if (integrity != "ok")
                {
                    return GymwireCli.Fail($"{source} failed its integrity check: {integrity}");
                }
                if (Scalar(backup, "SELECT count(*) FROM sqlite_master WHERE name = '__ef_migrations_history';") != "1")
                {
                    return GymwireCli.Fail($"{source} is not a Gymwire database");
                }
                // Before anything is replaced: a database the key here cannot decrypt would leave neither database usable.
                if (KeyRingSetup.CannotDecrypt(KeyRing(backup), database.KeyFile, database.ConfiguredKey) is { } mismatch)
                {
                    return GymwireCli.Fail($"{mismatch}; nothing was restored");
                }
            }

            if (Path.GetDirectoryName(Path.GetFullPath(database.File)) is { } directory && !Directory.Exists(directory))
            {
                return GymwireCli.Fail($"the directory {directory} does not exist: create it (owned by the user running Gymwire), then restore");
            }
            // A server starting meanwhile waits for this lock before it touches the database (SqliteMigrationLock).
            FileStream migrationLock;
            try
            {
                migrationLock = new FileStream(database.File + SqliteMigrationLock.Suffix, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 1);
            }
            catch (IOException)
            {
                return GymwireCli.Fail($"a server is starting or migrating {database.File}: stop it, then restore");
            }
            using (migrationLock)
            {
                OwnerOnlyFile.Restrict(database.File + SqliteMigrationLock.Suffix);
                if (!File.Exists(database.File))
                {
                    CreateOwnerOnly(database.File);
                }
                using var target = Open(database.File, SqliteOpenMode.ReadWrite);
                // Leaving WAL mode needs the only connection to the file: while a server (or anyone) has it open, SQLite
                // refuses, and so does restore. Nothing has been changed at that point.
                string mode;
                try
                {
                    mode = Scalar(target, "PRAGMA journal_mode=DELETE;", timeoutSeconds: 3);
                }
                catch (SqliteException e) when (e.SqliteErrorCode is 5 or 6) // SQLITE_BUSY, SQLITE_LOCKED
                {
                    mode = "busy";
                }
                if (!string.Equals(mode, "delete", StringComparison.OrdinalIgnoreCase))
                {
                    return GymwireCli.Fail($"{database.File} is in use (is the server running?): stop every process using it, then restore");
                }
                string integrity;
                using (var backup = Open(source, SqliteOpenMode.ReadOnly))
                {
                    integrity = CopyInto(backup, target);
                }
                if (integrity != "ok")
                {
                    return GymwireCli.Fail($"the restored database failed its integrity check: {integrity}");
                }
            }
            foreach (var suffix in (string[])["", "-journal", "-wal", "-shm"])
            {
                OwnerOnlyFile.Restrict(database.File + suffix);
            }
            return GymwireCli.Ok(new
            {
                restored = database.File,
                from = source,
                key_file = database.KeyFile,
                key_file_exists = File.Exists(database.KeyFile),
                note = File.Exists(database.KeyFile)
                    ? "the server needs the key file that was in use when the backup was taken; with another key it refuses to start"
                    : "no key file: put the key file of the backed-up server here (or configure DataProtection:KeyFile or DataProtection:Key) before starting the server",
            });
        }
        finally
        {
            SqliteConnection.ClearAllPools();
        }
    }

    private static SqliteConnection Open(string file, SqliteOpenMode mode)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = file, Mode = mode, Pooling = false, DefaultTimeout = 30,
        }.ToString());
        connection.Open();
        return connection;
    }

    /// <summary>
    /// Copies the database <paramref name="from"/> into <paramref name="to"/>, leaves <paramref name="to"/> one
    /// self-contained file (no write-ahead log beside it), and returns its integrity check's answer ("ok" when sound).
    /// </summary>
    private static string CopyInto(SqliteConnection from, SqliteConnection to)
    {
        from.BackupDatabase(to);
        Scalar(to, "PRAGMA journal_mode=DELETE;");
        return Scalar(to, "PRAGMA integrity_check;");
    }

    private static string Scalar(SqliteConnection connection, string sql, int timeoutSeconds = 30)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.CommandTimeout = timeoutSeconds;
        return Convert.ToString(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) ?? "";
    }

    private static void CreateOwnerOnly(string path)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = OwnerOnlyFile.Mode;
        }
        using var _ = new FileStream(path, options);
    }
}
