using System.Net;
using Gymwire.Features.Cluster;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Gymwire.Tests.Cluster;

/// <summary>
/// The cluster with a heartbeat every second, a node dead after 5 missed ones, and a shutdown timeout of a minute: a
/// stopping node's drain (two thirds of that, on the fake clock) outlasts the dead threshold many times over. Attempts
/// time out after 30 s (real time), so that the one held through the drain outlasts a loaded machine's slow heartbeats.
/// </summary>
public sealed class QuickHeartbeatNodes : ThreeNodes
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        .. base.Settings(),
        new("Cluster:HeartbeatInterval", "00:00:01"),
        new("Cluster:DeadAfterMissedHeartbeats", "5"),
        new("shutdownTimeoutSeconds", "60"),
        new("Webhooks:Timeout", "00:00:30"),
    ];
}

/// <summary>
/// A node stopped cleanly while an attempt is out to a receiver that takes its time: the host stops its delivery worker
/// before its heartbeat, so the node keeps beating while it drains, and the live nodes neither take it for dead nor
/// release its claim, however far past the dead threshold the answer comes. The delivery is sent and recorded once.
/// </summary>
public sealed class DrainingNodeTests(QuickHeartbeatNodes fx) : IClassFixture<QuickHeartbeatNodes>
{
    [Fact]
    public async Task A_node_draining_past_the_dead_threshold_keeps_beating_and_its_delivery_is_sent_once()
    {
        var cluster = fx.Services.GetRequiredService<IOptions<ClusterOptions>>().Value;
        var lease = fx.Services.GetRequiredService<IOptions<WebhookOptions>>().Value.EffectiveClaimLease;
        var drain = DeliveryWorker.DrainOf(fx.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
        // The clock moves twice the dead threshold while the node drains (and may be nudged on, see BeatenAsync): all of
        // it well inside the drain and the claim's lease, so only a release could send the delivery again.
        var moved = cluster.DeadAfter * 2;
        Assert.True(moved * 2 < drain, $"the test needs the drain ({drain}) to outlast the clock's moves by far");
        Assert.True(moved * 2 < lease, $"the test needs the claim's lease ({lease}) to outlast the clock's moves by far");

        await using var receiver = await TestReceiver.StartAsync();
        var answer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        receiver.On("/draining", new Reply { Gate = answer.Task });
        var gym = await fx.CreateGymAsync();

        // Node A, beside the fixture's three: the test stops it.
        var app = await fx.StartNodeAsync();
        var a = new Node(app.Services);
        string[] Released() => [.. fx.Logs.Lines.Where(l => l.Contains($"ClusterHeartbeat: Node {a.Id} is dead", StringComparison.Ordinal))];
        Task? stopping = null;
        try
        {
            await Eventually.TrueAsync(() => fx.WithDbAsync(db => db.ClusterNodes.AnyAsync(n => n.Id == a.Id)), what: "A's first heartbeat");
            // The subscription and the event written on A: the write wakes A's dispatcher, which hands the delivery to A's worker.
            using var client = a.Client(gym.OwnerToken);
            var hook = (await (await client.PostJsonAsync("/api/gym/webhooks", new { url = receiver.Url("/draining"), events = new[] { "member.joined" } }))
                .AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid();
            await (await client.PostJsonAsync("/api/gym/members", new { name = "Member draining", user_id = "user_draining" })).AssertStatusAsync(HttpStatusCode.Created);
            await receiver.WaitForAsync("/draining", 1);
            var delivery = await fx.WaitForDeliveryAsync(hook, d => d.ClaimedBy is not null, "the delivery claimed");
            Assert.Equal(a.Id, delivery.ClaimedBy);

            // A stops while the receiver holds its answer: its worker waits for the attempt.
            var logStart = fx.Logs.Lines.Count;
            var stopBegan = fx.Clock.GetUtcNow().UtcDateTime;
            stopping = Task.Run(() => app.StopAsync());
            await Eventually.TrueAsync(() => Task.FromResult(stopping.IsCompleted || fx.Logs.Lines.Skip(logStart).Any(l => l.StartsWith(
                "Information Gymwire.Features.Webhooks.DeliveryWorker: Stopping: waiting up to", StringComparison.Ordinal))), what: "A's worker draining");
            Assert.False(stopping.IsCompleted, "A stopped without waiting for its attempt in flight");

            // Twice the dead threshold passes one heartbeat at a time, every running node beating along; then the other
            // nodes' workers look for due deliveries (a released claim would be due at once).
            var nodes = fx.Nodes.Select(n => n.Id).Append(a.Id).ToList();
            while (fx.Clock.GetUtcNow().UtcDateTime < stopBegan + moved)
            {
                fx.Clock.Advance(cluster.HeartbeatInterval);
                await BeatenAsync(nodes, cluster.HeartbeatInterval);
            }
            foreach (var node in fx.Nodes)
            {
                node.Services.GetRequiredService<DeliverySignal>().Notify();
            }
            Assert.True((await fx.AttemptsAsync(delivery.Id)).Count == 0, "A's attempt ended before the receiver answered (its timeout is real time)");
            var held = await fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().SingleAsync(d => d.Id == delivery.Id));
            Assert.True(held.ClaimedBy == a.Id && Released().Length == 0,
                $"A's claim was released while it drained (claimed by {held.ClaimedBy?.ToString() ?? "nobody"} now):\n{string.Join('\n', Released())}");

            // The receiver answers; A records the attempt and stops.
            answer.SetResult();
            await stopping;
            var recorded = await fx.WaitForDeliveryAsync(hook, d => d.Status == DeliveryStatus.Delivered, "the delivery recorded as delivered");
            Assert.Null(recorded.ClaimedBy);
            Assert.Equal(200, Assert.Single(await fx.AttemptsAsync(recorded.Id)).StatusCode);
            var received = receiver.At("/draining");
            Assert.True(received.Count == 1, $"the receiver got {received.Count} requests: {string.Join(", ", received.Select(r => r.Header("webhook-id")))}");
            Assert.Equal(recorded.Id.ToString(), received[0].Header("webhook-id"));
            Assert.Empty(Released());
            fx.Logs.AssertNoErrorsSince(logStart, "Gymwire");
        }
        finally
        {
            answer.TrySetResult();
            await (stopping ?? app.StopAsync());
            await app.DisposeAsync();
        }
    }

    /// <summary>
    /// Until every node of <paramref name="nodes"/> that has not recorded a stop has beaten within the last interval. A
    /// node not yet waiting on the clock when it moved waits a whole interval from the new time: if the beats do not
    /// come within 5 s, the clock moves one more interval.
    /// </summary>
    private async Task BeatenAsync(List<Guid> nodes, TimeSpan interval)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        var nudgeAt = DateTime.UtcNow.AddSeconds(5);
        while (true)
        {
            var since = fx.Clock.GetUtcNow().UtcDateTime - interval;
            if (!await fx.WithDbAsync(db => db.ClusterNodes.AnyAsync(n => nodes.Contains(n.Id) && n.StoppedAt == null && n.LastSeenAt < since)))
            {
                return;
            }
            Assert.True(DateTime.UtcNow < deadline, "the running nodes' heartbeats did not come");
            if (DateTime.UtcNow > nudgeAt)
            {
                fx.Clock.Advance(interval);
                nudgeAt = DateTime.UtcNow.AddSeconds(5);
            }
            await Task.Delay(20);
        }
    }
}
