using Gymwire.Tests.Webhooks;
using Npgsql;

namespace Gymwire.Tests.Events;

/// <summary>
/// PostgreSQL: stalls every write whose outbox event's data contains a marker, right after the event row is numbered
/// (and its gym's event-order lock taken), until <see cref="ReleaseAsync"/>. A test trigger on <c>outbox_events</c>
/// waits on an advisory lock that this stall's own connection holds; disposing removes the trigger.
/// </summary>
public sealed class OutboxStall : IAsyncDisposable
{
    private readonly NpgsqlConnection _holder;
    private readonly int _key;
    private readonly string _name;

    private OutboxStall(NpgsqlConnection holder, int key, string name) => (_holder, _key, _name) = (holder, key, name);

    /// <param name="key">An advisory lock key of the test's own, so that tests running at once do not stall each other.</param>
    public static async Task<OutboxStall> StartAsync(string connectionString, int key, string marker)
    {
        var holder = new NpgsqlConnection(connectionString);
        await holder.OpenAsync();
        var stall = new OutboxStall(holder, key, $"test_stall_{key}");
        await stall.ExecAsync($"SELECT pg_advisory_lock({key})");
        await stall.ExecAsync($"""
            CREATE OR REPLACE FUNCTION {stall._name}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.data LIKE '%{marker}%' THEN PERFORM pg_advisory_xact_lock_shared({key}); END IF;
              RETURN NEW;
            END $$;
            CREATE TRIGGER {stall._name} AFTER INSERT ON outbox_events FOR EACH ROW EXECUTE FUNCTION {stall._name}();
            """);
        return stall;
    }

    /// <summary>Lets the stalled writes go on.</summary>
    public Task ReleaseAsync() => ExecAsync($"SELECT pg_advisory_unlock({_key})");

    /// <summary>Transactions of this database waiting for an advisory lock: the stalled ones, and any queued for a gym's event-order lock.</summary>
    public async Task<long> WaitersAsync()
    {
        await using var command = new NpgsqlCommand(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", _holder);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    public Task WaitForWaitersAsync(int count) =>
        Eventually.TrueAsync(async () => await WaitersAsync() >= count, what: $"{count} transaction(s) waiting on an advisory lock");

    public async ValueTask DisposeAsync()
    {
        await ExecAsync($"SELECT pg_advisory_unlock_all(); DROP TRIGGER IF EXISTS {_name} ON outbox_events; DROP FUNCTION IF EXISTS {_name}();");
        await _holder.DisposeAsync();
    }

    private async Task ExecAsync(string sql)
    {
        await using var command = new NpgsqlCommand(sql, _holder);
        await command.ExecuteNonQueryAsync();
    }
}
