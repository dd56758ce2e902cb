using Gymwire.Features.Events;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// The dispatcher's passes, driven by hand on a node whose own dispatcher and worker are off. A pass says whether it
/// may have left events behind, and the dispatcher reads the outbox again only then: a wake-up that finds a few events
/// costs one read of the outbox, not a second one that finds none.
/// </summary>
public abstract class DispatcherPassTests(WebhookFixture fx)
{
    public sealed class Sqlite(SqliteNoDispatcher f) : DispatcherPassTests(f), IClassFixture<SqliteNoDispatcher>;
    public sealed class Postgres(PostgresNoDispatcher f) : DispatcherPassTests(f), IClassFixture<PostgresNoDispatcher>;

    [Fact]
    public async Task A_pass_says_more_may_be_left_only_when_it_read_a_full_batch_or_fanned_out_part_of_what_it_read()
    {
        var dispatcher = ActivatorUtilities.CreateInstance<WebhookDispatcher>(fx.Services);
        var gym = await fx.CreateGymAsync();
        var quiet = await fx.CreateGymAsync();
        const int subscriptions = 10;
        for (var i = 0; i < subscriptions; i++)
        {
            // Never sent: this node's worker is off.
            await gym.CreateWebhookAsync($"http://127.0.0.1:9/pass/{i}", "lead.created");
        }
        // What setting the gyms up left in the outbox.
        WebhookDispatcher.DispatchedBatch pass;
        do
        {
            pass = await dispatcher.DispatchBatchAsync(CancellationToken.None);
        }
        while (pass.MayHaveMore);
        Assert.Equal(new WebhookDispatcher.DispatchedBatch(0, false), await dispatcher.DispatchBatchAsync(CancellationToken.None));

        // A few events, all fanned out: nothing is left.
        await AddEventsAsync(gym.GymId, 3);
        Assert.Equal(new WebhookDispatcher.DispatchedBatch(3, false), await dispatcher.DispatchBatchAsync(CancellationToken.None));

        // More deliveries than one transaction takes: the pass stops at MaxDeliveriesPerBatch, and says so.
        var perPass = WebhookDispatcher.MaxDeliveriesPerBatch / subscriptions;
        await AddEventsAsync(gym.GymId, perPass + 5);
        Assert.Equal(new WebhookDispatcher.DispatchedBatch(perPass, true), await dispatcher.DispatchBatchAsync(CancellationToken.None));
        Assert.Equal(new WebhookDispatcher.DispatchedBatch(5, false), await dispatcher.DispatchBatchAsync(CancellationToken.None));

        // More events than one pass reads (a gym with no webhooks: no deliveries, each event only marked dispatched).
        await AddEventsAsync(quiet.GymId, WebhookDispatcher.BatchSize + 1);
        Assert.Equal(new WebhookDispatcher.DispatchedBatch(WebhookDispatcher.BatchSize, true), await dispatcher.DispatchBatchAsync(CancellationToken.None));
        Assert.Equal(new WebhookDispatcher.DispatchedBatch(1, false), await dispatcher.DispatchBatchAsync(CancellationToken.None));

        Assert.Equal((3 + perPass + 5) * subscriptions, await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.GymId == gym.GymId)));
        Assert.Equal(0, await fx.WithDbAsync(db => db.OutboxEvents.CountAsync(e => e.DispatchedAt == null)));
    }

    private Task AddEventsAsync(Guid gymId, int count) => fx.WithDbAsync(async db =>
    {
        for (var i = 0; i < count; i++)
        {
            db.AddEvent(gymId, EventCatalog.LeadCreated, new { lead_id = Guid.NewGuid(), n = i }, fx.Clock.GetUtcNow().UtcDateTime);
        }
        return await db.SaveChangesAsync();
    });
}

/// <summary><see cref="WebhookFixture"/> with neither the dispatcher nor the delivery worker running: tests drive the passes.</summary>
public abstract class NoDispatcherFixture(Store store) : WebhookFixture(store)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
        [.. base.Settings(), new("Webhooks:DispatcherEnabled", "false"), new("Webhooks:WorkerEnabled", "false")];
}

public sealed class SqliteNoDispatcher() : NoDispatcherFixture(Store.Sqlite);

public sealed class PostgresNoDispatcher() : NoDispatcherFixture(Store.Postgres);
