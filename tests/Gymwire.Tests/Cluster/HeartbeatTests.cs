using System.Text.Json;
using Gymwire.Features.Cluster;
using Gymwire.Infrastructure;
using Gymwire.Tests.Foundation;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gymwire.Tests.Cluster;

/// <summary>A single node (SQLite or PostgreSQL) records its heartbeat and <c>gymwire cluster status</c> lists it.</summary>
public abstract class HeartbeatTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : HeartbeatTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : HeartbeatTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task The_node_records_its_heartbeat_and_cluster_status_lists_it()
    {
        var id = fx.Services.GetRequiredService<ClusterHeartbeat>().NodeId;
        var options = fx.Services.GetRequiredService<IOptions<ClusterOptions>>().Value;
        await Eventually.TrueAsync(() => fx.WithDbAsync(db => db.ClusterNodes.AnyAsync(n => n.Id == id)), what: "the first heartbeat");
        // The heartbeat may not be waiting on the clock yet when it is advanced, so advance until the next one comes.
        var first = fx.Clock.GetUtcNow().UtcDateTime;
        await Eventually.TrueAsync(async () =>
        {
            fx.Clock.Advance(options.HeartbeatInterval);
            return await fx.WithDbAsync(db => db.ClusterNodes.AnyAsync(n => n.Id == id && n.LastSeenAt > first));
        }, what: "the next heartbeat");
        var now = await fx.WithDbAsync(db => db.ClusterNodes.Where(n => n.Id == id).Select(n => n.LastSeenAt).SingleAsync());
        var node = Assert.Single(await fx.WithDbAsync(db => ClusterHeartbeat.StatusAsync(db, now, options, CancellationToken.None)), n => n.Id == id);
        Assert.Equal("live", node.State);
        Assert.Equal(ClusterHeartbeat.CurrentVersion, node.Version);
        Assert.Equal(Environment.MachineName, node.Host);
        Assert.Equal(Environment.ProcessId, node.ProcessId);

        var (code, stdout, stderr) = await Cli.RunAsync(fx, "cluster", "status");
        Assert.True(code == 0, stderr);
        var printed = JsonDocument.Parse(stdout).RootElement;
        // Two nodes on one machine are told apart by their process ids.
        var listed = Assert.Single(printed.GetProperty("nodes").EnumerateArray(), n => n.GetProperty("id").GetGuid() == id);
        Assert.Equal(Environment.ProcessId, listed.GetProperty("process_id").GetInt32());
        // The command line is not a node: running it adds no heartbeat.
        Assert.Equal(1, await fx.WithDbAsync(db => db.ClusterNodes.CountAsync()));
    }

    [Fact]
    public void SQLite_always_counts_limits_in_process()
    {
        var store = fx.Services.GetRequiredService<IRateLimitStore>();
        if (fx.Store == Store.Sqlite)
        {
            Assert.IsType<InMemoryRateLimitStore>(store);
        }
        else
        {
            Assert.IsType<PostgresRateLimitStore>(store);
        }
    }
}
