using Microsoft.Data.Sqlite;

namespace Gymwire.Data;

/// <summary>
/// Keeps one connection to the SQLite database open, with the write-ahead log's shared memory mapped, for as long as the
/// server runs. The connection pool closes idle connections, and a quiet server may then hold none; with this one, the
/// database always has a reader, so <c>gymwire restore</c> (which needs the only connection to leave WAL mode) refuses
/// while a server runs, however idle.
/// </summary>
public sealed class SqliteConnectionHold(string connectionString) : IHostedService, IAsyncDisposable
{
    private SqliteConnection? _connection;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // Not pooled: clearing the pools (SqliteConnection.ClearAllPools) must not close it.
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder(connectionString) { Pooling = false }.ToString());
        await connection.OpenAsync(cancellationToken);
        await using (var read = connection.CreateCommand())
        {
            // A first read maps the write-ahead log's index, which is what makes the connection count as open to SQLite.
            read.CommandText = "SELECT count(*) FROM sqlite_master";
            await read.ExecuteScalarAsync(cancellationToken);
        }
        _connection = connection;
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await DisposeAsync();

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _connection, null) is { } connection)
        {
            await connection.DisposeAsync();
        }
    }
}
