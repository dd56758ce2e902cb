using Gymwire.Data;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Npgsql;

namespace Gymwire.Tests.Foundation;

/// <summary>
/// PostgreSQL nodes take turns migrating one database (SQLite is single-node, and EF Core's own lock table covers a
/// CLI command beside a running server there).
/// </summary>
public sealed class MigrationLockTests(PostgresGymwire fx) : IClassFixture<PostgresGymwire>
{
    [Fact]
    public async Task A_node_waits_for_another_nodes_migration_past_its_command_timeout_and_then_migrates()
    {
        var database = await fx.CreateScratchDatabaseAsync();
        // Another node's migration run, as far as the lock goes: this test holds the lock.
        await using var other = new NpgsqlConnection(database);
        await other.OpenAsync();
        await ScalarAsync(other, $"SELECT pg_advisory_lock({PostgresMigrationLock.Key})");

        // A 1 s command timeout: a migration may take far longer than a command, and the wait must outlast it.
        var shortTimeout = new NpgsqlConnectionStringBuilder(database) { CommandTimeout = 1 }.ConnectionString;
        var run = Cli.RunAsync(fx, "migrate", $"--ConnectionStrings:Gymwire={shortTimeout}");
        await Eventually.TrueAsync(async () => run.IsCompleted || (long)(await ScalarAsync(other,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' " +
            "AND wait_event = 'advisory' AND now() - query_start > interval '3 seconds'"))! > 0,
            TimeSpan.FromSeconds(30), "the migrate run waiting on the lock for three times its command timeout");
        Assert.False(run.IsCompleted, run.IsCompleted ? (await run).Stderr : "");
        Assert.Null(await ScalarAsync(other, "SELECT to_regclass('__ef_migrations_history')::text"));

        await ScalarAsync(other, $"SELECT pg_advisory_unlock({PostgresMigrationLock.Key})");
        var (code, _, stderr) = await run;
        Assert.True(code == 0, stderr);
        Assert.True((long)(await ScalarAsync(other, "SELECT count(*) FROM __ef_migrations_history"))! > 0);
    }

    private static async Task<object?> ScalarAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        var value = await command.ExecuteScalarAsync();
        return value is DBNull ? null : value;
    }
}
