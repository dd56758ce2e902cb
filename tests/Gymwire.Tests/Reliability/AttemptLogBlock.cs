using System.Data.Common;
using Gymwire.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Gymwire.Tests.Reliability;

/// <summary>
/// Holds the attempt log shut from outside the gymwire process, so that a SIGKILL provably lands while the
/// process is recording attempts (no test hook inside the server). On PostgreSQL a <c>SHARE</c> lock on
/// <c>webhook_attempts</c> lets reads and claims through but makes every attempt insert wait, and
/// <see cref="BlockedBackendsAsync"/> shows the process's sessions queued behind it. On SQLite an open
/// <c>BEGIN IMMEDIATE</c> transaction holds the single write lock, so no attempt can be committed at all.
/// Disposing rolls back, so the lock itself writes nothing.
/// </summary>
internal sealed class AttemptLogBlock : IAsyncDisposable
{
    private readonly DbConnection _connection;
    private readonly Store _store;

    private AttemptLogBlock(DbConnection connection, Store store)
    {
        _connection = connection;
        _store = store;
    }

    public static async Task<AttemptLogBlock> TakeAsync(GymwireFixture fx)
    {
        DbConnection connection = fx.Store == Store.Postgres
            ? new NpgsqlConnection(fx.ConnectionString)
            : new SqliteConnection(fx.ConnectionString);
        await connection.OpenAsync();
        var block = new AttemptLogBlock(connection, fx.Store);
        if (fx.Store == Store.Postgres)
        {
            await block.ExecuteAsync("BEGIN");
            await block.ExecuteAsync("LOCK TABLE webhook_attempts IN SHARE MODE");
        }
        else
        {
            await block.ExecuteAsync("BEGIN IMMEDIATE");
        }
        return block;
    }

    /// <summary>PostgreSQL: how many other sessions are waiting for a lock on <c>webhook_attempts</c>.</summary>
    public async Task<int> BlockedBackendsAsync()
    {
        if (_store != Store.Postgres)
        {
            throw new NotSupportedException("SQLite has no lock table to look at");
        }
        await using var command = _connection.CreateCommand();
        command.CommandText = "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid() AND relation = 'webhook_attempts'::regclass";
        return Convert.ToInt32(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var command = _connection.CreateCommand();
        command.CommandText = sql;
        command.CommandTimeout = 60;
        await command.ExecuteNonQueryAsync();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await ExecuteAsync("ROLLBACK");
        }
        finally
        {
            await _connection.DisposeAsync();
        }
    }
}
