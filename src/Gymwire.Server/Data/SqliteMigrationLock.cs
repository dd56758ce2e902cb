using Microsoft.Data.Sqlite;

namespace Gymwire.Data;

/// <summary>
/// One migration run at a time per SQLite file, held by the operating system, and the clean-up of a run that was
/// killed. EF Core's own SQLite lock is a row in <c>__EFMigrationsLock</c>, deleted when the run ends: a process killed
/// during a run (kill -9, the OOM killer, a power cut; a start migrates, so any start can be that run) leaves the row,
/// and every later start then waits on it forever without a word. This lock is an exclusive lock on a file beside the
/// database (<c>flock</c>, which .NET takes for <see cref="FileShare.None"/>); the kernel releases it when its process
/// ends, however it ends. Whoever holds it is the only live migrator, so an EF lock row it finds is stale.
/// </summary>
public sealed partial class SqliteMigrationLock : IAsyncDisposable
{
    /// <summary>The lock file's name is the database file's with this added.</summary>
    public const string Suffix = ".migrate-lock";

    /// <summary>EF Core's SQLite migration lock table (its name is EF's, not configurable).</summary>
    internal const string EfLockTable = "__EFMigrationsLock";

    private static readonly TimeSpan Retry = TimeSpan.FromMilliseconds(200);

    private readonly FileStream? _file;

    private SqliteMigrationLock(FileStream? file) => _file = file;

    /// <summary>
    /// Takes the lock, waiting for as long as another process's migration run takes (logged once), then puts back what
    /// a killed run left (<see cref="RecoverInterruptedRunAsync"/>). Call it with the context's connection open: the
    /// file is the one SQLite opened (a relative path, <c>|DataDirectory|</c> or a <c>file:</c> URI resolved as SQLite
    /// resolves it). An in-memory or temporary database has no file and no other process to share it with, so it gets
    /// no lock.
    /// </summary>
    public static async Task<SqliteMigrationLock> AcquireAsync(GymwireDbContext db, ILogger logger, CancellationToken cancellationToken)
    {
        var file = ((SqliteConnection)db.Database.GetDbConnection()).DataSource;
        if (string.IsNullOrEmpty(file))
        {
            return new SqliteMigrationLock(null);
        }
        var path = file + Suffix;
        var waiting = false;
        while (true)
        {
            FileStream held;
            try
            {
                held = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 1);
            }
            catch (IOException e) when (IsHeldElsewhere(e))
            {
                if (!waiting)
                {
                    LogWaiting(logger, path);
                    waiting = true;
                }
                await Task.Delay(Retry, cancellationToken);
                continue;
            }
            var taken = new SqliteMigrationLock(held);
            try
            {
                await RecoverInterruptedRunAsync(db, logger, cancellationToken);
            }
            catch
            {
                await taken.DisposeAsync();
                throw;
            }
            return taken;
        }
    }

    /// <summary>
    /// Puts back what a killed run left, so that the run about to start can complete; run holding the lock.
    /// <list type="bullet">
    /// <item>EF Core's lock row: no live run holds it.</item>
    /// <item>Tables named <c>ef_temp_*</c>: EF Core rebuilds a SQLite table (to drop a column, or change one) by
    /// creating and filling <c>ef_temp_{table}</c> in one transaction, then turning foreign keys off (SQLite allows
    /// that only outside a transaction) and dropping the table and renaming the copy in a second. While the copy exists
    /// the second has not committed, so the table is intact, and the copy would stop the rebuild's next try
    /// ("table already exists").</item>
    /// </list>
    /// Each step of a migration before its rebuild must be one that can run again (see the DeliveryIndexTrim migration).
    /// </summary>
    private static async Task RecoverInterruptedRunAsync(GymwireDbContext db, ILogger logger, CancellationToken cancellationToken)
    {
        var tables = await db.Database.SqlQuery<string>(
                $"SELECT name AS \"Value\" FROM sqlite_master WHERE type = 'table' AND (name = {EfLockTable} OR name LIKE 'ef\\_temp\\_%' ESCAPE '\\')")
            .ToListAsync(cancellationToken);
        foreach (var table in tables)
        {
            if (table == EfLockTable)
            {
                if (await db.Database.ExecuteSqlRawAsync($"DELETE FROM \"{EfLockTable}\"", cancellationToken) > 0)
                {
                    LogStaleLock(logger);
                }
                continue;
            }
            LogLeftover(logger, table);
            // A name from sqlite_master (EF Core's ef_temp_ prefix and a table's name), quoted as an identifier.
            var drop = "DROP TABLE \"" + table.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
            await db.Database.ExecuteSqlRawAsync(drop, cancellationToken);
        }
    }

    /// <summary>
    /// The lock is held by another open of the file: <c>flock</c>'s EWOULDBLOCK, which .NET passes on as the errno
    /// (11 on Linux, 35 on macOS); on Windows a sharing violation.
    /// </summary>
    private static bool IsHeldElsewhere(IOException e) => e.GetType() == typeof(IOException)
        && (OperatingSystem.IsWindows() ? e.HResult == unchecked((int)0x80070020) : e.HResult == (OperatingSystem.IsMacOS() ? 35 : 11));

    public ValueTask DisposeAsync() => _file?.DisposeAsync() ?? ValueTask.CompletedTask;

    [LoggerMessage(EventId = 1003, Level = LogLevel.Information, Message = "Another process is migrating this database; waiting for it to finish (lock file {Path})")]
    private static partial void LogWaiting(ILogger logger, string path);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Warning, Message = "A migration run was killed before it finished; deleting the migration lock it left")]
    private static partial void LogStaleLock(ILogger logger);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Warning, Message = "A migration run was killed in a table rebuild; dropping its unfinished copy {Table} (the table itself is intact) and running the migration again")]
    private static partial void LogLeftover(ILogger logger, string table);
}
