using Gymwire.Data;
using Gymwire.Features.Events;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Gymwire.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.Options;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// The delivery pipeline's batching: bulk fan-out rows, claims read with their subscriptions, attempts recorded in
/// group commits. Each must store and decide exactly what the one-at-a-time path did.
/// </summary>
public abstract class DeliveryPipelineTests(WebhookFixture fx)
{
    public sealed class Sqlite(SqlitePipeline f) : DeliveryPipelineTests(f), IClassFixture<SqlitePipeline>;
    public sealed class Postgres(PostgresPipeline f) : DeliveryPipelineTests(f), IClassFixture<PostgresPipeline>;

    /// <summary>A pending lead.created delivery with no due time: no worker claims it until a test makes it due.</summary>
    private static WebhookDelivery Parked(Guid gymId, Guid subscriptionId, DateTime now) => new()
    {
        Id = Guid.CreateVersion7(), GymId = gymId, SubscriptionId = subscriptionId, EventId = Guid.NewGuid(), Event = "lead.created",
        Payload = WebhookPayloads.Build(Guid.NewGuid(), "lead.created", gymId, "{}", now), Status = DeliveryStatus.Pending,
        CreatedAt = now, NextAttemptAt = null,
    };

    /// <summary>Saves <paramref name="count"/> <see cref="Parked"/> deliveries and returns their ids, in order.</summary>
    /// <summary>
    /// Moves every other subscription's queued deliveries in this fixture a day out, so that a test's claims across the
    /// whole queue (oldest due first) take only its own rows, not those earlier tests left due.
    /// </summary>
    private Task PostponeOthersAsync(Guid subscriptionId, DateTime now) => fx.WithDbAsync(db => db.WebhookDeliveries
        .Where(d => d.SubscriptionId != subscriptionId && d.NextAttemptAt != null && d.NextAttemptAt <= now.AddDays(1))
        .ExecuteUpdateAsync(u => u.SetProperty(d => d.NextAttemptAt, now.AddDays(1))));

    private Task<List<Guid>> ParkAsync(Guid gymId, Guid subscriptionId, int count, DateTime now) => fx.WithDbAsync(async db =>
    {
        var list = Enumerable.Range(0, count).Select(_ => Parked(gymId, subscriptionId, now)).ToList();
        db.WebhookDeliveries.AddRange(list);
        await db.SaveChangesAsync();
        return list.Select(d => d.Id).ToList();
    });

    [Fact]
    public async Task Bulk_inserted_delivery_rows_read_back_exactly_as_entities_saved_by_EF()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/bulk"), "lead.created");
        var now = new DateTime(2026, 4, 16, 12, 0, 0, DateTimeKind.Utc).AddTicks(1_234_560); // microseconds: PostgreSQL keeps no finer
        WebhookDelivery Row(Guid? eventId) => new()
        {
            Id = Guid.CreateVersion7(), GymId = gym.GymId, SubscriptionId = hook.Id, EventId = eventId, Event = "lead.created",
            Payload = """{"id":"x","event":"lead.created","data":{"name":"Zoë \"quoted\" 🥋"}}""", Status = DeliveryStatus.Retrying,
            AttemptCount = 2, CreatedAt = now, NextAttemptAt = now.AddYears(5), IsTest = true,
        };
        var viaEf = Row(Guid.NewGuid());
        var viaBulk = Enumerable.Range(0, 23).Select(i => Row(i == 0 ? null : Guid.NewGuid())).ToList();
        await fx.WithDbAsync(async db =>
        {
            db.WebhookDeliveries.Add(viaEf);
            await db.SaveChangesAsync();
            await using var tx = await db.Database.BeginTransactionAsync();
            await DeliveryRows.InsertAsync(db, TestDeliveryRows.PerStatement(db), viaBulk, CancellationToken.None);
            await tx.CommitAsync();
            return 0;
        });

        var stored = await fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().Where(d => d.SubscriptionId == hook.Id).ToDictionaryAsync(d => d.Id));
        Assert.Equal(24, stored.Count);
        foreach (var expected in viaBulk.Append(viaEf))
        {
            var actual = stored[expected.Id];
            Assert.Equal((expected.GymId, expected.SubscriptionId, expected.EventId, expected.Event, expected.Payload, expected.Status),
                (actual.GymId, actual.SubscriptionId, actual.EventId, actual.Event, actual.Payload, actual.Status));
            Assert.Equal((expected.AttemptCount, expected.CreatedAt, expected.NextAttemptAt, expected.IsTest, actual.LockedUntil),
                (actual.AttemptCount, actual.CreatedAt, actual.NextAttemptAt, actual.IsTest, (DateTime?)null));
        }
        // The stored text/values are the same, not only the round trip: EF queries filter on them.
        var sameCreated = await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.SubscriptionId == hook.Id && d.CreatedAt == now && d.GymId == gym.GymId));
        Assert.Equal(24, sameCreated);
        var nullEvent = await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.SubscriptionId == hook.Id && d.EventId == null));
        Assert.Equal(1, nullEvent);
    }

    [Fact]
    public async Task Bulk_attempt_rows_and_outcome_updates_read_back_exactly_as_written_by_EF()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/rows"), "lead.created");
        var now = new DateTime(2026, 4, 16, 12, 0, 0, DateTimeKind.Utc).AddTicks(1_234_560); // microseconds: PostgreSQL keeps no finer
        var deliveries = Enumerable.Range(0, 24).Select(_ => new WebhookDelivery
        {
            Id = Guid.CreateVersion7(), GymId = gym.GymId, SubscriptionId = hook.Id, EventId = Guid.NewGuid(), Event = "lead.created",
            Payload = "{}", Status = DeliveryStatus.Pending, CreatedAt = now, NextAttemptAt = null, LockedUntil = now.AddMinutes(1),
        }).ToList();
        await fx.WithDbAsync(async db =>
        {
            db.WebhookDeliveries.AddRange(deliveries);
            return await db.SaveChangesAsync();
        });
        // Every other row has its nullable columns null; one row of each kind goes through EF for comparison.
        DeliveryOutcome Outcome(int i) => i % 2 == 0
            ? new(deliveries[i].Id, DeliveryStatus.Retrying, 3, now.AddSeconds(i), 503, "Zoë \"quoted\" 🥋 " + i, now.AddHours(i))
            : new(deliveries[i].Id, DeliveryStatus.Delivered, 1, null, null, null, null);
        WebhookAttempt Attempt(int i) => new()
        {
            Id = Guid.CreateVersion7(), GymId = gym.GymId, DeliveryId = deliveries[i].Id, Number = i + 1, AttemptedAt = now.AddSeconds(i),
            StatusCode = i % 2 == 0 ? 503 : null, DurationMs = 17 * i, Error = i % 2 == 0 ? null : "Timed out après 10 s",
            ResponseHeaders = i % 2 == 0 ? """{"content-type":"text/plain"}""" : null, ResponseBody = i % 2 == 0 ? "Zoë 🥋 " + new string('x', 5000) : null,
            ResponseBodyTruncated = i % 2 == 0, Trigger = i % 2 == 0 ? "retry" : "initial",
        };
        var outcomes = Enumerable.Range(0, 24).Select(Outcome).ToList();
        var attempts = Enumerable.Range(0, 24).Select(Attempt).ToList();
        await fx.WithDbAsync(async db =>
        {
            // Rows 0 and 1 through EF, the rest in bulk (PostgreSQL: one multi-row statement of 22).
            foreach (var i in new[] { 0, 1 })
            {
                var d = await db.WebhookDeliveries.SingleAsync(x => x.Id == deliveries[i].Id);
                (d.Status, d.AttemptCount, d.LastAttemptAt, d.LastStatusCode, d.LastError, d.NextAttemptAt, d.LockedUntil) =
                    (outcomes[i].Status, outcomes[i].AttemptCount, outcomes[i].LastAttemptAt, outcomes[i].LastStatusCode, outcomes[i].LastError, outcomes[i].NextAttemptAt, null);
                db.WebhookAttempts.Add(attempts[i]);
            }
            await db.SaveChangesAsync();
            await using var tx = await db.Database.BeginTransactionAsync();
            await DeliveryRows.UpdateOutcomesAsync(db, TestDeliveryRows.PerStatement(db), outcomes.Skip(2).ToList(), CancellationToken.None);
            await DeliveryRows.InsertAttemptsAsync(db, TestDeliveryRows.PerStatement(db), attempts.Skip(2).ToList(), CancellationToken.None);
            await tx.CommitAsync();
            return 0;
        });

        var stored = await fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().Where(d => d.SubscriptionId == hook.Id).ToDictionaryAsync(d => d.Id));
        var storedAttempts = await fx.WithDbAsync(db => db.WebhookAttempts.AsNoTracking().Where(a => a.GymId == gym.GymId).ToDictionaryAsync(a => a.Id));
        Assert.Equal(24, storedAttempts.Count);
        for (var i = 0; i < 24; i++)
        {
            var (o, d) = (outcomes[i], stored[deliveries[i].Id]);
            Assert.Equal((o.Status, o.AttemptCount, o.LastAttemptAt, o.LastStatusCode, o.LastError, o.NextAttemptAt, (DateTime?)null),
                (d.Status, d.AttemptCount, d.LastAttemptAt, d.LastStatusCode, d.LastError, d.NextAttemptAt, d.LockedUntil));
            Assert.Equal((deliveries[i].Payload, deliveries[i].CreatedAt), (d.Payload, d.CreatedAt)); // untouched
            var (e, a) = (attempts[i], storedAttempts[attempts[i].Id]);
            Assert.Equal((e.GymId, e.DeliveryId, e.Number, e.AttemptedAt, e.StatusCode, e.DurationMs, e.Error), (a.GymId, a.DeliveryId, a.Number, a.AttemptedAt, a.StatusCode, a.DurationMs, a.Error));
            Assert.Equal((e.ResponseHeaders, e.ResponseBody, e.ResponseBodyTruncated, e.Trigger), (a.ResponseHeaders, a.ResponseBody, a.ResponseBodyTruncated, a.Trigger));
        }
        // The stored values are the same, not only the round trip: EF queries filter on them.
        var t4 = now.AddSeconds(4);
        Assert.Equal(1, await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.SubscriptionId == hook.Id && d.LastAttemptAt == t4)));
        Assert.Equal(1, await fx.WithDbAsync(db => db.WebhookAttempts.CountAsync(a => a.GymId == gym.GymId && a.AttemptedAt == t4)));
        Assert.Equal(12, await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.SubscriptionId == hook.Id && d.NextAttemptAt == null && d.Status == DeliveryStatus.Delivered)));
        // The due index sees the retries at their new times.
        Assert.Equal(12, await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.SubscriptionId == hook.Id && d.Status == DeliveryStatus.Retrying && d.NextAttemptAt >= now)));
    }

    [Fact]
    public async Task A_burst_failing_and_succeeding_on_shared_endpoints_records_every_attempt_and_each_endpoints_health()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hooks = new List<CreatedHook>();
        for (var i = 0; i < 12; i++)
        {
            if (i % 2 == 1)
            {
                receiver.On($"/mixed/{i}", new Reply(503));
            }
            hooks.Add(await gym.CreateWebhookAsync(receiver.Url($"/mixed/{i}"), "lead.created"));
        }
        // 40 events x 12 endpoints: many records meet in the recorder, where (on PostgreSQL) several batches are
        // written at once and batches change the same failing endpoints' health.
        const int events = 40;
        await fx.WithDbAsync(async db =>
        {
            for (var e = 0; e < events; e++)
            {
                db.AddEvent(gym.GymId, EventCatalog.LeadCreated, new { lead_id = Guid.NewGuid(), n = e }, fx.Clock.GetUtcNow().UtcDateTime);
            }
            return await db.SaveChangesAsync();
        });
        fx.Services.GetRequiredService<OutboxSignal>().Notify();
        await Eventually.TrueAsync(async () => await fx.WithDbAsync(db => db.WebhookAttempts.CountAsync(a => a.GymId == gym.GymId)) == events * hooks.Count,
            what: "every attempt recorded");
        var deliveries = await fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().Where(d => d.GymId == gym.GymId).ToListAsync());
        Assert.Equal(events * hooks.Count, deliveries.Count);
        var failing = hooks.Where((_, i) => i % 2 == 1).Select(h => h.Id).ToHashSet();
        Assert.All(deliveries, d => Assert.Equal(failing.Contains(d.SubscriptionId) ? (DeliveryStatus.Retrying, 1, 503) : (DeliveryStatus.Delivered, 1, 200),
            (d.Status, d.AttemptCount, d.LastStatusCode!.Value)));
        var stored = await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().Where(s => s.GymId == gym.GymId).ToListAsync());
        Assert.All(stored, s => Assert.Equal((true, failing.Contains(s.Id)), (s.IsActive, s.FailingSince is not null)));
    }

    [Fact]
    public async Task A_burst_larger_than_one_dispatch_batch_is_delivered_once_per_event_and_subscription()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        const int subscriptions = 30;
        var hooks = new List<CreatedHook>();
        for (var i = 0; i < subscriptions; i++)
        {
            hooks.Add(await gym.CreateWebhookAsync(receiver.Url($"/burst/{i}"), "lead.created"));
        }
        // 70 events x 30 subscriptions = 2,100 deliveries: more than two dispatch batches of MaxDeliveriesPerBatch.
        const int events = 70;
        Assert.True(events * subscriptions > 2 * WebhookDispatcher.MaxDeliveriesPerBatch);
        await fx.WithDbAsync(async db =>
        {
            for (var e = 0; e < events; e++)
            {
                db.AddEvent(gym.GymId, EventCatalog.LeadCreated, new { lead_id = Guid.NewGuid(), n = e }, fx.Clock.GetUtcNow().UtcDateTime);
            }
            return await db.SaveChangesAsync();
        });
        fx.Services.GetRequiredService<OutboxSignal>().Notify();

        await Eventually.TrueAsync(() => Task.FromResult(receiver.Requests.Count(r => r.Path.StartsWith("/burst/", StringComparison.Ordinal)) >= events * subscriptions),
            timeout: TimeSpan.FromMinutes(2), what: "every delivery of the burst");
        var received = receiver.Requests.Where(r => r.Path.StartsWith("/burst/", StringComparison.Ordinal)).ToList();
        Assert.Equal(events * subscriptions, received.Count);
        Assert.Equal(events * subscriptions, received.Select(r => (r.Path, r.Header("webhook-id"))).Distinct().Count());
        foreach (var (hook, i) in hooks.Select((h, i) => (h, i)))
        {
            var atHook = received.Where(r => r.Path == $"/burst/{i}").ToList();
            Assert.Equal(events, atHook.Select(r => r.Json().GetProperty("data").GetProperty("n").GetInt32()).Distinct().Count());
            Assert.All(atHook, r => Assert.True(StandardWebhooksVerifier.VerifyCombatScore(hook.Secret, r.Headers, r.Body)));
        }
        await Eventually.TrueAsync(async () => await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.GymId == gym.GymId && d.Status == DeliveryStatus.Delivered)) == events * subscriptions,
            what: "every delivery recorded as delivered");
        var attempts = await fx.WithDbAsync(db => db.WebhookAttempts.AsNoTracking().Where(a => a.GymId == gym.GymId).Select(a => new { a.DeliveryId, a.Number, a.StatusCode }).ToListAsync());
        Assert.Equal(events * subscriptions, attempts.Count);
        Assert.All(attempts, a => Assert.Equal((1, 200), (a.Number, a.StatusCode)));
        Assert.Equal(0, await fx.WithDbAsync(db => db.OutboxEvents.CountAsync(e => e.GymId == gym.GymId && e.DispatchedAt == null)));
    }

    [Fact]
    public async Task Attempts_recorded_together_each_get_their_own_outcome_and_numbering()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/fail", new Reply(503));
        receiver.On("/gone", new Reply(410));
        var gym = await fx.CreateGymAsync();
        var ok = await gym.CreateWebhookAsync(receiver.Url("/ok"), "lead.created");
        var fail = await gym.CreateWebhookAsync(receiver.Url("/fail"), "lead.created");
        var gone = await gym.CreateWebhookAsync(receiver.Url("/gone"), "lead.created");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var ids = new List<(Guid Id, Guid Hook)>();
        await fx.WithDbAsync(async db =>
        {
            foreach (var hook in new[] { ok, fail, gone })
            {
                for (var i = 0; i < 5; i++)
                {
                    var d = Parked(gym.GymId, hook.Id, now);
                    db.WebhookDeliveries.Add(d);
                    ids.Add((d.Id, hook.Id));
                }
            }
            return await db.SaveChangesAsync();
        });
        // Made due only now, without waking the worker; then claimed at once and attempted concurrently, so that
        // their records meet in the recorder's queue.
        var idList = ids.Select(i => i.Id).ToList();
        await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => idList.Contains(d.Id)).ExecuteUpdateAsync(u => u.SetProperty(d => d.NextAttemptAt, now)));
        var queue = fx.Queue();
        var claimed = await queue.ClaimAsync(100, [], [], CancellationToken.None);
        var mine = claimed.Where(c => ids.Any(i => i.Id == c.Id)).ToList();
        Assert.Equal(15, mine.Count);
        Assert.All(mine, c => Assert.Equal((0, true), (c.AttemptsRecorded, c.SubscriptionActive)));
        var outcomes = await Task.WhenAll(mine.Select(c => fx.AttemptAsync(c)));
        await queue.ReleaseAsync(claimed.Except(mine).ToList(), CancellationToken.None);

        var byId = mine.Zip(outcomes).ToDictionary(x => x.First.Id, x => x.Second!);
        var deliveries = await fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().Where(d => d.GymId == gym.GymId).ToDictionaryAsync(d => d.Id));
        foreach (var (id, hook) in ids)
        {
            var (status, code) = hook == ok.Id ? (DeliveryStatus.Delivered, 200) : hook == fail.Id ? (DeliveryStatus.Retrying, 503) : (DeliveryStatus.Undeliverable, 410);
            Assert.Equal((status, code), (byId[id].DeliveryStatus, byId[id].Attempt.StatusCode!.Value));
            Assert.Equal((status, 1, code, (DateTime?)null), (deliveries[id].Status, deliveries[id].AttemptCount, deliveries[id].LastStatusCode, deliveries[id].LockedUntil));
        }
        var hooks = await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().Where(s => s.GymId == gym.GymId).ToDictionaryAsync(s => s.Id));
        Assert.True(hooks[ok.Id].IsActive);
        Assert.Null(hooks[ok.Id].FailingSince);
        Assert.True(hooks[fail.Id].IsActive);
        Assert.NotNull(hooks[fail.Id].FailingSince);
        Assert.False(hooks[gone.Id].IsActive);

        // A retry's attempt continues the numbering from what is recorded.
        receiver.On("/fail", new Reply(200));
        fx.AdvanceAndWake(TimeSpan.FromMinutes(6));
        var failIds = ids.Where(i => i.Hook == fail.Id).Select(i => i.Id).ToList();
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(fail.Id)).All(d => d.Status == DeliveryStatus.Delivered), what: "the retries delivered");
        var retried = await fx.WithDbAsync(db => db.WebhookAttempts.AsNoTracking().Where(a => failIds.Contains(a.DeliveryId)).ToListAsync());
        Assert.Equal(10, retried.Count);
        Assert.All(retried.GroupBy(a => a.DeliveryId), g => Assert.Equal([(1, "initial", 503), (2, "retry", 200)], g.OrderBy(a => a.Number).Select(a => (a.Number, a.Trigger, a.StatusCode!.Value))));
    }

    [Fact]
    public async Task A_claim_takes_its_deliveries_out_of_the_queue_until_its_lease_ends_and_a_release_puts_them_back_in_their_place()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/lease"), "lead.created");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var ids = await ParkAsync(gym.GymId, hook.Id, 4, now);
        await PostponeOthersAsync(hook.Id, now);
        // This node's worker leaves the endpoint out while the test holds all its slots (a wake from an earlier test's
        // events could otherwise let it claim what the test makes due); the test's own claims leave out nothing.
        var policy = fx.Services.GetRequiredService<EndpointPolicy>();
        var slots = 0;
        while (policy.Admit(hook.Id, EndpointHealth.Healthy) == Admission.Go)
        {
            slots++;
        }
        Assert.Contains(hook.Id, policy.AtCapacity());
        // Due a second apart, oldest first; made due without waking the worker.
        var dueAt = ids.Select((_, i) => now.AddSeconds(i - ids.Count)).ToList();
        for (var i = 0; i < ids.Count; i++)
        {
            var (id, due) = (ids[i], dueAt[i]);
            await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.Id == id).ExecuteUpdateAsync(u => u.SetProperty(d => d.NextAttemptAt, due)));
        }
        var queue = fx.Queue();
        var leaseEnd = now + fx.Services.GetRequiredService<IOptions<WebhookOptions>>().Value.EffectiveClaimLease;
        async Task<List<(DateTime? NextAttemptAt, DateTime? LockedUntil)>> StoredAsync() =>
            [.. (await fx.DeliveriesAsync(hook.Id)).OrderBy(d => ids.IndexOf(d.Id)).Select(d => (d.NextAttemptAt, d.LockedUntil))];

        // Claimed, the two oldest are due at the end of their lease: the head of the due index holds only deliveries no worker has.
        var first = (await queue.ClaimAsync(2, [], [], CancellationToken.None)).Where(c => c.SubscriptionId == hook.Id).ToList();
        Assert.Equal(ids[..2], first.Select(c => c.Id));
        Assert.Equal(dueAt[..2], first.Select(c => c.DueAt!.Value));
        List<(DateTime?, DateTime?)> expected = [(leaseEnd, leaseEnd), (leaseEnd, leaseEnd), (dueAt[2], null), (dueAt[3], null)];
        Assert.Equal(expected, await StoredAsync());

        // The next claim takes the next two, in due order.
        var second = (await queue.ClaimAsync(10, [], [], CancellationToken.None)).Where(c => c.SubscriptionId == hook.Id).ToList();
        Assert.Equal(ids[2..], second.Select(c => c.Id));
        Assert.Equal(dueAt[2..], second.Select(c => c.DueAt!.Value));

        // Given back without an attempt: each is due again at its own time, in its place.
        await queue.ReleaseAsync(second, CancellationToken.None);
        await queue.ReleaseAsync(first, CancellationToken.None);
        expected = [(dueAt[0], null), (dueAt[1], null), (dueAt[2], null), (dueAt[3], null)];
        Assert.Equal(expected, await StoredAsync());

        for (var i = 0; i < slots; i++)
        {
            policy.Release(hook.Id);
        }
        fx.AdvanceAndWake(TimeSpan.FromMinutes(2));
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hook.Id)).All(d => d.Status == DeliveryStatus.Delivered), what: "all four delivered");
        Assert.Equal(4, receiver.At("/lease").Count);
    }

    [Fact]
    public async Task A_record_whose_delivery_vanished_does_not_fail_the_others_recorded_with_it()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/vanish"), "lead.created");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var ids = await ParkAsync(gym.GymId, hook.Id, 6, now);
        await PostponeOthersAsync(hook.Id, now);
        var queue = fx.Queue();
        // Read them as a claim would, then delete one before its attempt is recorded (retention, or a deleted webhook).
        var loaded = new List<ClaimedDelivery>();
        foreach (var id in ids)
        {
            await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.Id == id).ExecuteUpdateAsync(u => u.SetProperty(d => d.NextAttemptAt, now)));
            loaded.AddRange((await queue.ClaimAsync(1, [], [], CancellationToken.None)).Where(c => c.Id == id));
        }
        Assert.Equal(6, loaded.Count);
        await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.Id == ids[2]).ExecuteDeleteAsync());

        var outcomes = await Task.WhenAll(loaded.Select(c => fx.AttemptAsync(c)));
        Assert.Null(outcomes[2]);
        Assert.All(outcomes.Where((_, i) => i != 2), o => Assert.Equal(DeliveryStatus.Delivered, o!.DeliveryStatus));
        var stored = await fx.DeliveriesAsync(hook.Id);
        Assert.Equal(5, stored.Count);
        Assert.All(stored, d => Assert.Equal(DeliveryStatus.Delivered, d.Status));
    }

    [Fact]
    public async Task Attempts_of_deliveries_deleted_after_the_records_read_are_left_out_and_the_rest_written()
    {
        // The recorder reads its batch's deliveries, then writes their attempts. A delivery deleted in between (its
        // webhook deleted, or retention) must not fail the foreign key, and with it every other attempt of the batch.
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/gone-meanwhile"), "lead.created");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var deliveries = Enumerable.Range(0, 6).Select(_ => new WebhookDelivery
        {
            Id = Guid.CreateVersion7(), GymId = gym.GymId, SubscriptionId = hook.Id, EventId = Guid.NewGuid(), Event = "lead.created",
            Payload = "{}", Status = DeliveryStatus.Pending, CreatedAt = now,
        }).ToList();
        await fx.WithDbAsync(async db =>
        {
            db.WebhookDeliveries.AddRange(deliveries);
            return await db.SaveChangesAsync();
        });
        await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.Id == deliveries[1].Id || d.Id == deliveries[4].Id).ExecuteDeleteAsync());
        var attempts = deliveries.Select((d, i) => new WebhookAttempt
        {
            Id = Guid.CreateVersion7(), GymId = gym.GymId, DeliveryId = d.Id, Number = 1, AttemptedAt = now, StatusCode = 200, DurationMs = i, Trigger = "initial",
        }).ToList();

        await fx.WithDbAsync(async db =>
        {
            await using var tx = await db.Database.BeginTransactionAsync();
            await DeliveryRows.InsertAttemptsAsync(db, TestDeliveryRows.PerStatement(db), attempts, CancellationToken.None);
            await tx.CommitAsync();
            return 0;
        });

        var stored = await fx.WithDbAsync(db => db.WebhookAttempts.AsNoTracking().Where(a => a.GymId == gym.GymId).Select(a => a.DeliveryId).ToListAsync());
        Assert.Equal(new[] { 0, 2, 3, 5 }.Select(i => deliveries[i].Id).Order(), stored.Order());
    }

    [Fact]
    public async Task An_endpoint_whose_attempts_time_out_gets_one_attempt_in_flight_until_one_is_quick()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/hang", new Reply { Hang = true });
        var gym = await fx.CreateGymAsync();
        var hang = await gym.CreateWebhookAsync(receiver.Url("/hang"), "member.joined");
        var healthy = await gym.CreateWebhookAsync(receiver.Url("/healthy"), "member.joined");
        await fx.WithDbAsync(async db =>
        {
            for (var i = 0; i < 12; i++)
            {
                db.AddEvent(gym.GymId, EventCatalog.MemberJoined, new { user_id = $"user_{i}" }, fx.Clock.GetUtcNow().UtcDateTime);
            }
            return await db.SaveChangesAsync();
        });
        fx.Services.GetRequiredService<OutboxSignal>().Notify();

        // The first attempts go out at the per-endpoint cap, before anything is known of the endpoint.
        await receiver.WaitForAsync("/healthy", 12);
        await Eventually.TrueAsync(() => Task.FromResult(receiver.At("/hang").Count >= 8), what: "the first wave to the hanging endpoint");
        // They time out (Webhooks:Timeout is 2 s here, so each is a slow attempt); from then on one at a time.
        await Eventually.TrueAsync(() => Task.FromResult(receiver.At("/hang").Count >= 9), timeout: TimeSpan.FromSeconds(30), what: "an attempt after the first timeouts");
        // The receiver notices the first wave's aborted requests a little after the sender gave up on them.
        await Eventually.TrueAsync(() => Task.FromResult(receiver.Active("/hang") <= 1), what: "the first wave's requests ended at the receiver");
        receiver.ResetMaxConcurrent("/hang");
        await Eventually.TrueAsync(() => Task.FromResult(receiver.At("/hang").Count >= 12), timeout: TimeSpan.FromSeconds(60), what: "the rest, one at a time");
        // Held at once: the receiver sees a timed-out request end a moment after the sender has moved on.
        Assert.Equal(1, receiver.MaxConcurrentHeld("/hang"));
        Assert.All(await fx.DeliveriesAsync(healthy.Id), d => Assert.Equal(DeliveryStatus.Delivered, d.Status));

        // A quick answer lifts the limit again.
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hang.Id)).Count(d => d.Status == DeliveryStatus.Retrying) == 12,
            timeout: TimeSpan.FromSeconds(30), what: "every first attempt timed out and recorded");
        receiver.On("/hang", new Reply(200));
        fx.AdvanceAndWake(TimeSpan.FromMinutes(6));
        await Eventually.TrueAsync(() => Task.FromResult(receiver.At("/hang").Count >= 24), timeout: TimeSpan.FromSeconds(30), what: "the retries answered");
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hang.Id)).All(d => d.Status == DeliveryStatus.Delivered), what: "the retries recorded as delivered");
    }

    [Fact]
    public async Task A_delivery_due_years_ahead_does_not_stall_the_worker()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/later"), "member.joined");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        await fx.WithDbAsync(async db =>
        {
            db.WebhookDeliveries.Add(new WebhookDelivery
            {
                Id = Guid.CreateVersion7(), GymId = gym.GymId, SubscriptionId = hook.Id, EventId = Guid.NewGuid(), Event = "member.joined",
                Payload = "{}", Status = DeliveryStatus.Retrying, AttemptCount = 1, CreatedAt = now, NextAttemptAt = now.AddYears(5),
            });
            return await db.SaveChangesAsync();
        });
        // The worker computes its next wake-up from that delivery (further ahead than a timer can be set) and goes on.
        for (var i = 0; i < 3; i++)
        {
            fx.WakeWorker();
            Assert.Equal(System.Net.HttpStatusCode.Created, await gym.AddMemberAsync($"user_later_{i}"));
            await receiver.WaitForAsync("/later", i + 1);
        }
        fx.Logs.AssertNoErrorsSince(category: "Gymwire.Features.Webhooks");
    }

    [Fact]
    public async Task A_fanned_out_delivery_stores_no_body_and_sends_its_events_envelope_byte_for_byte_at_every_attempt()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/canonical", n => new Reply(n == 1 ? 503 : 200));
        receiver.On("/alias", n => new Reply(n == 1 ? 503 : 200));
        var gym = await fx.CreateGymAsync();
        var canonical = await gym.CreateWebhookAsync(receiver.Url("/canonical"), "member.joined");
        var alias = await gym.CreateWebhookAsync(receiver.Url("/alias"), "member.created");
        Assert.Equal(System.Net.HttpStatusCode.Created, await gym.AddMemberAsync("user_body_once"));
        var first = (await receiver.WaitForAsync("/canonical", 1)).Single();
        var firstAlias = (await receiver.WaitForAsync("/alias", 1)).Single();
        await fx.WaitForDeliveryAsync(canonical.Id, d => d.AttemptCount == 1, "first attempt recorded");
        await fx.WaitForDeliveryAsync(alias.Id, d => d.AttemptCount == 1, "first alias attempt recorded");

        // The event's data is stored once, in the outbox; each delivery row holds no copy of it.
        var evt = await fx.WithDbAsync(db => db.OutboxEvents.AsNoTracking().SingleAsync(e => e.GymId == gym.GymId && e.Type == EventCatalog.MemberJoined));
        var rows = await fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().Where(d => d.GymId == gym.GymId).ToListAsync());
        Assert.Equal(2, rows.Count);
        Assert.All(rows, d => Assert.Equal((evt.Id, (string?)null), (d.EventId!.Value, d.Payload)));
        Assert.Equal(WebhookPayloads.Build(evt.Id, "member.joined", gym.GymId, evt.Data, evt.OccurredAt), first.BodyText);
        Assert.Equal(WebhookPayloads.Build(evt.Id, "member.created", gym.GymId, evt.Data, evt.OccurredAt), firstAlias.BodyText);

        // The retry sends the same bytes (receivers that hash bodies see one message), signed afresh.
        fx.AdvanceAndWake(TimeSpan.FromMinutes(5));
        var retried = await receiver.WaitForAsync("/canonical", 2);
        Assert.Equal(first.Body, retried[1].Body);
        Assert.Equal(first.Header("webhook-id"), retried[1].Header("webhook-id"));
        Assert.True(StandardWebhooksVerifier.VerifyCombatScore(canonical.Secret, retried[1].Headers, retried[1].Body));
        Assert.Equal(firstAlias.Body, (await receiver.WaitForAsync("/alias", 2))[1].Body);

        // The delivery log shows the body that was sent.
        using var owner = gym.Owner();
        var id = rows.Single(d => d.SubscriptionId == canonical.Id).Id;
        var detail = await (await owner.GetAsync($"/api/gym/webhooks/{canonical.Id}/deliveries/{id}")).AssertStatusAsync(System.Net.HttpStatusCode.OK);
        Assert.Equal(first.Json().GetRawText(), detail.GetProperty("payload").GetRawText());
    }

    [Fact]
    public async Task An_event_whose_data_was_changed_by_hand_into_no_JSON_fails_only_its_own_deliveries_and_polls_pass_over_it()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/after-bad"), "member.joined");
        var logged = fx.Logs.Lines.Count;
        // Gymwire writes event data with a JSON serializer: only a hand edit, or a damaged row, leaves text that is not JSON.
        var bad = await fx.WithDbAsync(async db =>
        {
            var evt = new OutboxEvent
            {
                Id = Guid.CreateVersion7(), GymId = gym.GymId, Type = EventCatalog.MemberJoined, Data = """{"user_id": """,
                OccurredAt = fx.Clock.GetUtcNow().UtcDateTime,
            };
            db.OutboxEvents.Add(evt);
            await db.SaveChangesAsync();
            return evt;
        });
        Assert.Equal(System.Net.HttpStatusCode.Created, await gym.AddMemberAsync("user_after_bad"));

        // The event behind it is fanned out and delivered as ever (the bad one was handed over with no body to send).
        var delivered = (await receiver.WaitForAsync("/after-bad", 1)).Single();
        Assert.Equal("user_after_bad", delivered.Json().GetProperty("data").GetProperty("user_id").GetString());
        // It ends at its one attempt: no retry could send anything.
        var failed = await fx.WaitForDeliveryAsync(hook.Id, d => d.EventId == bad.Id && d.AttemptCount == 1, "the bad event's first attempt recorded");
        Assert.Equal(DeliveryStatus.Undeliverable, failed.Status);
        Assert.Contains("not JSON", failed.LastError);

        // Redelivered, it is claimed from the queue, the other way a body is built, and ends the same way.
        using var owner = gym.Owner();
        await (await owner.PostAsync($"/api/gym/webhooks/{hook.Id}/deliveries/{failed.Id}/redeliver", null)).AssertStatusAsync(System.Net.HttpStatusCode.Accepted);
        await Eventually.TrueAsync(async () => (await fx.AttemptsAsync(failed.Id)).Count == 2, what: "the bad event's redelivery recorded");
        failed = await fx.WaitForDeliveryAsync(hook.Id, d => d.Id == failed.Id && d.Status == DeliveryStatus.Undeliverable, "the redelivery to end");
        Assert.Equal(DeliveryMetrics.Triggers.Redeliver, (await fx.AttemptsAsync(failed.Id))[1].Trigger);
        Assert.Contains("not JSON", failed.LastError);
        Assert.Single(await receiver.WaitForAsync("/after-bad", 1));

        // Its log entry reads, with no payload to show.
        var detail = await (await owner.GetAsync($"/api/gym/webhooks/{hook.Id}/deliveries/{failed.Id}")).AssertStatusAsync(System.Net.HttpStatusCode.OK);
        Assert.Equal(System.Text.Json.JsonValueKind.Null, detail.GetProperty("payload").ValueKind);

        // A trigger poll that reads the event log passes over the event, as over one whose record is gone.
        var key = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "poller", scopes = new[] { "read" } })).AssertStatusAsync(System.Net.HttpStatusCode.Created);
        using var poller = fx.Client(key.GetProperty("key").GetString());
        var items = await (await poller.GetAsync("/api/zapier/triggers?type=new_member&after_sequence=0")).AssertStatusAsync(System.Net.HttpStatusCode.OK);
        Assert.Equal("user_after_bad", items.EnumerateArray().Single().GetProperty("user_id").GetString());
        fx.Logs.AssertNoErrorsSince(logged);
    }

    [Fact]
    public async Task A_delivery_with_a_stored_body_is_sent_that_body_as_an_older_Gymwire_wrote_it()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/stored"), "lead.created");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var evt = await fx.WithDbAsync(async db =>
        {
            var e = db.AddEvent(gym.GymId, EventCatalog.LeadCreated, new { lead_id = "lead_stored" }, now);
            e.DispatchedAt = now; // fanned out already, by the older version, with its body
            await db.SaveChangesAsync();
            return e;
        });
        var stored = """{"id":"%ID%","event":"lead.created","gym_id":"%GYM%","data":{"lead_id":"lead_stored","older":true},"timestamp":"2026-04-16T12:00:00.000Z"}"""
            .Replace("%ID%", evt.Id.ToString()).Replace("%GYM%", gym.GymId.ToString());
        var delivery = new WebhookDelivery
        {
            Id = Guid.CreateVersion7(), GymId = gym.GymId, SubscriptionId = hook.Id, EventId = evt.Id, Event = "lead.created",
            Payload = stored, Status = DeliveryStatus.Pending, CreatedAt = now, NextAttemptAt = now,
        };
        await fx.WithDbAsync(async db =>
        {
            db.WebhookDeliveries.Add(delivery);
            return await db.SaveChangesAsync();
        });
        fx.WakeWorker();
        var received = (await receiver.WaitForAsync("/stored", 1)).Single();
        Assert.Equal(stored, received.BodyText);
        Assert.True(StandardWebhooksVerifier.VerifyCombatScore(hook.Secret, received.Headers, received.Body));
        await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "delivered");
    }

    [Fact]
    public async Task A_delivery_whose_event_was_deleted_by_hand_fails_with_a_clear_error_and_the_others_still_go()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var orphanHook = await gym.CreateWebhookAsync(receiver.Url("/orphan"), "lead.created");
        var hook = await gym.CreateWebhookAsync(receiver.Url("/fine"), "member.joined");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        await fx.WithDbAsync(async db =>
        {
            db.WebhookDeliveries.Add(new WebhookDelivery
            {
                Id = Guid.CreateVersion7(), GymId = gym.GymId, SubscriptionId = orphanHook.Id, EventId = Guid.NewGuid(), Event = "lead.created",
                Status = DeliveryStatus.Pending, CreatedAt = now, NextAttemptAt = now,
            });
            return await db.SaveChangesAsync();
        });
        fx.WakeWorker();
        var orphan = await fx.WaitForDeliveryAsync(orphanHook.Id, d => d.AttemptCount == 1, "the orphan's attempt recorded");
        Assert.Equal((DeliveryStatus.Undeliverable, (int?)null), (orphan.Status, orphan.LastStatusCode));
        Assert.Contains("missing from outbox_events", orphan.LastError);
        Assert.Empty(receiver.At("/orphan"));
        Assert.Equal(System.Net.HttpStatusCode.Created, await gym.AddMemberAsync("user_after_orphan"));
        await receiver.WaitForAsync("/fine", 1);
        using var owner = gym.Owner();
        var detail = await (await owner.GetAsync($"/api/gym/webhooks/{orphanHook.Id}/deliveries/{orphan.Id}")).AssertStatusAsync(System.Net.HttpStatusCode.OK);
        Assert.Equal(System.Text.Json.JsonValueKind.Null, detail.GetProperty("payload").ValueKind);
    }

    [Fact]
    public async Task The_database_refuses_a_delivery_with_neither_a_body_nor_an_event()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/nothing"), "lead.created");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var refused = await Assert.ThrowsAsync<DbUpdateException>(() => fx.WithDbAsync(async db =>
        {
            db.WebhookDeliveries.Add(new WebhookDelivery
            {
                Id = Guid.CreateVersion7(), GymId = gym.GymId, SubscriptionId = hook.Id, Event = "lead.created",
                Status = DeliveryStatus.Pending, CreatedAt = now, NextAttemptAt = null,
            });
            return await db.SaveChangesAsync();
        }));
        Assert.Contains("ck_webhook_deliveries_body", refused.InnerException!.Message);
        Assert.Empty(await fx.DeliveriesAsync(hook.Id));
    }

    [Fact]
    public async Task A_database_from_before_bodies_were_stored_per_event_upgrades_keeping_every_delivery_and_its_body()
    {
        var connectionString = await fx.CreateScratchDatabaseAsync();
        var builder = GymwireApp.CreateBuilder(fx.Arguments(connectionString), b => b.Logging.ClearProviders());
        await using var app = GymwireApp.Build(builder);
        var now = new DateTime(2026, 4, 16, 12, 0, 0, DateTimeKind.Utc);
        var (gymId, subscriptionId, eventId) = (Guid.NewGuid(), Guid.NewGuid(), Guid.CreateVersion7(now));
        var body = WebhookPayloads.Build(eventId, "lead.created", gymId, """{"lead_id":"lead_old"}""", now);
        var deliveries = Enumerable.Range(0, 3).Select(i => new WebhookDelivery
        {
            Id = Guid.CreateVersion7(now), GymId = gymId, SubscriptionId = subscriptionId, EventId = i == 0 ? null : i == 1 ? eventId : Guid.CreateVersion7(now), Event = "lead.created",
            Payload = body, IsTest = i == 0, Status = i == 2 ? DeliveryStatus.Delivered : DeliveryStatus.Pending, AttemptCount = i, CreatedAt = now.AddSeconds(i),
            NextAttemptAt = i == 2 ? null : now,
        }).ToList();
        await using (var scope = app.Services.CreateAsyncScope())
        {
            // The schema as the release before this change left it, with deliveries that carry their bodies.
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            if (db.Provider == DatabaseProvider.Sqlite)
            {
                await db.Database.OpenConnectionAsync();
                await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;");
                await db.Database.CloseConnectionAsync();
            }
            await db.GetService<IMigrator>().MigrateAsync("WebhookQueueTable");
            // In SQL: today's model has columns (gyms.time_zone, api_key_id) that this old schema does not. SQLite keeps ids as upper-case text.
            object Id(Guid id) => db.Provider == DatabaseProvider.Sqlite ? id.ToString().ToUpperInvariant() : id;
            await db.Database.ExecuteSqlRawAsync("INSERT INTO gyms (id, name, created_at) VALUES ({0}, 'Old', {1})", Id(gymId), now);
            await db.Database.ExecuteSqlRawAsync(
                "INSERT INTO webhook_subscriptions (id, gym_id, url, events, is_active, created_at, updated_at, secret_protected) VALUES ({0}, {1}, 'https://hooks.example.com/old', '', {2}, {3}, {3}, 'x')",
                Id(subscriptionId), Id(gymId), true, now);
            foreach (var d in deliveries)
            {
                var storedEventId = d.EventId is { } e ? Id(e) : null;
                await db.Database.ExecuteSqlAsync($"""
                    INSERT INTO webhook_deliveries (id, gym_id, subscription_id, event_id, event, payload, is_test, status, attempt_count, created_at, next_attempt_at)
                    VALUES ({Id(d.Id)}, {Id(d.GymId)}, {Id(d.SubscriptionId)}, {storedEventId}, {d.Event}, {d.Payload}, {d.IsTest}, {d.Status}, {d.AttemptCount}, {d.CreatedAt}, {d.NextAttemptAt})
                    """);
            }
        }

        await DatabaseSetup.MigrateAsync(app.Services);

        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            Assert.Empty(await db.Database.GetPendingMigrationsAsync());
            var stored = await db.WebhookDeliveries.AsNoTracking().ToDictionaryAsync(d => d.Id);
            Assert.Equal(3, stored.Count);
            foreach (var expected in deliveries)
            {
                var actual = stored[expected.Id];
                Assert.Equal((expected.EventId, expected.Payload, expected.IsTest, expected.Status, expected.AttemptCount, expected.CreatedAt, expected.NextAttemptAt),
                    (actual.EventId, actual.Payload, actual.IsTest, actual.Status, actual.AttemptCount, actual.CreatedAt, actual.NextAttemptAt));
            }
            // The indexes came through the rebuild: the due index still finds the two waiting deliveries.
            Assert.Equal(2, await db.WebhookDeliveries.CountAsync(d => (d.Status == DeliveryStatus.Pending || d.Status == DeliveryStatus.Retrying) && d.NextAttemptAt <= now));
            // And the new rule holds: a delivery needs a body or an event.
            db.WebhookDeliveries.Add(new WebhookDelivery
            {
                Id = Guid.NewGuid(), GymId = gymId, SubscriptionId = subscriptionId, Event = "lead.created", Status = DeliveryStatus.Pending, CreatedAt = now,
            });
            var refused = await Assert.ThrowsAsync<DbUpdateException>(() => db.SaveChangesAsync());
            Assert.Contains("ck_webhook_deliveries_body", refused.InnerException!.Message);
        }
    }

    [Fact]
    public async Task Disabling_a_webhook_pauses_its_queued_retries_with_their_errors_and_enabling_resumes_them_while_a_410_ends_them()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/gone", new Reply(410, "gone"));
        var gym = await fx.CreateGymAsync();
        var patched = await gym.CreateWebhookAsync(receiver.Url("/patched"), "lead.created");
        var deleted = await gym.CreateWebhookAsync(receiver.Url("/deleted"), "lead.created");
        var gone = await gym.CreateWebhookAsync(receiver.Url("/gone"), "lead.created");
        var kept = await gym.CreateWebhookAsync(receiver.Url("/kept"), "lead.created");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        // Each has retries queued for an hour from now (no worker touches them before then), with the error of their
        // last attempt, and one delivered.
        await fx.WithDbAsync(async db =>
        {
            foreach (var hook in new[] { patched, deleted, gone, kept })
            {
                for (var i = 0; i < 5; i++)
                {
                    var d = Parked(gym.GymId, hook.Id, now);
                    (d.Status, d.AttemptCount, d.NextAttemptAt, d.LastStatusCode, d.LastError) = (DeliveryStatus.Retrying, 1, now.AddHours(1), 503, "HTTP 503 from the endpoint");
                    db.WebhookDeliveries.Add(d);
                }
                var done = Parked(gym.GymId, hook.Id, now);
                (done.Status, done.AttemptCount) = (DeliveryStatus.Delivered, 1);
                db.WebhookDeliveries.Add(done);
            }
            return await db.SaveChangesAsync();
        });
        async Task<Dictionary<string, int>> StatusesAsync(CreatedHook hook) =>
            (await fx.DeliveriesAsync(hook.Id)).GroupBy(d => d.Status).ToDictionary(g => g.Key, g => g.Count());

        using var owner = gym.Owner();
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{patched.Id}", new { is_active = false })).AssertStatusAsync(System.Net.HttpStatusCode.OK);
        await (await owner.DeleteAsync($"/api/gym/webhooks/{deleted.Id}")).AssertStatusAsync(System.Net.HttpStatusCode.OK);
        // The 410: one more delivery, due now; its answer deactivates the subscription in the recorder.
        await fx.WithDbAsync(async db =>
        {
            var d = Parked(gym.GymId, gone.Id, now);
            d.NextAttemptAt = now;
            db.WebhookDeliveries.Add(d);
            return await db.SaveChangesAsync();
        });
        fx.WakeWorker();
        await fx.WaitForDeliveryAsync(gone.Id, d => d.LastStatusCode == 410, "the 410 recorded");

        // The owner's disable paused the queued retries: same status, attempts and error, no due time.
        foreach (var hook in new[] { patched, deleted })
        {
            Assert.Equal(new Dictionary<string, int> { [DeliveryStatus.Retrying] = 5, [DeliveryStatus.Delivered] = 1 }, await StatusesAsync(hook));
            Assert.All((await fx.DeliveriesAsync(hook.Id)).Where(d => d.Status == DeliveryStatus.Retrying),
                d => Assert.Equal((1, 503, "HTTP 503 from the endpoint", (DateTime?)null), (d.AttemptCount, d.LastStatusCode, d.LastError, d.NextAttemptAt)));
        }
        // Gymwire's own deactivation (the 410) ended them.
        Assert.Equal(new Dictionary<string, int> { [DeliveryStatus.Undeliverable] = 6, [DeliveryStatus.Delivered] = 1 }, await StatusesAsync(gone));
        var ended = (await fx.DeliveriesAsync(gone.Id)).Where(d => d.Status == DeliveryStatus.Undeliverable && d.LastStatusCode == 503).ToList();
        Assert.Equal(5, ended.Count);
        Assert.All(ended, d => Assert.Equal(("The webhook is inactive", (DateTime?)null, 1), (d.LastError, d.NextAttemptAt, d.AttemptCount)));
        Assert.Equal(new Dictionary<string, int> { [DeliveryStatus.Retrying] = 5, [DeliveryStatus.Delivered] = 1 }, await StatusesAsync(kept));
        Assert.Empty(receiver.At("/patched"));
        Assert.Empty(receiver.At("/deleted"));
        Assert.Single(receiver.At("/gone"));

        // Hours later, still paused: the clock passing their old due time sends nothing.
        fx.Clock.Advance(TimeSpan.FromHours(2));
        fx.WakeWorker();
        await receiver.WaitForAsync("/kept", 5);
        Assert.Empty(receiver.At("/patched"));
        Assert.Empty(receiver.At("/deleted"));

        // Enabling resumes them at once, each as the next attempt of its retry schedule.
        foreach (var hook in new[] { patched, deleted })
        {
            await (await owner.PatchJsonAsync($"/api/gym/webhooks/{hook.Id}", new { is_active = true })).AssertStatusAsync(System.Net.HttpStatusCode.OK);
        }
        await receiver.WaitForAsync("/patched", 5);
        await receiver.WaitForAsync("/deleted", 5);
        foreach (var hook in new[] { patched, deleted })
        {
            await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hook.Id)).All(d => d.Status == DeliveryStatus.Delivered), what: "the resumed retries delivered");
            Assert.All((await fx.DeliveriesAsync(hook.Id)).Where(d => d.LastStatusCode is not null && d.AttemptCount == 2), d => Assert.Equal(200, d.LastStatusCode));
        }
        // Redelivery still works on an ended delivery once the webhook is active again.
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{gone.Id}", new { is_active = true })).AssertStatusAsync(System.Net.HttpStatusCode.OK);
        receiver.On("/gone", new Reply(200, "ok"));
        await (await owner.PostAsync($"/api/gym/webhooks/{gone.Id}/deliveries/{ended[0].Id}/redeliver", null)).AssertStatusAsync(System.Net.HttpStatusCode.Accepted);
        await receiver.WaitForAsync("/gone", 2);
    }
    [Theory]
    [InlineData(500)]
    [InlineData(200)]
    public async Task A_delivery_in_flight_when_its_webhook_is_disabled_keeps_its_own_outcome_and_a_failed_one_resumes_on_enable(int answer)
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        receiver.On("/inflight", n => n == 1 ? new Reply(answer, "first") { Gate = gate.Task } : new Reply(200, "ok"));
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/inflight"), "lead.created");
        var sentinel = await gym.CreateWebhookAsync(receiver.Url("/sentinel"), "lead.created");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var id = (await ParkAsync(gym.GymId, hook.Id, 1, now))[0];
        var later = (await ParkAsync(gym.GymId, sentinel.Id, 1, now))[0];
        await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.Id == id).ExecuteUpdateAsync(u => u.SetProperty(d => d.NextAttemptAt, now)));
        await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.Id == later).ExecuteUpdateAsync(u => u.SetProperty(d => d.NextAttemptAt, now.AddHours(1))));
        fx.WakeWorker();

        // The attempt is in flight (the receiver holds it) when the owner disables the webhook; then it answers.
        await receiver.WaitForAsync("/inflight", 1);
        using var owner = gym.Owner();
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{hook.Id}", new { is_active = false })).AssertStatusAsync(System.Net.HttpStatusCode.OK);
        gate.SetResult();
        var recorded = await fx.WaitForDeliveryAsync(hook.Id, d => d.AttemptCount == 1, "the in-flight attempt recorded");
        var attempt = Assert.Single(await fx.AttemptsAsync(id));
        Assert.Equal(answer, attempt.StatusCode);
        if (answer == 200)
        {
            // It reached the receiver: delivered, whatever happened to the webhook meanwhile.
            Assert.Equal((DeliveryStatus.Delivered, 200, (DateTime?)null), (recorded.Status, recorded.LastStatusCode, recorded.NextAttemptAt));
            return;
        }
        // Failed: recorded with its own error, and paused like the queued ones (no due time), not ended as inactive.
        Assert.Equal((DeliveryStatus.Retrying, 500, attempt.Error, (DateTime?)null, (DateTime?)null),
            (recorded.Status, recorded.LastStatusCode, recorded.LastError, recorded.NextAttemptAt, recorded.LockedUntil));
        Assert.NotEqual(DeliveryRows.InactiveError, recorded.LastError);
        // The disabled webhook stays as its owner left it: no failure counted, not failing.
        var subscription = await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == hook.Id));
        Assert.Equal((false, (string?)null, (DateTime?)null, 0), (subscription.IsActive, subscription.DisabledReason, subscription.FailingSince, subscription.ConsecutiveFailures));

        // Past its retry's time (the sentinel, due later, is sent first), nothing is sent to the disabled webhook.
        fx.Clock.Advance(TimeSpan.FromHours(2));
        fx.WakeWorker();
        await receiver.WaitForAsync("/sentinel", 1);
        Assert.Single(receiver.At("/inflight"));
        var waiting = Assert.Single(await fx.DeliveriesAsync(hook.Id));
        Assert.Equal((DeliveryStatus.Retrying, 1, (DateTime?)null), (waiting.Status, waiting.AttemptCount, waiting.NextAttemptAt));

        // Enabling resumes it, as its next attempt.
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{hook.Id}", new { is_active = true })).AssertStatusAsync(System.Net.HttpStatusCode.OK);
        await receiver.WaitForAsync("/inflight", 2);
        var resumed = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "the resumed delivery delivered");
        Assert.Equal((2, 200), (resumed.AttemptCount, resumed.LastStatusCode));
    }

    [Fact]
    public async Task A_delivery_claimed_before_its_webhook_is_disabled_and_read_after_is_paused_with_its_error_unless_Gymwire_deactivated_it()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var byOwner = await gym.CreateWebhookAsync(receiver.Url("/owner"), "lead.created");
        var byGymwire = await gym.CreateWebhookAsync(receiver.Url("/gymwire"), "lead.created");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        // A retry due now of each webhook, whose subscription is already inactive when the worker reads its claim: the
        // state a disable committed between a claim and its read leaves (the disable pauses only unclaimed rows).
        var ids = new List<Guid>();
        foreach (var (hook, reason) in new[] { (byOwner, (string?)null), (byGymwire, "The endpoint answered 410 Gone") })
        {
            var d = Parked(gym.GymId, hook.Id, now);
            (d.Status, d.AttemptCount, d.NextAttemptAt, d.LastStatusCode, d.LastError) = (DeliveryStatus.Retrying, 1, now, 503, "HTTP 503 from the endpoint");
            ids.Add(d.Id);
            await fx.WithDbAsync(async db =>
            {
                db.WebhookDeliveries.Add(d);
                await db.SaveChangesAsync();
                return await db.WebhookSubscriptions.Where(s => s.Id == hook.Id)
                    .ExecuteUpdateAsync(u => u.SetProperty(s => s.IsActive, false).SetProperty(s => s.DisabledReason, reason).SetProperty(s => s.DisabledAt, now));
            });
        }
        fx.WakeWorker();

        var paused = await fx.WaitForDeliveryAsync(byOwner.Id, d => d.NextAttemptAt is null, "the owner-disabled one handled");
        Assert.Equal((DeliveryStatus.Retrying, 1, 503, "HTTP 503 from the endpoint", (DateTime?)null),
            (paused.Status, paused.AttemptCount, paused.LastStatusCode, paused.LastError, paused.LockedUntil));
        var ended = await fx.WaitForDeliveryAsync(byGymwire.Id, d => d.Status == DeliveryStatus.Undeliverable, "the Gymwire-deactivated one ended");
        Assert.Equal((DeliveryRows.InactiveError, 1), (ended.LastError, ended.AttemptCount));
        Assert.Empty(receiver.Requests);

        using var owner = gym.Owner();
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{byOwner.Id}", new { is_active = true })).AssertStatusAsync(System.Net.HttpStatusCode.OK);
        await receiver.WaitForAsync("/owner", 1);
        var resumed = await fx.WaitForDeliveryAsync(byOwner.Id, d => d.Status == DeliveryStatus.Delivered, "the resumed delivery delivered");
        Assert.Equal(2, resumed.AttemptCount);
    }

    [Fact]
    public async Task A_delivery_read_while_its_webhook_was_off_and_recorded_after_it_was_enabled_again_is_due_at_once()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/enabled-again"), "lead.created");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        // A retry claimed by a worker (its lease running), whose webhook the owner disabled before the worker read it.
        var d = Parked(gym.GymId, hook.Id, now);
        (d.Status, d.AttemptCount, d.NextAttemptAt, d.LockedUntil, d.LastStatusCode, d.LastError) =
            (DeliveryStatus.Retrying, 1, now.AddMinutes(1), now.AddMinutes(1), 503, "HTTP 503 from the endpoint");
        await fx.WithDbAsync(async db =>
        {
            db.WebhookDeliveries.Add(d);
            await db.SaveChangesAsync();
            return await db.WebhookSubscriptions.Where(s => s.Id == hook.Id).ExecuteUpdateAsync(u => u.SetProperty(s => s.IsActive, false).SetProperty(s => s.DisabledAt, now));
        });
        var read = await fx.Queue().ReadUnfinishedAsync(d.Id, CancellationToken.None);
        Assert.False(read!.SubscriptionActive);
        var record = await fx.Services.GetRequiredService<Attempt>().SendAsync(read with { DueAt = now }, CancellationToken.None);
        Assert.Null(record.Attempt);

        // The owner enables it again before the worker records: the claimed delivery is not among those the enable resumes.
        using var owner = gym.Owner();
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{hook.Id}", new { is_active = true })).AssertStatusAsync(System.Net.HttpStatusCode.OK);
        await fx.Services.GetRequiredService<AttemptRecorder>().RecordAsync(record);

        // Neither ended as if its webhook were off nor paused with no due time: due now, its state kept, and then sent.
        var recorded = (await fx.DeliveriesAsync(hook.Id)).Single();
        Assert.Equal((DeliveryStatus.Retrying, 1, 503, "HTTP 503 from the endpoint", (DateTime?)null),
            (recorded.Status, recorded.AttemptCount, recorded.LastStatusCode, recorded.LastError, recorded.LockedUntil));
        Assert.Equal(record.Finished, recorded.NextAttemptAt);
        fx.WakeWorker();
        await receiver.WaitForAsync("/enabled-again", 1);
        var delivered = await fx.WaitForDeliveryAsync(hook.Id, x => x.Status == DeliveryStatus.Delivered, "the delivery sent once enabled");
        Assert.Equal(2, delivered.AttemptCount);
    }
}
