using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.RegularExpressions;
using Gymwire.Features.Cluster;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Options;

namespace Gymwire.Tests.Cluster;

/// <summary>
/// Three live nodes on one PostgreSQL, on the fake clock, and a fourth that stopped beating while it held claims: the
/// live nodes' heartbeats release its claims once it is dead, long before their lease ends, each claim once although
/// all three notice together; the <c>gymwire.cluster.nodes</c> gauge counts the live nodes.
/// </summary>
public sealed partial class DeadNodeClaimTests(ThreeNodes fx) : IClassFixture<ThreeNodes>
{
    [Fact]
    public async Task A_dead_nodes_claims_are_released_once_by_the_live_nodes_at_the_dead_threshold_not_at_the_lease_end()
    {
        var cluster = fx.Services.GetRequiredService<IOptions<ClusterOptions>>().Value;
        var lease = fx.Services.GetRequiredService<IOptions<WebhookOptions>>().Value.EffectiveClaimLease;
        // The clock moves on by the dead threshold and up to three intervals (one, and a nudge in each wait below).
        Assert.True(cluster.DeadAfter + cluster.HeartbeatInterval * 3 < lease, "the test needs the dead threshold to end before the lease");
        using var gauge = new MetricCollector<long>(fx.Services.GetRequiredService<IMeterFactory>(), ClusterMetrics.MeterName, "gymwire.cluster.nodes");
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/dead-node"), "lead.created");

        // The dead node was seen just now and holds 20 claims made a moment ago, due 30 s before they were claimed.
        var start = fx.Clock.GetUtcNow().UtcDateTime;
        var dead = Guid.NewGuid();
        const int claims = 20;
        var dueBefore = start.AddSeconds(-30);
        await fx.WithDbAsync(db =>
        {
            db.ClusterNodes.Add(new ClusterNode { Id = dead, Host = "killed", Version = "test", Roles = "api,dispatcher,worker", StartedAt = start.AddMinutes(-5), LastSeenAt = start });
            for (var i = 0; i < claims; i++)
            {
                db.WebhookDeliveries.Add(new WebhookDelivery
                {
                    Id = Guid.CreateVersion7(), GymId = gym.GymId, SubscriptionId = hook.Id, Event = "lead.created",
                    Payload = "{\"n\":" + i.ToString(CultureInfo.InvariantCulture) + "}", Status = DeliveryStatus.Pending, CreatedAt = dueBefore,
                    NextAttemptAt = start + lease, LockedUntil = start + lease, ClaimedBy = dead, DueBeforeClaim = dueBefore,
                });
            }
            return db.SaveChangesAsync();
        });
        async Task<int> HeldAsync() => await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.ClaimedBy == dead));

        // Still live one interval on: nothing is released. A node may not be waiting on the clock yet when it is advanced
        // (it then waits a whole interval from the new time); if not every node beats, one more interval, which still
        // leaves the dead node short of the dead threshold.
        Assert.True(cluster.HeartbeatInterval * 2 < cluster.DeadAfter, "the test needs two intervals to end before the dead threshold");
        fx.Clock.Advance(cluster.HeartbeatInterval);
        var beat = fx.Clock.GetUtcNow().UtcDateTime;
        var live = fx.Nodes.Select(n => n.Id).ToList();
        var beatDeadline = DateTime.UtcNow.AddSeconds(20);
        var beatNudged = false;
        while (await fx.WithDbAsync(db => db.ClusterNodes.CountAsync(n => live.Contains(n.Id) && n.LastSeenAt >= beat)) < live.Count)
        {
            Assert.True(DateTime.UtcNow < beatDeadline, "the live nodes' next beat did not come");
            if (!beatNudged && DateTime.UtcNow > beatDeadline.AddSeconds(-15))
            {
                fx.Clock.Advance(cluster.HeartbeatInterval);
                beatNudged = true;
            }
            await Task.Delay(20);
        }
        Assert.Equal(claims, await HeldAsync());

        // Dead: the three live nodes' next beats (at the same instant) release its claims. A node may not be waiting on
        // the clock yet when it is advanced; if none beats, one more interval (still well inside the lease).
        fx.Clock.Advance(cluster.DeadAfter);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        var nudged = false;
        while (await HeldAsync() > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the dead node's claims were not released");
            if (!nudged && DateTime.UtcNow > deadline.AddSeconds(-15))
            {
                fx.Clock.Advance(cluster.HeartbeatInterval);
                nudged = true;
            }
            await Task.Delay(20);
        }
        Assert.True(fx.Clock.GetUtcNow().UtcDateTime < start + lease);
        foreach (var node in fx.Nodes)
        {
            node.Services.GetRequiredService<DeliverySignal>().Notify();
        }
        await receiver.WaitForAsync("/dead-node", claims);
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hook.Id)).All(d => d.Status == DeliveryStatus.Delivered && d.ClaimedBy == null),
            what: "every released delivery recorded as delivered");
        // Each claim was released once, so each delivery was sent once, before its lease would have ended.
        var received = receiver.At("/dead-node");
        Assert.Equal(claims, received.Count);
        Assert.Equal(claims, received.Select(r => r.Header("webhook-id")).Distinct().Count());
        var attempts = await fx.WithDbAsync(db => db.WebhookAttempts.Where(a => a.GymId == gym.GymId).Select(a => a.AttemptedAt).ToListAsync());
        Assert.All(attempts, at => Assert.True(at < start + lease));

        // Logged at Warning with the node's id and how many were released, by whichever live nodes released them.
        var released = fx.Logs.Lines.Where(l => l.StartsWith("Warning", StringComparison.Ordinal) && l.Contains(dead.ToString(), StringComparison.Ordinal))
            .Select(l => int.Parse(ReleasedCount().Match(l).Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
        Assert.NotEmpty(released);
        Assert.Equal(claims, released.Sum());

        // The gauge: the three live nodes (the dead one, and any stopped one, not counted), as node 0's last beat counted
        // them. Its beat may have missed the advance that made the node dead, so let the beats go on until it counts.
        long? counted = null;
        for (var i = 0; i < 20 && counted != fx.Nodes.Count; i++)
        {
            fx.Clock.Advance(cluster.HeartbeatInterval);
            await Task.Delay(200);
            gauge.RecordObservableInstruments();
            counted = gauge.LastMeasurement?.Value;
        }
        Assert.Equal(fx.Nodes.Count, counted);
    }

    [GeneratedRegex(@"released its (\d+) claimed deliveries")]
    private static partial Regex ReleasedCount();
}
