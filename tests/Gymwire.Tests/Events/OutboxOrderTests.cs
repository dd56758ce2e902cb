using System.Net;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Features.Events;
using Gymwire.Features.Zapier;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Npgsql;

namespace Gymwire.Tests.Events;

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

        // The first write stalls right after its event row is numbered, until released.
        await using var stall = await OutboxStall.StartAsync(fx.ConnectionString, 424243, "Late");
        var late = writer.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Late" });
        await stall.WaitForWaitersAsync(1);
        var early = writer.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Early" });
        // Either the second write waits (for the gym's lock, or queued behind the first write's batch for it: the
        // order holds), or it commits meanwhile (the defect).
        var writes = fx.Services.GetRequiredService<ActionWrites>();
        await Eventually.TrueAsync(async () => early.IsCompleted || writes.Waiting >= 1 || await stall.WaitersAsync() >= 2, what: "the second write to commit or wait");
        var during = await EventsAfterAsync(owner, baseline);

        await stall.ReleaseAsync();
        await (await late).AssertStatusAsync(HttpStatusCode.Created);
        await (await early).AssertStatusAsync(HttpStatusCode.Created);

        var next = during.Count == 0 ? baseline : during[^1].GetProperty("sequence").GetInt64();
        var names = during.Concat(await EventsAfterAsync(owner, next))
            .Select(e => e.GetProperty("data").GetProperty("first_name").GetString()).ToList();
        Assert.Equal(["Late", "Early"], names);
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

    [Fact]
    public async Task Actions_of_one_gym_wait_for_its_stalled_write_and_another_gyms_do_not()
    {
        async Task<HttpClient> WriterAsync()
        {
            var gym = await fx.CreateGymAsync();
            using var owner = gym.Owner();
            var key = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Zapier", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
            return fx.Client(key.GetProperty("key").GetString());
        }
        using var stalled = await WriterAsync();
        using var other = await WriterAsync();
        await using var stall = await OutboxStall.StartAsync(fx.ConnectionString, 424244, "Stalled");
        var first = stalled.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Stalled" });
        await stall.WaitForWaitersAsync(1);
        // The same gym's next action queues behind the stalled batch (its writes would wait for the gym's lock anyway).
        var writes = fx.Services.GetRequiredService<ActionWrites>();
        var queued = stalled.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Queued" });
        await Eventually.TrueAsync(() => Task.FromResult(writes.Waiting >= 1), what: "the gym's second action to queue");
        // Another gym's action is written meanwhile.
        await (await other.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Other gym" }).WaitAsync(TimeSpan.FromSeconds(30)))
            .AssertStatusAsync(HttpStatusCode.Created);
        Assert.False(queued.IsCompleted);

        await stall.ReleaseAsync();
        await (await first).AssertStatusAsync(HttpStatusCode.Created);
        await (await queued).AssertStatusAsync(HttpStatusCode.Created);
    }

    private static async Task<List<JsonElement>> EventsAfterAsync(HttpClient owner, long after) =>
        (await (await owner.GetAsync($"/api/gym/events?after_sequence={after}&limit=200")).AssertStatusAsync(HttpStatusCode.OK))
            .GetProperty("events").EnumerateArray().Where(e => e.GetProperty("event").GetString() == EventCatalog.LeadCreated).ToList();

    private static async Task ExecAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
