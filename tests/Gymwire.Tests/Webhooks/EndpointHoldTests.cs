using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// <c>Webhooks:HoldPausedDeliveries</c>: a paused endpoint's due deliveries are moved to the end of its pause
/// (<see cref="IDeliveryQueue.HoldAsync"/>), when the pause begins and at fan-out, and are due exactly when the
/// policy lets its probe go.
/// </summary>
public abstract class EndpointHoldTests(WebhookFixture fx)
{
    public sealed class Sqlite(SqliteHolds f) : EndpointHoldTests(f), IClassFixture<SqliteHolds>;
    public sealed class Postgres(PostgresHolds f) : EndpointHoldTests(f), IClassFixture<PostgresHolds>;

    private static WebhookDelivery Row(Guid gymId, Guid subscriptionId, DateTime now, DateTime? due, string status = DeliveryStatus.Pending) => new()
    {
        Id = Guid.CreateVersion7(), GymId = gymId, SubscriptionId = subscriptionId, EventId = Guid.NewGuid(), Event = "lead.created",
        Payload = WebhookPayloads.Build(Guid.NewGuid(), "lead.created", gymId, "{}", now), Status = status,
        CreatedAt = now, NextAttemptAt = due,
    };

    [Fact]
    public async Task A_hold_moves_only_that_endpoints_unclaimed_due_deliveries_and_only_to_the_given_time()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/held"), "lead.created");
        var other = await gym.CreateWebhookAsync(receiver.Url("/other"), "lead.created");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var until = now.AddSeconds(30);
        // Both endpoints paused for an hour, so the worker claims none of these rows meanwhile.
        var due = Row(gym.GymId, hook.Id, now, now.AddMinutes(-1));
        var retry = Row(gym.GymId, hook.Id, now, now.AddMinutes(-2), DeliveryStatus.Retrying);
        var later = Row(gym.GymId, hook.Id, now, now.AddMinutes(10));
        var claimed = Row(gym.GymId, hook.Id, now, now.AddMinutes(1));
        (claimed.LockedUntil, claimed.ClaimedBy, claimed.DueBeforeClaim) = (now.AddMinutes(1), Guid.NewGuid(), now.AddMinutes(-1));
        var lapsed = Row(gym.GymId, hook.Id, now, now.AddMinutes(-1));
        (lapsed.LockedUntil, lapsed.ClaimedBy) = (now.AddMinutes(-1), Guid.NewGuid());
        var ownerPaused = Row(gym.GymId, hook.Id, now, null, DeliveryStatus.Retrying);
        var finished = Row(gym.GymId, hook.Id, now, now.AddMinutes(-1), DeliveryStatus.Undeliverable);
        var otherDue = Row(gym.GymId, other.Id, now, now.AddMinutes(-1));
        var rows = new[] { due, retry, later, claimed, lapsed, ownerPaused, finished, otherDue };
        await fx.WithDbAsync(async db =>
        {
            await db.WebhookSubscriptions.Where(s => s.Id == hook.Id || s.Id == other.Id)
                .ExecuteUpdateAsync(u => u.SetProperty(s => s.PausedUntil, now.AddHours(1)).SetProperty(s => s.ConsecutiveFailures, 3));
            db.WebhookDeliveries.AddRange(rows);
            return await db.SaveChangesAsync();
        });

        Assert.Equal(3, await fx.Queue().HoldAsync(hook.Id, until, CancellationToken.None));

        var stored = await fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().Where(d => d.GymId == gym.GymId).ToDictionaryAsync(d => d.Id));
        // Due and unclaimed (a lapsed claim is unclaimed): moved, exactly to the hold's end.
        foreach (var moved in new[] { due, retry, lapsed })
        {
            Assert.Equal(until, stored[moved.Id].NextAttemptAt);
        }
        // Not due yet, claimed, paused by the owner, finished, or another endpoint's: as they were.
        foreach (var kept in new[] { later, claimed, ownerPaused, finished, otherDue })
        {
            Assert.Equal((kept.NextAttemptAt, kept.LockedUntil, kept.ClaimedBy, kept.Status),
                (stored[kept.Id].NextAttemptAt, stored[kept.Id].LockedUntil, stored[kept.Id].ClaimedBy, stored[kept.Id].Status));
        }
        Assert.Equal(claimed.DueBeforeClaim, stored[claimed.Id].DueBeforeClaim);
        Assert.Empty(receiver.Requests);
    }

    [Fact]
    public async Task A_pause_holds_the_endpoints_queued_deliveries_and_new_ones_until_its_end_when_the_probe_goes_and_no_later()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/down", new Reply(503, "down"));
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/down"), "lead.created", "member.joined");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        // Ten deliveries due now; one attempt at a time, so the third failure pauses the endpoint with seven queued.
        var rows = Enumerable.Range(0, 10).Select(_ => Row(gym.GymId, hook.Id, now, now)).ToList();
        await fx.WithDbAsync(async db =>
        {
            db.WebhookDeliveries.AddRange(rows);
            return await db.SaveChangesAsync();
        });
        fx.WakeWorker();
        await receiver.WaitForAsync("/down", 3);
        var pausedUntil = (await Eventually.ValueAsync(async () => await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking()
            .Where(s => s.Id == hook.Id && s.PausedUntil != null).Select(s => new { s.PausedUntil }).SingleOrDefaultAsync()), what: "the pause")).PausedUntil!.Value;
        Assert.True(pausedUntil > fx.Clock.GetUtcNow().UtcDateTime);

        // Held in the transaction that paused it: every unattempted one is due exactly at the pause's end.
        var queued = (await fx.DeliveriesAsync(hook.Id)).Where(d => d.AttemptCount == 0).ToList();
        Assert.Equal(7, queued.Count);
        Assert.All(queued, d => Assert.Equal(pausedUntil, d.NextAttemptAt));
        Assert.Equal(3, receiver.At("/down").Count);

        // A new event meanwhile: its delivery is created due at the pause's end too.
        using var owner = gym.Owner();
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Held", user_id = "user_held" })).AssertStatusAsync(System.Net.HttpStatusCode.Created);
        var fresh = await fx.WaitForDeliveryAsync(hook.Id, d => d.Event == "member.joined", "the new event's delivery");
        Assert.Equal(pausedUntil, fresh.NextAttemptAt);

        // At the pause's end, not later: the probe goes, answers, and the held deliveries follow.
        receiver.On("/down", new Reply(200, "ok"));
        fx.AdvanceAndWake(pausedUntil - fx.Clock.GetUtcNow().UtcDateTime);
        await receiver.WaitForAsync("/down", 3 + 8);
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hook.Id)).Count(d => d.Status == DeliveryStatus.Delivered) == 8, what: "the held deliveries delivered");
        Assert.Equal(pausedUntil, fx.Clock.GetUtcNow().UtcDateTime);
    }
    [Fact]
    public async Task A_claim_given_back_after_its_endpoint_paused_is_due_at_the_pauses_end_and_one_of_a_running_endpoint_at_its_own_time()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var paused = await gym.CreateWebhookAsync(receiver.Url("/paused"), "lead.created");
        var running = await gym.CreateWebhookAsync(receiver.Url("/running"), "lead.created");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        // This node's worker leaves both endpoints out while the test holds their slot; the test's claim leaves out nothing.
        var policy = fx.Services.GetRequiredService<EndpointPolicy>();
        Assert.Equal(Admission.Go, policy.Admit(paused.Id, EndpointHealth.Healthy));
        Assert.Equal(Admission.Go, policy.Admit(running.Id, EndpointHealth.Healthy));
        var rows = new[] { Row(gym.GymId, paused.Id, now, now.AddSeconds(-2)), Row(gym.GymId, running.Id, now, now.AddSeconds(-1)) };
        await fx.WithDbAsync(async db =>
        {
            db.WebhookDeliveries.AddRange(rows);
            return await db.SaveChangesAsync();
        });
        var queue = fx.Queue();
        var claimed = await queue.ClaimAsync(100, [], [], CancellationToken.None);
        var mine = claimed.Where(c => c.GymId == gym.GymId).ToList();
        await queue.ReleaseAsync(claimed.Except(mine).ToList(), CancellationToken.None);
        Assert.Equal(2, mine.Count);

        // The endpoint pauses while its delivery is claimed (its hold passed the claim by); then the claim is given back.
        var pausedUntil = now.AddSeconds(20);
        await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == paused.Id)
            .ExecuteUpdateAsync(u => u.SetProperty(s => s.PausedUntil, pausedUntil).SetProperty(s => s.ConsecutiveFailures, 3)));
        await queue.ReleaseAsync(mine, CancellationToken.None);
        policy.Release(paused.Id);
        policy.Release(running.Id);

        Assert.Equal(pausedUntil, Assert.Single(await fx.DeliveriesAsync(paused.Id)).NextAttemptAt);
        Assert.Equal(rows[1].NextAttemptAt, Assert.Single(await fx.DeliveriesAsync(running.Id)).NextAttemptAt);
        fx.WakeWorker();
        await receiver.WaitForAsync("/running", 1);
        Assert.Empty(receiver.At("/paused"));
    }
}
