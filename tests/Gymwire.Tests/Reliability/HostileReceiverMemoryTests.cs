using System.Diagnostics;
using System.Globalization;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Xunit.Abstractions;

namespace Gymwire.Tests.Reliability;

/// <summary>
/// R3 "memory stays bounded", on the real gymwire process: while endpoints stream 1 GiB bodies, trickle one
/// byte a second and never answer (retried quickly, so they keep every one of their slots busy), the process's
/// resident memory, sampled from /proc, stays within a fixed bound over its own idle baseline.
/// </summary>
public abstract class HostileReceiverMemoryTests(GymwireFixture fx, ITestOutputHelper output)
{
    public sealed class Sqlite(PassiveSqlite f, ITestOutputHelper o) : HostileReceiverMemoryTests(f, o), IClassFixture<PassiveSqlite>;
    public sealed class Postgres(PassivePostgres f, ITestOutputHelper o) : HostileReceiverMemoryTests(f, o), IClassFixture<PassivePostgres>;

    /// <summary>Growth allowed over the idle process. One 1 GiB body read whole would be ~7× this.</summary>
    internal const long GrowthBoundKb = 150 * 1024;

    /// <summary>And an absolute ceiling for the whole process (it idles at about 170 MiB).</summary>
    internal const long PeakBoundKb = 512 * 1024;

    [Fact]
    public async Task Resident_memory_stays_bounded_while_hostile_endpoints_stream_trickle_and_hang()
    {
        const int events = 150;
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/endpoint-0", new Reply { StreamBytes = 1L << 30 });
        receiver.On("/endpoint-1", new Reply { Trickle = true });
        receiver.On("/endpoint-2", new Reply { Hang = true });
        // Healthy: /endpoint-3 answers 200.
        IEnumerable<KeyValuePair<string, string>> settings = [.. DeliveryCrashTests.NodeSettings, new("Webhooks:Timeout", "00:00:02")];
        await using var node = await GymwireProcess.StartAsync(fx.Store, fx.ConnectionString, settings);
        var (gym, _) = await DeliveryCrashTests.SubscribeAsync(fx, receiver, node, 4);
        var baseline = RssKb(node);

        await DeliveryCrashTests.IngestAsync(fx, gym.GymId, events);
        var peak = baseline;
        var samples = 0;
        var clock = Stopwatch.StartNew();
        // Sample for at least 15 s and until the healthy endpoint has everything and the 1 GiB endpoint has been cut
        // off many times over; 120 s at most.
        while (clock.Elapsed < TimeSpan.FromSeconds(120))
        {
            Assert.False(node.HasExited, $"gymwire exited: {node.Output}");
            peak = Math.Max(peak, RssKb(node));
            samples++;
            if (clock.Elapsed > TimeSpan.FromSeconds(15) && receiver.At("/endpoint-3").Count >= events && receiver.StreamsEnded >= 32)
            {
                break;
            }
            await Task.Delay(250);
        }
        var truncated = await fx.WithDbAsync(db => db.WebhookAttempts.CountAsync(a => a.GymId == gym.GymId && a.ResponseBodyTruncated));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{fx.Store}: baseline {baseline} kB, peak {peak} kB over {samples} samples in {clock.Elapsed.TotalSeconds:F1}s; {receiver.StreamsEnded} 1 GiB streams cut ({truncated} truncated attempts, {receiver.BytesStreamed / (1024 * 1024)} MiB written by the receiver), {receiver.At("/endpoint-1").Count} trickles, {receiver.At("/endpoint-2").Count} hangs, {receiver.At("/endpoint-3").Count} healthy"));

        Assert.True(receiver.At("/endpoint-3").Count >= events, "the healthy endpoint did not get every event");
        Assert.True(receiver.StreamsEnded >= 32, $"only {receiver.StreamsEnded} 1 GiB streams were started and cut");
        Assert.True(receiver.At("/endpoint-1").Count > 0 && receiver.At("/endpoint-2").Count > 0, "the trickle and hang endpoints were not exercised");
        Assert.True(peak - baseline <= GrowthBoundKb, $"resident memory grew {(peak - baseline) / 1024} MiB (baseline {baseline / 1024} MiB, peak {peak / 1024} MiB), bound {GrowthBoundKb / 1024} MiB");
        Assert.True(peak <= PeakBoundKb, $"resident memory peaked at {peak / 1024} MiB, bound {PeakBoundKb / 1024} MiB");
    }

    internal static long RssKb(GymwireProcess node)
    {
        var status = File.ReadAllLines($"/proc/{node.ProcessId}/status");
        return long.Parse(status.First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }
}
