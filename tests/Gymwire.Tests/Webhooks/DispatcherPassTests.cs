using Gymwire.Features.Cluster;
using Gymwire.Features.Events;
using Gymwire.Features.Webhooks;
using Gymwire.Infrastructure;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// The dispatcher's passes, driven by hand on a node whose own dispatcher and worker are off. A pass says whether it
/// may have left events behind, and the dispatcher reads the outbox again only then: a wake-up that finds a few events
/// costs one read of the outbox, not a second one that finds none.
/// </summary>
public abstract class DispatcherPassTests(NoDispatcherFixture fx)
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

    [Fact]
    public async Task A_pass_inserts_as_many_new_deliveries_claimed_as_the_worker_has_free_slots_and_hands_them_over_as_a_claim_reads_them()
    {
        await fx.DrainOutboxAsync();
        var gym = await fx.CreateGymAsync();
        var hooks = new List<CreatedHook>();
        for (var i = 0; i < 3; i++)
        {
            hooks.Add(await gym.CreateWebhookAsync($"http://127.0.0.1:9/handed/{i}", "lead.created"));
        }
        var paused = await gym.CreateWebhookAsync("http://127.0.0.1:9/handed/paused", "lead.created");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == paused.Id).ExecuteUpdateAsync(u => u
            .SetProperty(s => s.ConsecutiveFailures, 5).SetProperty(s => s.PauseLength, TimeSpan.FromMinutes(1))
            .SetProperty(s => s.PausedUntil, now.AddMinutes(1)).SetProperty(s => s.FailingSince, now)));
        await fx.DrainOutboxAsync();
        // A worker with four slots, two of them in use: two of the three claimable deliveries are handed over.
        var slots = OpenSlots(4);
        Assert.Equal(2, slots.Take(2));
        var dispatcher = ActivatorUtilities.CreateInstance<WebhookDispatcher>(fx.Services, slots);

        await AddEventsAsync(gym.GymId, 1);
        Assert.Equal(new WebhookDispatcher.DispatchedBatch(1, false), await dispatcher.DispatchBatchAsync(CancellationToken.None));

        Assert.True(slots.TryTakeHandedOver(out var handed));
        Assert.False(slots.TryTakeHandedOver(out _));
        Assert.Equal(2, handed.Count);
        Assert.Equal(0, slots.Free);
        var rows = await fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().Where(d => d.GymId == gym.GymId).ToDictionaryAsync(d => d.Id));
        Assert.Equal(4, rows.Count);
        var lease = fx.Services.GetRequiredService<IOptions<WebhookOptions>>().Value.EffectiveClaimLease;
        var node = fx.Services.GetRequiredService<ThisNode>().Id;
        foreach (var delivery in handed)
        {
            var row = rows[delivery.Id];
            Assert.Equal(node, row.ClaimedBy);
            Assert.Equal(now + lease, row.LockedUntil!.Value, TimeSpan.FromMilliseconds(1));
            Assert.Equal(row.LockedUntil, row.NextAttemptAt);
            Assert.Equal(now, row.DueBeforeClaim!.Value, TimeSpan.FromMilliseconds(1));
            Assert.Equal(now, delivery.DueAt!.Value, TimeSpan.FromMilliseconds(1));
            // What the worker gets is what reading the row with its subscription and event gives.
            var read = await fx.Queue().ReadUnfinishedAsync(delivery.Id, CancellationToken.None);
            Assert.NotNull(read);
            Assert.Equal(read.Body, delivery.Body);
            Assert.Equal(read with { Body = null, DueAt = null, CreatedAt = default }, delivery with { Body = null, DueAt = null, CreatedAt = default, Committed = null, Sends = null });
            Assert.True(await delivery.Committed!);
            Assert.Equal(WebhookDelivery.IdFor(delivery.EventId!.Value, delivery.SubscriptionId), delivery.Id);
            Assert.Equal(read.CreatedAt, delivery.CreatedAt, TimeSpan.FromMilliseconds(1));
        }
        // The third waits in the queue, due now; the paused endpoint's waits for the pause's end.
        var queued = rows.Values.Where(r => !handed.Any(h => h.Id == r.Id)).OrderBy(r => r.NextAttemptAt).ToList();
        Assert.All(queued, r => Assert.Null(r.ClaimedBy));
        Assert.Equal([now, now.AddMinutes(1)], queued.Select(r => r.NextAttemptAt!.Value));
        Assert.Equal(paused.Id, queued[1].SubscriptionId);

        // A worker that has stopped takes no slot: nothing is claimed.
        slots.Return(4);
        slots.Close();
        await AddEventsAsync(gym.GymId, 1);
        Assert.Equal(new WebhookDispatcher.DispatchedBatch(1, false), await dispatcher.DispatchBatchAsync(CancellationToken.None));
        Assert.False(slots.TryTakeHandedOver(out _));
        Assert.Equal(8, await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.GymId == gym.GymId)));
        Assert.Equal(2, await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.GymId == gym.GymId && d.ClaimedBy != null)));
    }

    [Fact]
    public async Task A_pass_whose_worker_stops_before_its_commit_gives_its_claims_and_slots_back()
    {
        var gym = await GymWithWebhooksAsync("stopping", 3);
        var slots = OpenSlots(4);
        // The worker stops after the pass has claimed its deliveries and before they are handed over.
        var queue = new WrappedQueue(fx.Queue()) { OnClaimNew = slots.Close };
        var dispatcher = ActivatorUtilities.CreateInstance<WebhookDispatcher>(fx.Services, slots, (IDeliveryQueue)queue);

        await AddEventsAsync(gym.GymId, 1);
        Assert.Equal(new WebhookDispatcher.DispatchedBatch(1, false), await dispatcher.DispatchBatchAsync(CancellationToken.None));

        Assert.False(slots.TryTakeHandedOver(out _));
        Assert.Equal(4, slots.Free);
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var rows = await fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().Where(d => d.GymId == gym.GymId).ToListAsync());
        Assert.Equal(3, rows.Count);
        Assert.All(rows, r =>
        {
            Assert.Null(r.ClaimedBy);
            Assert.Null(r.LockedUntil);
            Assert.Equal(now, r.NextAttemptAt!.Value, TimeSpan.FromMilliseconds(1));
        });
    }

    [Fact]
    public async Task A_pass_hands_its_claims_over_before_its_commit_and_one_rolled_back_hands_the_same_deliveries_over_again()
    {
        var gym = await GymWithWebhooksAsync("early", 2);
        var slots = OpenSlots(4);
        IReadOnlyList<ClaimedDelivery>? early = null;
        var queue = new WrappedQueue(fx.Queue())
        {
            // Before the insert, the worker already has the claims, not yet committed; then the enqueue fails.
            AfterFanOut = _ =>
            {
                Assert.True(slots.TryTakeHandedOver(out early));
                Assert.All(early, d => Assert.False(d.Committed!.IsCompleted));
                throw new InvalidOperationException("The connection was lost (a test's injected failure)");
            },
        };
        var dispatcher = ActivatorUtilities.CreateInstance<WebhookDispatcher>(fx.Services, slots, (IDeliveryQueue)queue);

        await AddEventsAsync(gym.GymId, 1);
        await Assert.ThrowsAsync<InvalidOperationException>(() => dispatcher.DispatchBatchAsync(CancellationToken.None));

        // Nothing was written, the worker is told so, and the claims handed over keep their slots until it drops them.
        Assert.NotNull(early);
        Assert.Equal(2, early.Count);
        Assert.All(early, d => Assert.False(d.Committed!.Result));
        Assert.Equal(0, await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.GymId == gym.GymId)));
        Assert.Equal(2, slots.Free);
        slots.Return(2);

        // The next pass makes the same deliveries under the same ids, and, after a failed pass, hands them over only
        // once committed: a fault that lasted would otherwise send them again at every pass.
        var handedBeforeCommit = true;
        queue.AfterFanOut = events =>
        {
            handedBeforeCommit = slots.TryTakeHandedOver(out _);
            return Task.CompletedTask;
        };
        Assert.Equal(new WebhookDispatcher.DispatchedBatch(1, false), await dispatcher.DispatchBatchAsync(CancellationToken.None));
        Assert.False(handedBeforeCommit);
        Assert.True(slots.TryTakeHandedOver(out var again));
        Assert.Equal(early.Select(d => d.Id).Order(), again.Select(d => d.Id).Order());
        Assert.All(again, d => Assert.True(d.Committed!.Result));
        var rows = await fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().Where(d => d.GymId == gym.GymId).Select(d => d.Id).ToListAsync());
        Assert.Equal(early.Select(d => d.Id).Order(), rows.Order());
        slots.Return(2);

        // After a pass that committed, the next hands over before its commit again.
        await AddEventsAsync(gym.GymId, 1);
        Assert.Equal(new WebhookDispatcher.DispatchedBatch(1, false), await dispatcher.DispatchBatchAsync(CancellationToken.None));
        Assert.True(handedBeforeCommit);
    }

    [Fact]
    public async Task A_pass_leaves_a_failing_endpoints_delivery_to_a_claim_which_takes_its_probe()
    {
        await fx.DrainOutboxAsync();
        var gym = await fx.CreateGymAsync();
        var healthy = await gym.CreateWebhookAsync("http://127.0.0.1:9/probe/healthy", "lead.created");
        var failing = await gym.CreateWebhookAsync("http://127.0.0.1:9/probe/failing", "lead.created");
        // Failing, its pause over: its next attempt is a probe.
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var threshold = fx.Services.GetRequiredService<IOptions<WebhookOptions>>().Value.FailingEndpointThreshold;
        await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == failing.Id).ExecuteUpdateAsync(u => u
            .SetProperty(s => s.ConsecutiveFailures, threshold).SetProperty(s => s.PauseLength, TimeSpan.FromMinutes(1))
            .SetProperty(s => s.PausedUntil, now.AddMinutes(-1)).SetProperty(s => s.FailingSince, now.AddMinutes(-5))));
        await fx.DrainOutboxAsync();
        var slots = OpenSlots(4);
        var dispatcher = ActivatorUtilities.CreateInstance<WebhookDispatcher>(fx.Services, slots);

        await AddEventsAsync(gym.GymId, 1);
        Assert.Equal(new WebhookDispatcher.DispatchedBatch(1, false), await dispatcher.DispatchBatchAsync(CancellationToken.None));

        Assert.True(slots.TryTakeHandedOver(out var handed));
        Assert.Equal(healthy.Id, Assert.Single(handed).SubscriptionId);
        var probe = Assert.Single(await fx.DeliveriesAsync(failing.Id));
        Assert.Null(probe.ClaimedBy);
        Assert.Equal(now, probe.NextAttemptAt!.Value, TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public async Task A_pass_inserts_once_the_worker_has_sent_what_it_handed_over_and_holds_no_write_lock_while_it_waits()
    {
        var gym = await GymWithWebhooksAsync("sends", 2);
        var slots = OpenSlots(4);
        var options = Options.Create(new WebhookOptions { HandOverSendsWait = TimeSpan.FromMinutes(5) });
        var dispatcher = ActivatorUtilities.CreateInstance<WebhookDispatcher>(fx.Services, slots, options);
        await AddEventsAsync(gym.GymId, 1);

        var pass = dispatcher.DispatchBatchAsync(CancellationToken.None);
        IReadOnlyList<ClaimedDelivery>? handed;
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!slots.TryTakeHandedOver(out handed))
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(30), "nothing was handed over");
            await Task.Delay(10);
        }
        Assert.Equal(2, handed.Count);

        // While it waits, another write goes through (on SQLite, the pass has not taken the database's write lock), and
        // nothing of the pass is written. (Half a second lets a pass that did not wait show it: a bound on a wrong path.)
        await fx.WithDbAsync(db => db.Gyms.Where(g => g.Id == gym.GymId).ExecuteUpdateAsync(u => u.SetProperty(g => g.Name, "Renamed while the fan-out waits")));
        await Task.WhenAny(pass, Task.Delay(TimeSpan.FromMilliseconds(500)));
        Assert.False(pass.IsCompleted, "the pass did not wait for the sends");
        Assert.Equal(0, await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.GymId == gym.GymId)));
        handed[0].MarkStarted();
        handed[0].MarkStarted();
        Assert.False(pass.IsCompleted);
        Assert.False(handed[0].Committed!.IsCompleted);

        // The last send on its way: the pass inserts and commits.
        handed[1].MarkStarted();
        Assert.Equal(new WebhookDispatcher.DispatchedBatch(1, false), await pass.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(await handed[1].Committed!);
        Assert.Equal(handed.Select(d => d.Id).Order(), await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.GymId == gym.GymId).Select(d => d.Id).OrderBy(id => id).ToListAsync()));
    }

    [Fact]
    public async Task A_webhook_deleted_while_its_event_is_fanned_out_fails_the_pass_with_nothing_written_and_the_next_pass_leaves_it_out()
    {
        var gym = await GymWithWebhooksAsync("deleted", 2);
        var ids = await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.GymId == gym.GymId).Select(s => s.Id).OrderBy(id => id).ToListAsync());
        var queue = new WrappedQueue(fx.Queue())
        {
            AfterFanOut = _ => fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == ids[0]).ExecuteDeleteAsync()),
        };
        var dispatcher = ActivatorUtilities.CreateInstance<WebhookDispatcher>(fx.Services, (IDeliveryQueue)queue);
        await AddEventsAsync(gym.GymId, 1);

        // The dispatcher's loop runs such a pass again at once, as it does one PostgreSQL rolled back for a deadlock.
        var failed = await Assert.ThrowsAnyAsync<Exception>(() => dispatcher.DispatchBatchAsync(CancellationToken.None));
        Assert.True(ErrorHandling.IsForeignKeyViolation(failed), failed.ToString());
        Assert.Equal(0, await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.GymId == gym.GymId)));

        queue.AfterFanOut = null;
        Assert.Equal(new WebhookDispatcher.DispatchedBatch(1, false), await dispatcher.DispatchBatchAsync(CancellationToken.None));
        var delivery = Assert.Single(await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.GymId == gym.GymId).ToListAsync()));
        Assert.Equal(ids[1], delivery.SubscriptionId);
    }

    /// <summary>A worker's slots, open, none taken.</summary>
    private static DeliverySlots OpenSlots(int capacity)
    {
        var slots = new DeliverySlots(Options.Create(new WebhookOptions { MaxConcurrentDeliveries = capacity }));
        slots.Open();
        return slots;
    }

    /// <summary>A gym with <paramref name="count"/> webhooks for lead.created, and an outbox left empty by them and earlier tests.</summary>
    private async Task<TestGym> GymWithWebhooksAsync(string path, int count)
    {
        await fx.DrainOutboxAsync();
        var gym = await fx.CreateGymAsync();
        for (var i = 0; i < count; i++)
        {
            await gym.CreateWebhookAsync($"http://127.0.0.1:9/{path}/{i}", "lead.created");
        }
        await fx.DrainOutboxAsync();
        return gym;
    }

    /// <summary>Fans out whatever earlier tests and set-up left in the outbox, with no worker to hand anything to.</summary>
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

    /// <summary>Fans out every undispatched event (earlier tests' too), so that a test's own pass sees only its own.</summary>
    public async Task DrainOutboxAsync()
    {
        var dispatcher = ActivatorUtilities.CreateInstance<WebhookDispatcher>(Services);
        while ((await dispatcher.DispatchBatchAsync(CancellationToken.None)).MayHaveMore)
        {
        }
    }
}

public sealed class SqliteNoDispatcher() : NoDispatcherFixture(Store.Sqlite);

public sealed class PostgresNoDispatcher() : NoDispatcherFixture(Store.Postgres);
