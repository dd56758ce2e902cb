using Gymwire.Data;
using Gymwire.Features.Events;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Cluster;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// Three nodes on one PostgreSQL share a failing endpoint's health (stored with its subscription): its failures count
/// toward one threshold whichever node made them, a pause holds on every node, each pause ends in one probe for the
/// cluster, and one successful probe resumes deliveries on every node.
/// </summary>
public sealed class EndpointHealthTests(ThreeNodes fx) : IClassFixture<ThreeNodes>
{
    private DateTime Now() => fx.Clock.GetUtcNow().UtcDateTime;

    /// <summary>Wakes every node's delivery worker, as a moved clock would after their poll interval.</summary>
    private void AdvanceAndWakeAll(TimeSpan by)
    {
        fx.Clock.Advance(by);
        foreach (var node in fx.Nodes)
        {
            node.Services.GetRequiredService<DeliverySignal>().Notify();
        }
    }

    /// <summary>
    /// Writes the <paramref name="n"/>th lead.created event on the given node and waits until the witness endpoint has
    /// it: that node's dispatcher fans the event out and wakes its own worker (the others sleep on the fake clock), so
    /// the nodes take turns claiming.
    /// </summary>
    private async Task EventOnNodeAsync(Node node, Guid gymId, TestReceiver receiver, string witness, int n)
    {
        await using (var scope = node.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            db.AddEvent(gymId, EventCatalog.LeadCreated, new { lead_id = Guid.NewGuid(), n }, Now());
            await db.SaveChangesAsync();
        }
        await receiver.WaitForAsync(witness, n);
    }

    private Task<WebhookSubscription> SubscriptionAsync(Guid subscriptionId) =>
        fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == subscriptionId));

    [Fact]
    public async Task The_auto_disable_clock_runs_for_the_cluster_from_the_first_failure_and_one_probe_past_it_disables_the_endpoint_everywhere()
    {
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/dead", _ => new Reply(503));
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/dead"), "lead.created");
        await gym.CreateWebhookAsync(receiver.Url("/alive"), "lead.created");
        var events = 0;

        // Failures made by the three nodes in turn, a second apart: one clock, started by the first of them.
        var firstFailure = Now();
        for (var n = 0; n < 5; n++)
        {
            await EventOnNodeAsync(fx.Nodes[n % 3], gym.GymId, receiver, "/alive", ++events);
            await receiver.WaitForAsync("/dead", n + 1);
            await Eventually.TrueAsync(async () => (await SubscriptionAsync(hook.Id)).ConsecutiveFailures == n + 1, what: $"failure {n + 1} recorded");
            if (n < 4)
            {
                fx.Clock.Advance(TimeSpan.FromMilliseconds(200));
            }
        }
        var stored = await SubscriptionAsync(hook.Id);
        Assert.Equal((firstFailure, true), (stored.FailingSince, stored.PausedUntil is not null));

        // Past Webhooks:AutoDisableAfter (5 days) from the first failure: the pause's one probe fails and disables the
        // endpoint; its queued deliveries are dropped, and no node sends it anything again.
        fx.Clock.Advance(TimeSpan.FromDays(5));
        foreach (var node in fx.Nodes)
        {
            node.Services.GetRequiredService<DeliverySignal>().Notify();
        }
        await receiver.WaitForAsync("/dead", 6);
        await Eventually.TrueAsync(async () => !(await SubscriptionAsync(hook.Id)).IsActive, what: "the endpoint disabled");
        stored = await SubscriptionAsync(hook.Id);
        Assert.Equal(firstFailure, stored.FailingSince);
        Assert.StartsWith("Every delivery attempt has failed since", stored.DisabledReason, StringComparison.Ordinal);
        foreach (var node in fx.Nodes)
        {
            await EventOnNodeAsync(node, gym.GymId, receiver, "/alive", ++events);
        }
        Assert.Equal(6, receiver.At("/dead").Count);
        Assert.DoesNotContain(await fx.DeliveriesAsync(hook.Id), d => d.Status is DeliveryStatus.Pending or DeliveryStatus.Retrying);
    }

    [Fact]
    public async Task A_receiver_that_is_down_gets_one_probe_per_pause_from_the_whole_cluster_and_a_healed_one_is_resumed_by_every_node()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var down = 1;
        receiver.On("/down", _ => Volatile.Read(ref down) == 1 ? new Reply(503) : new Reply());
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/down"), "lead.created");
        // A second webhook gets every event too: once it has one, a worker has claimed since that event's deliveries
        // were made, and the failing endpoint's was left out only if it is paused.
        await gym.CreateWebhookAsync(receiver.Url("/witness"), "lead.created");
        var events = 0;
        Task EventOnAsync(Node node) => EventOnNodeAsync(node, gym.GymId, receiver, "/witness", ++events);
        async Task OnEveryNodeAsync()
        {
            foreach (var node in fx.Nodes)
            {
                await EventOnAsync(node);
            }
        }
        Task<WebhookSubscription> StoredAsync() => SubscriptionAsync(hook.Id);
        async Task PausedForAsync(int seconds) => await Eventually.TrueAsync(async () => (await StoredAsync()).PausedUntil == Now() + TimeSpan.FromSeconds(seconds),
            what: $"a pause of {seconds} s");

        // Five failures, made by the three nodes in turn: one count for the cluster, which pauses the endpoint for 1 s.
        for (var n = 0; n < 5; n++)
        {
            await EventOnAsync(fx.Nodes[n % 3]);
            await receiver.WaitForAsync("/down", n + 1);
        }
        await PausedForAsync(1);
        var stored = await StoredAsync();
        Assert.Equal((5, TimeSpan.FromSeconds(1), (DateTime?)null), (stored.ConsecutiveFailures, stored.PauseLength, stored.ProbeClaimedUntil));

        // Paused on every node: two events written on each are not attempted.
        await OnEveryNodeAsync();
        await OnEveryNodeAsync();
        Assert.Equal(5, receiver.At("/down").Count);

        // Each pause: nothing is sent until it ends, on any node; then the three nodes race for the probe, and exactly
        // one is sent. It fails, and the pause doubles.
        var sent = 5;
        foreach (var pause in new[] { 1, 2, 4 })
        {
            AdvanceAndWakeAll(TimeSpan.FromSeconds(pause) - TimeSpan.FromMilliseconds(1));
            await OnEveryNodeAsync();
            Assert.Equal(sent, receiver.At("/down").Count);

            AdvanceAndWakeAll(TimeSpan.FromMilliseconds(1));
            await receiver.WaitForAsync("/down", ++sent);
            await PausedForAsync(pause * 2);
            await OnEveryNodeAsync();
            Assert.Equal(sent, receiver.At("/down").Count);
        }
        // The witness can get an event before the fan-out commits its rows (the worker sends while it commits): the
        // count waits for the endpoint's row of every event.
        var queued = (await fx.WaitForDeliveriesAsync(hook.Id, events, _ => true, "every event's delivery committed")).Count(d => d.Status == DeliveryStatus.Pending);
        // Two events per node while paused, six per pause period, three of them probed.
        Assert.Equal(2 * 3 + 3 * 6 - 3, queued);

        // The receiver is back: the next probe succeeds, the health is cleared for every node, and the queued
        // deliveries go at once, without the clock moving again.
        Interlocked.Exchange(ref down, 0);
        AdvanceAndWakeAll(TimeSpan.FromSeconds(8));
        await receiver.WaitForAsync("/down", sent += queued);
        stored = await StoredAsync();
        Assert.Equal((0, (DateTime?)null, (TimeSpan?)null, (DateTime?)null), (stored.ConsecutiveFailures, stored.PausedUntil, stored.PauseLength, stored.ProbeClaimedUntil));
        foreach (var node in fx.Nodes)
        {
            await EventOnAsync(node);
            await receiver.WaitForAsync("/down", ++sent);
        }

        // The first five and the three failed probes at their scheduled retry: everything delivered, once each. The
        // receiver counts a request before its attempt is recorded; a jump past the claim's lease before then would
        // let another node send that delivery again (at least once), so the jump waits for every claim to be recorded.
        await fx.WaitForDeliveriesAsync(hook.Id, events, d => d.ClaimedBy is null, "every attempt recorded");
        AdvanceAndWakeAll(TimeSpan.FromMinutes(6));
        var deliveries = await fx.WaitForDeliveriesAsync(hook.Id, events, d => d.Status == DeliveryStatus.Delivered, "every delivery delivered");
        Assert.Equal(sent + 8, receiver.At("/down").Count);
        Assert.Equal(events, receiver.At("/down").Select(r => r.Header("webhook-id")).Distinct().Count());
    }
}
