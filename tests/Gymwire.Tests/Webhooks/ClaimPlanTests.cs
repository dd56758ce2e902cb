using System.Data.Common;
using Gymwire.Data;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// PostgreSQL's claim walks the due index in order whatever the planner's statistics say. A queue's statistics go
/// stale at once: analysed while few deliveries were due, then given a burst, the planner estimates a handful due and
/// (left to itself) collects every due row with a bitmap scan and sorts them, on every claim.
/// </summary>
public sealed class ClaimPlanTests(PostgresPipeline fx) : IClassFixture<PostgresPipeline>
{
    [Fact]
    public async Task After_a_burst_the_claim_still_walks_the_due_index_instead_of_sorting_every_due_row()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/plan"), "lead.created");
        // Due only for the plans below (their "now" is later still), never for the fixture's worker and its fake clock.
        var dueAt = fx.Clock.GetUtcNow().UtcDateTime.AddYears(5);
        var now = dueAt.AddYears(5);
        await fx.WithDbAsync(async db =>
        {
            await db.Database.ExecuteSqlRawAsync("ANALYZE webhook_deliveries");
            await InsertAsync(db, Burst(gym, hook, dueAt));
            return 0;
        });

        DbCommand Claim(GymwireDbContext db) => db.Database.SqlQuery<string>(PostgresDeliveryQueue.Claim(now, now.AddMinutes(1), 32, [], [], Guid.NewGuid())).CreateDbCommand();
        var unguided = await PlanAsync(Claim, walk: false);
        // The stale estimate this test is about (if the planner stops making it, this test has lost its point).
        Assert.Contains("Sort", unguided);

        var plan = await PlanAsync(Claim, walk: true);
        Assert.DoesNotContain("Sort", plan);
        Assert.DoesNotContain("Bitmap", plan);
        Assert.Contains("Index Scan using ix_webhook_deliveries_due", plan);

        // The settings end with the claim's statement batch: the next statement on the connection plans as usual.
        Assert.Equal("on", await fx.WithDbAsync(async db =>
        {
            var connection = (NpgsqlConnection)db.Database.GetDbConnection();
            await db.Database.OpenConnectionAsync();
            await using (var walk = new NpgsqlCommand(PostgresDeliveryQueue.PlannerSettings + " SELECT 1", connection))
            {
                await walk.ExecuteScalarAsync();
            }
            await using var show = new NpgsqlCommand("SHOW enable_sort", connection);
            return (string)(await show.ExecuteScalarAsync())!;
        }));
    }

    [Fact]
    public async Task The_claims_read_finds_its_deliveries_and_attempt_numbers_by_index_after_the_queue_was_analysed_empty()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/read"), "lead.created");
        var dueAt = fx.Clock.GetUtcNow().UtcDateTime.AddYears(5);
        // A queue emptied (delivered rows removed) and vacuumed, then given a burst: the statistics say the table's
        // pages hold no rows, so the planner takes a table scan for as cheap as an index lookup.
        var ids = await fx.WithDbAsync(async db =>
        {
            await InsertAsync(db, Burst(gym, hook, dueAt));
            await db.WebhookDeliveries.Where(d => d.GymId == gym.GymId).ExecuteDeleteAsync();
            await db.Database.ExecuteSqlRawAsync("VACUUM (ANALYZE) webhook_deliveries, webhook_attempts");
            var burst = Burst(gym, hook, dueAt);
            await InsertAsync(db, burst);
            return burst.Take(16).Select(d => d.Id).ToList();
        });

        // EF builds and binds the read as it does for the worker.
        DbCommand Read(GymwireDbContext db) => DeliveryQueue.ReadClaimed(db, ids).CreateDbCommand();
        var unguided = await PlanAsync(Read, walk: false);
        // The table scan this test is about (if the planner stops choosing it, this test has lost its point).
        Assert.Contains("Seq Scan on webhook_attempts", unguided);
        var plan = await PlanAsync(Read, walk: true);
        Assert.DoesNotContain("Seq Scan", plan);
        Assert.Contains("Index Scan using pk_webhook_deliveries", plan);
        Assert.Matches("Index (Only )?Scan (Backward )?using ix_webhook_attempts_[a-z_]+ on webhook_attempts", plan);
    }

    [Fact]
    public async Task A_vacuum_after_the_queue_empties_leaves_its_pages_so_cached_plans_still_see_a_table_worth_an_index()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/emptied"), "lead.created");
        var dueAt = fx.Clock.GetUtcNow().UtcDateTime.AddYears(5);
        var (before, after) = await fx.WithDbAsync(async db =>
        {
            async Task<long> SizeAsync() =>
                (await db.Database.SqlQueryRaw<long>("SELECT pg_relation_size('webhook_deliveries') AS \"Value\"").ToListAsync()).Single();
            // The burst fills the table's last pages; delivered and removed, it leaves them empty, and a vacuum used to
            // cut empty pages off the file's end. A table cut down to (nearly) no pages looks empty to the planner: the
            // attempts' foreign-key check, a plan each connection makes once and keeps, became a table scan, run for
            // every attempt recorded while the queue refilled (1.1 ms each in the bench's M6 isolation).
            await InsertAsync(db, Burst(gym, hook, dueAt));
            var filled = await SizeAsync();
            await db.WebhookDeliveries.Where(d => d.GymId == gym.GymId).ExecuteDeleteAsync();
            await db.Database.ExecuteSqlRawAsync("VACUUM webhook_deliveries");
            return (filled, await SizeAsync());
        });
        Assert.Equal(before, after);
    }

    [Fact]
    public async Task Moving_a_paused_endpoints_queued_deliveries_locks_them_in_one_walk_and_updates_each_by_key()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/moved"), "lead.created");
        var dueAt = fx.Clock.GetUtcNow().UtcDateTime.AddYears(5);
        await fx.WithDbAsync(async db =>
        {
            await InsertAsync(db, Burst(gym, hook, dueAt));
            await db.Database.ExecuteSqlRawAsync("ANALYZE webhook_deliveries");
            return 0;
        });

        var pauseEnd = dueAt.AddMinutes(1);
        DbCommand Move(GymwireDbContext db) => db.Database.SqlQuery<string>(PostgresDeliveryQueue.MoveQueued(hook.Id, pauseEnd, DateTime.MinValue, pauseEnd, dueAt)).CreateDbCommand();
        var plan = await PlanAsync(Move, walk: true);
        // The locking walk runs once (an InitPlan), whatever the statistics, and the rows it locked are updated by key:
        // joined to it, or as "id IN (...)", the planner may walk it again for each row.
        Assert.Contains("InitPlan", plan);
        Assert.DoesNotContain("SubPlan", plan);
        Assert.DoesNotContain("Join", plan);
        Assert.DoesNotContain("Seq Scan", plan);
        Assert.Contains("Index Scan using pk_webhook_deliveries", plan);
    }

    /// <summary>5,000 pending deliveries of one webhook, due a millisecond apart from <paramref name="dueAt"/>.</summary>
    private static WebhookDelivery[] Burst(TestGym gym, CreatedHook hook, DateTime dueAt) => [.. Enumerable.Range(0, 5_000).Select(i => new WebhookDelivery
    {
        Id = Guid.CreateVersion7(), GymId = gym.GymId, SubscriptionId = hook.Id, EventId = Guid.NewGuid(), Event = "lead.created",
        Payload = "{}", Status = DeliveryStatus.Pending, CreatedAt = dueAt, NextAttemptAt = dueAt.AddMilliseconds(i),
    })];

    private static async Task InsertAsync(GymwireDbContext db, IReadOnlyList<WebhookDelivery> rows)
    {
        await using var tx = await db.Database.BeginTransactionAsync();
        await DeliveryRows.InsertAsync(db, TestDeliveryRows.PerStatement(db), rows, CancellationToken.None);
        await tx.CommitAsync();
    }

    /// <summary>
    /// <c>EXPLAIN</c> (not run) of a statement as EF builds and binds it, with or without the queue walk's settings
    /// before it in its batch, inside a transaction as the worker runs it (rolled back).
    /// </summary>
    private Task<string> PlanAsync(Func<GymwireDbContext, DbCommand> statement, bool walk) => fx.WithDbAsync(async db =>
    {
        await db.Database.OpenConnectionAsync();
        await using var tx = await db.Database.BeginTransactionAsync();
        await using var command = statement(db);
        command.CommandText = $"{(walk ? PostgresDeliveryQueue.PlannerSettings : "")}\nEXPLAIN {command.CommandText}";
        command.Transaction = tx.GetDbTransaction();
        var lines = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                lines.Add(reader.GetString(0));
            }
        }
        await tx.RollbackAsync();
        return string.Join("\n", lines);
    });
}
