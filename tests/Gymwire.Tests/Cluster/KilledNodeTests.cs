using System.Diagnostics;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Reliability;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Xunit.Abstractions;

namespace Gymwire.Tests.Cluster;

/// <summary>
/// Real gymwire processes killed with SIGKILL while they hold claims (their attempts are held at the receiver), with a
/// claim lease of 5 minutes: a killed node's in-flight deliveries are sent again within seconds, not at the lease's end.
/// On SQLite the restarted process releases them at start; on PostgreSQL a live node releases them once the killed one
/// is dead (here after 2 missed 1 s heartbeats). The in-process fixture only reads and writes the database.
/// </summary>
public abstract class KilledNodeTests(GymwireFixture fx, ITestOutputHelper output)
{
    public sealed class Sqlite(PassiveSqlite f, ITestOutputHelper o) : KilledNodeTests(f, o), IClassFixture<PassiveSqlite>;
    public sealed class Postgres(PassivePostgres f, ITestOutputHelper o) : KilledNodeTests(f, o), IClassFixture<PassivePostgres>
    {
        private readonly PassivePostgres _fx = f;
        private readonly ITestOutputHelper _output = o;

        [Fact]
        public async Task Killing_one_of_three_nodes_mid_burst_releases_its_claims_at_the_dead_threshold_and_delivers_every_event()
        {
            const int events = 80;
            await using var receiver = await TestReceiver.StartAsync();
            var gate = HoldAttempts(receiver);
            var a = await StartAsync(_fx);
            var b = await StartAsync(_fx);
            await using var survivor = b.Node;
            var c = await StartAsync(_fx);
            await using var other = c.Node;
            try
            {
                var (gym, _) = await DeliveryCrashTests.SubscribeAsync(_fx, receiver, a.Node, Endpoints);
                await DeliveryCrashTests.IngestAsync(_fx, gym.GymId, events);
                // Every node holds claims: every attempt waits at the receiver.
                await Eventually.TrueAsync(async () => await HeldByAsync(_fx, a.Id) > 0 && await HeldByAsync(_fx, b.Id) > 0 && await HeldByAsync(_fx, c.Id) > 0,
                    TimeSpan.FromSeconds(30), "all three nodes holding claims");
                var held = await HeldByAsync(_fx, a.Id);
                await a.Node.KillAsync();
                var killed = Stopwatch.StartNew();
                gate.SetResult();

                await Eventually.TrueAsync(async () => await HeldByAsync(_fx, a.Id) == 0, TimeSpan.FromSeconds(15), "the killed node's claims released");
                var released = killed.Elapsed;
                await AssertAllDeliveredAsync(_fx, gym.GymId, TimeSpan.FromSeconds(20));
                var delivered = killed.Elapsed;
                var (unique, total) = DeliveryCrashTests.Count(receiver);
                Assert.Equal(events * Endpoints, unique);
                Assert.True(total - unique <= MaxInFlight, $"{total - unique} duplicates, more than the killed node had in flight");
                // A survivor logged the release, with the dead node's id.
                Assert.Contains(a.Id.ToString(), b.Node.Output + c.Node.Output, StringComparison.Ordinal);
                _output.WriteLine($"killed with {held} claims: released {released.TotalSeconds:0.0} s after the kill, all delivered after {delivered.TotalSeconds:0.0} s (lease {Lease}); {total - unique} duplicates");
            }
            finally
            {
                await a.Node.DisposeAsync();
            }
        }
    }

    private const int Endpoints = 2;
    private const int MaxInFlight = 32;
    private const string Lease = "00:05:00";

    /// <summary>
    /// The reliability tests' node settings, with a lease far longer than any wait here (a delivery sent again within
    /// the test was released, not left to expire) and, on PostgreSQL, a node dead after 2 missed 1 s heartbeats. On
    /// SQLite the heartbeat keeps its defaults (dead after 15 s), so a quick redelivery there is the release at start.
    /// </summary>
    private static KeyValuePair<string, string>[] Settings(Store store) =>
    [
        .. DeliveryCrashTests.NodeSettings,
        new("Webhooks:ClaimLease", Lease),
        .. store == Store.Postgres
            ? new KeyValuePair<string, string>[] { new("Cluster:HeartbeatInterval", "00:00:01"), new("Cluster:DeadAfterMissedHeartbeats", "2") }
            : [],
    ];

    /// <summary>Every request to the test's endpoints waits at the receiver until the returned gate opens.</summary>
    private static TaskCompletionSource HoldAttempts(TestReceiver receiver)
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        for (var i = 0; i < Endpoints; i++)
        {
            receiver.On($"/endpoint-{i}", _ => new Reply { Gate = gate.Task });
        }
        return gate;
    }

    /// <summary>Starts a node and finds its id: the row its first heartbeat adds to <c>cluster_nodes</c>.</summary>
    private static async Task<(GymwireProcess Node, Guid Id)> StartAsync(GymwireFixture fx)
    {
        var known = (await fx.WithDbAsync(db => db.ClusterNodes.Select(n => n.Id).ToListAsync())).ToHashSet();
        var node = await GymwireProcess.StartAsync(fx.Store, fx.ConnectionString, Settings(fx.Store));
        try
        {
            var id = Guid.Empty;
            await Eventually.TrueAsync(async () =>
                (id = (await fx.WithDbAsync(db => db.ClusterNodes.Select(n => n.Id).ToListAsync())).FirstOrDefault(i => !known.Contains(i))) != Guid.Empty,
                TimeSpan.FromSeconds(10), "the new node's heartbeat");
            return (node, id);
        }
        catch
        {
            await node.DisposeAsync();
            throw;
        }
    }

    /// <summary>Deliveries the node claims and whose lease has not ended (the processes run on real time).</summary>
    private static Task<int> HeldByAsync(GymwireFixture fx, Guid node)
    {
        var now = DateTime.UtcNow;
        return fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.ClaimedBy == node && d.LockedUntil > now));
    }

    /// <summary>
    /// Every delivery recorded as delivered (a 2xx answered and recorded: the receiver also counts requests that the
    /// killed node sent and never heard back from).
    /// </summary>
    private static async Task AssertAllDeliveredAsync(GymwireFixture fx, Guid gymId, TimeSpan within)
    {
        await Eventually.TrueAsync(async () => await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.GymId == gymId && d.Status != "delivered")) == 0,
            within, "every delivery recorded as delivered");
        // A recorded delivery lets its claim go.
        Assert.Equal(0, await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.GymId == gymId && (d.ClaimedBy != null || d.LockedUntil != null))));
    }

    [Fact]
    public async Task A_node_killed_mid_burst_and_restarted_sends_its_in_flight_deliveries_within_seconds_not_at_the_lease_end()
    {
        const int events = 80;
        await using var receiver = await TestReceiver.StartAsync();
        var gate = HoldAttempts(receiver);
        var (node, id) = await StartAsync(fx);
        TestGym gym;
        int held;
        try
        {
            (gym, _) = await DeliveryCrashTests.SubscribeAsync(fx, receiver, node, Endpoints);
            await DeliveryCrashTests.IngestAsync(fx, gym.GymId, events);
            // Its claims are recorded under its id while their attempts wait at the receiver.
            await Eventually.TrueAsync(async () => receiver.Requests.Count > 0 && await HeldByAsync(fx, id) > 0, TimeSpan.FromSeconds(30), "claims held by the node");
            held = await HeldByAsync(fx, id);
            await node.KillAsync();
        }
        finally
        {
            await node.DisposeAsync();
        }
        gate.SetResult();

        await using var restarted = await GymwireProcess.StartAsync(fx.Store, fx.ConnectionString, Settings(fx.Store));
        var started = Stopwatch.StartNew();
        await AssertAllDeliveredAsync(fx, gym.GymId, TimeSpan.FromSeconds(15));
        var delivered = started.Elapsed;
        var (unique, total) = DeliveryCrashTests.Count(receiver);
        Assert.Equal(events * Endpoints, unique);
        Assert.True(total - unique <= MaxInFlight, $"{total - unique} duplicates, more than the killed node had in flight");
        // Released by the restarted process at start (SQLite), or by its heartbeat once the old node is dead (PostgreSQL).
        Assert.Contains(fx.Store == Store.Sqlite ? "left by a previous process" : id.ToString(), restarted.Output, StringComparison.Ordinal);
        output.WriteLine($"{fx.Store}: killed with {held} claims; all delivered {delivered.TotalSeconds:0.0} s after the restart (lease {Lease}); {total - unique} duplicates");
    }
}
