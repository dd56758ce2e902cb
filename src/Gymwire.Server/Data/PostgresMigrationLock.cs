using System.Data;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;

namespace Gymwire.Data;

/// <summary>
/// One migration run at a time per PostgreSQL database, across processes. EF Core's own PostgreSQL lock is a
/// <c>LOCK TABLE</c> in each migration's transaction: it does not stop nodes that start together from applying the
/// same migration, and all but one then fail on a step another already made (a dropped index: three concurrent
/// <c>gymwire migrate</c> runs failed that way in most tries). A session-level advisory lock, on a connection of its own
/// (unpooled, so that the session, and the lock with it, ends when the lock is given back or the process dies), makes
/// each later run wait for the one before and then find nothing pending. It needs a direct (or session-pooled)
/// connection: behind a transaction-pooling proxy such as PgBouncer's transaction mode, a session lock has no session
/// to belong to.
/// </summary>
public sealed partial class PostgresMigrationLock : IAsyncDisposable
{
    /// <summary>The advisory lock's key: "Gymwire" in ASCII. Only Gymwire's migrations take it.</summary>
    internal const long Key = 0x47796D77697265;

    private static readonly string KeyText = Key.ToString(CultureInfo.InvariantCulture);

    private readonly NpgsqlConnection _connection;
    private readonly ILogger _logger;

    private PostgresMigrationLock(NpgsqlConnection connection, ILogger logger)
    {
        _connection = connection;
        _logger = logger;
    }

    /// <summary>
    /// Takes the lock, waiting for as long as another node's migration run takes. A database that does not exist yet
    /// is created first, as EF Core's <c>Migrate</c> would (the lock's connection opens it); nodes starting together may
    /// race to create it, and the losers carry on.
    /// </summary>
    public static async Task<PostgresMigrationLock> AcquireAsync(GymwireDbContext db, ILogger logger, CancellationToken cancellationToken)
    {
        // CloneWith keeps the template's credentials even where its connection string no longer shows the password.
        var template = (NpgsqlConnection)db.Database.GetDbConnection();
        var builder = new NpgsqlConnectionStringBuilder(template.ConnectionString) { Pooling = false, Multiplexing = false, CommandTimeout = 0 };
        var connection = template.CloneWith(builder.ConnectionString);
        try
        {
            // Opened directly, not through EF Core's existence check, which logs the refused connection at Error level.
            try
            {
                await connection.OpenAsync(cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InvalidCatalogName)
            {
                await CreateDatabaseAsync(db, cancellationToken);
                await connection.OpenAsync(cancellationToken);
            }
            // The wait lasts as long as another node's migration (a rolling upgrade may rebuild a large index), so no
            // statement, lock or idle timeout of the role's may end this session; and should this host die without
            // closing its socket, the server notices within about a minute, so a dead node does not hold the others.
            await ExecuteAsync(connection,
                "SET statement_timeout = 0; SET lock_timeout = 0; SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3;"
                + (connection.PostgreSqlVersion.Major >= 14 ? " SET idle_session_timeout = 0;" : ""), cancellationToken);
            if (!await ExecuteBoolAsync(connection, $"SELECT pg_try_advisory_lock({KeyText})", cancellationToken))
            {
                LogWaiting(logger);
                await ExecuteAsync(connection, $"SELECT pg_advisory_lock({KeyText})", cancellationToken);
            }
            return new PostgresMigrationLock(connection, logger);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private static async Task CreateDatabaseAsync(GymwireDbContext db, CancellationToken cancellationToken)
    {
        try
        {
            await db.GetService<IRelationalDatabaseCreator>().CreateAsync(cancellationToken);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DuplicateDatabase or PostgresErrorCodes.UniqueViolation)
        {
            // Another node created it a moment ago.
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Closing the unpooled connection ends its session, which releases the lock; unlocking first says so explicitly.
        try
        {
            if (_connection.FullState == ConnectionState.Open && !await ExecuteBoolAsync(_connection, $"SELECT pg_advisory_unlock({KeyText})", CancellationToken.None))
            {
                LogNotHeld(_logger);
            }
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
        {
            // The connection broke: its session, and the lock with it, are gone already.
        }
        finally
        {
            await _connection.DisposeAsync();
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<bool> ExecuteBoolAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync(cancellationToken) is true;
    }

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Another node is migrating this database; waiting for it to finish")]
    private static partial void LogWaiting(ILogger logger);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Warning, Message = "The migration lock was no longer held when it was given back (is the connection going through a transaction-pooling proxy?)")]
    private static partial void LogNotHeld(ILogger logger);
}
