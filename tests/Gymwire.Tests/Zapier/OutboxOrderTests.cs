using System.Net;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Features.Events;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Npgsql;

namespace Gymwire.Tests.Zapier;

/// <summary>
/// PostgreSQL only (SQLite has one writer): the event log's insert trigger numbers each event under its gym's advisory
/// lock (docs/polling.md), also for <c>create_lead</c>, whose batch runs in PostgreSQL's implicit transaction; and the
/// lock a save of several gyms takes first (<see cref="PostgresOutboxOrder"/>) is the trigger's.
/// </summary>
public sealed class OutboxOrderTests(PostgresGymwire fx) : IClassFixture<PostgresGymwire>
{
    [Fact]
    public async Task A_create_lead_that_commits_late_with_a_lower_sequence_is_not_skipped_by_the_event_feed()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var key = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Zapier", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        using var writer = fx.Client(key.GetProperty("key").GetString());
        await (await writer.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Before" })).AssertStatusAsync(HttpStatusCode.Created);
        var baseline = (await EventsAfterAsync(owner, 0))[^1].GetProperty("sequence").GetInt64();

        // A test trigger stalls the first write right after its event row is numbered, until the holder lets go.
        const int StallKey = 424243;
        await using var holder = new NpgsqlConnection(fx.ConnectionString);
        await holder.OpenAsync();
        await ExecAsync(holder, $"SELECT pg_advisory_lock({StallKey})");
        await ExecAsync(holder, $"""
            CREATE OR REPLACE FUNCTION test_stall_lead() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.data LIKE '%Late%' THEN PERFORM pg_advisory_xact_lock_shared({StallKey}); END IF;
              RETURN NEW;
            END $$;
            CREATE TRIGGER test_stall_lead AFTER INSERT ON outbox_events FOR EACH ROW EXECUTE FUNCTION test_stall_lead();
            """);
        try
        {
            var late = writer.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Late" });
            await WaitForLockWaitersAsync(holder, 1);
            var early = writer.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Early" });
            // Either the second write waits for the gym's lock (the order holds), or it commits meanwhile (the defect).
            await Eventually.TrueAsync(async () => early.IsCompleted || await LockWaitersAsync(holder) >= 2, what: "the second write to commit or wait");
            var during = await EventsAfterAsync(owner, baseline);

            await ExecAsync(holder, $"SELECT pg_advisory_unlock({StallKey})");
            await (await late).AssertStatusAsync(HttpStatusCode.Created);
            await (await early).AssertStatusAsync(HttpStatusCode.Created);

            var next = during.Count == 0 ? baseline : during[^1].GetProperty("sequence").GetInt64();
            var names = during.Concat(await EventsAfterAsync(owner, next))
                .Select(e => e.GetProperty("data").GetProperty("first_name").GetString()).ToList();
            Assert.Equal(["Late", "Early"], names);
        }
        finally
        {
            await ExecAsync(holder, "SELECT pg_advisory_unlock_all(); DROP TRIGGER IF EXISTS test_stall_lead ON outbox_events; DROP FUNCTION IF EXISTS test_stall_lead();");
        }
    }

    [Fact]
    public async Task The_event_insert_locks_the_key_that_a_save_of_several_gyms_locks_first()
    {
        var real = (await fx.CreateGymAsync()).GymId;
        // Ids whose last 32 bits have the sign bit clear and set, and a real one.
        Guid[] gyms = [Guid.Parse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"), Guid.Parse("0190a1b2-c3d4-7e5f-8a9b-0c1dffffffff"), real];
        await using var connection = new NpgsqlConnection(fx.ConnectionString);
        await connection.OpenAsync();
        foreach (var gymId in gyms)
        {
            // Everything here is rolled back: a copy of the real gym under the id, and an event of it.
            await using var transaction = await connection.BeginTransactionAsync();
            await ExecAsync(connection, $"CREATE TEMP TABLE probe_gym ON COMMIT DROP AS SELECT * FROM gyms WHERE id = '{real}'");
            await ExecAsync(connection, $"UPDATE probe_gym SET id = '{gymId}'");
            await ExecAsync(connection, "INSERT INTO gyms SELECT * FROM probe_gym ON CONFLICT (id) DO NOTHING");
            await ExecAsync(connection, $"INSERT INTO outbox_events (id, gym_id, type, data, occurred_at) VALUES (gen_random_uuid(), '{gymId}', 'lead.created', '{{}}', now())");
            var keys = new List<long>();
            await using (var held = new NpgsqlCommand(
                $"SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = {(uint)PostgresOutboxOrder.LockSpace}::bigint::oid AND objsubid = 2", connection))
            await using (var reader = await held.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    keys.Add(reader.GetInt64(0));
                }
            }
            await transaction.RollbackAsync();
            Assert.Equal([(long)(uint)PostgresOutboxOrder.LockKey(gymId)], keys);
        }
    }

    private static async Task<List<JsonElement>> EventsAfterAsync(HttpClient owner, long after) =>
        (await (await owner.GetAsync($"/api/gym/events?after_sequence={after}&limit=200")).AssertStatusAsync(HttpStatusCode.OK))
            .GetProperty("events").EnumerateArray().Where(e => e.GetProperty("event").GetString() == EventCatalog.LeadCreated).ToList();

    private static async Task ExecAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<long> LockWaitersAsync(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static Task WaitForLockWaitersAsync(NpgsqlConnection connection, int count) =>
        Eventually.TrueAsync(async () => await LockWaitersAsync(connection) >= count, what: $"{count} transaction(s) waiting on an advisory lock");
}
