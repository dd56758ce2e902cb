using System.Runtime.CompilerServices;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
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
            await using var tx = await db.Database.BeginTransactionAsync();
            await DeliveryRows.InsertAsync(db, Enumerable.Range(0, 5_000).Select(i => new WebhookDelivery
            {
                Id = Guid.CreateVersion7(), GymId = gym.GymId, SubscriptionId = hook.Id, EventId = Guid.NewGuid(), Event = "lead.created",
                Payload = "{}", Status = DeliveryStatus.Pending, CreatedAt = dueAt, NextAttemptAt = dueAt.AddMilliseconds(i),
            }).ToList(), CancellationToken.None);
            await tx.CommitAsync();
            return 0;
        });

        var claim = WebhookSender.PostgresClaim(now, now.AddMinutes(1), 32, [], []);
        var unguided = await PlanAsync(claim, walk: false);
        // The stale estimate this test is about (if the planner stops making it, this test has lost its point).
        Assert.Contains("Sort", unguided);

        var plan = await PlanAsync(claim, walk: true);
        Assert.DoesNotContain("Sort", plan);
        Assert.DoesNotContain("Bitmap", plan);
        Assert.Contains("Index Scan using ix_webhook_deliveries_due", plan);

        // The settings end with the claim's statement batch: the next statement on the connection plans as usual.
        Assert.Equal("on", await fx.WithDbAsync(async db =>
        {
            var connection = (NpgsqlConnection)db.Database.GetDbConnection();
            await db.Database.OpenConnectionAsync();
            await using (var walk = new NpgsqlCommand(WebhookSender.PostgresQueueWalk + " SELECT 1", connection))
            {
                await walk.ExecuteScalarAsync();
            }
            await using var show = new NpgsqlCommand("SHOW enable_sort", connection);
            return (string)(await show.ExecuteScalarAsync())!;
        }));
    }

    /// <summary><c>EXPLAIN</c> (not run) of a statement, with or without the queue walk's settings before it in its batch.</summary>
    private Task<string> PlanAsync(FormattableString sql, bool walk) => fx.WithDbAsync(async db =>
    {
        var explain = FormattableStringFactory.Create($"EXPLAIN {sql.Format}", sql.GetArguments());
        await db.Database.OpenConnectionAsync();
        // EF binds the arguments as it does for the worker's own query.
        await using var command = db.Database.SqlQuery<string>(walk ? WebhookSender.WalkingTheQueue(explain) : explain).CreateDbCommand();
        var lines = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            lines.Add(reader.GetString(0));
        }
        return string.Join("\n", lines);
    });
}
