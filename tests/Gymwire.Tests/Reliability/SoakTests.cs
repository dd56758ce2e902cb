using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Xunit.Abstractions;

namespace Gymwire.Tests.Reliability;

/// <summary>
/// R8 soak: a real gymwire process under steady load (actions written, their events delivered to a local
/// receiver) while its memory (RSS), open file descriptors, delivery queue depth and database size are sampled.
/// They must stay flat: the last third of the run may not grow past the middle third by more than a margin.
/// The load is half of what the process sustains: a short closed-loop burst of create_lead first measures the
/// sustainable rate, then the soak runs at half of it (GYMWIRE_SOAK_RATE overrides). The test command runs a
/// 20-second version, its rate capped at 20/s so a shared CI machine stays well inside it; scripts/soak runs an
/// hour (GYMWIRE_SOAK_SECONDS=3600) at the measured half, uncapped.
/// </summary>
public abstract class SoakTests(GymwireFixture fx, ITestOutputHelper output)
{
    public sealed class Sqlite(PassiveSqlite f, ITestOutputHelper o) : SoakTests(f, o), IClassFixture<PassiveSqlite>;
    public sealed class Postgres(PassivePostgres f, ITestOutputHelper o) : SoakTests(f, o), IClassFixture<PassivePostgres>;

    private static int Seconds => int.TryParse(Environment.GetEnvironmentVariable("GYMWIRE_SOAK_SECONDS"), out var s) && s > 0 ? s : 20;
    private static int? FixedRate => int.TryParse(Environment.GetEnvironmentVariable("GYMWIRE_SOAK_RATE"), out var r) && r > 0 ? r : null;
    private static bool Long => Environment.GetEnvironmentVariable("GYMWIRE_SOAK_SECONDS") is not null;
    private const int CiRateCap = 20;

    private sealed record Sample(double At, long RssKb, int Fds, int Queue, long DatabaseBytes);

    [Fact]
    public async Task Memory_handles_queue_depth_and_database_size_stay_flat_under_steady_load()
    {
        await using var receiver = await TestReceiver.StartAsync();
        await using var node = await GymwireProcess.StartAsync(fx.Store, fx.ConnectionString, DeliveryCrashTests.NodeSettings);
        var (gym, _) = await DeliveryCrashTests.SubscribeAsync(fx, receiver, node, 2);
        var key = (await (await node.Client((await (await node.Client().PostJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = gym.OwnerPassword })).JsonAsync()).GetProperty("token").GetString())
            .PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "read", "write" } })).JsonAsync()).GetProperty("key").GetString();

        using var client = node.Client(key);
        var sustainable = await MeasureSustainableRateAsync(client, TimeSpan.FromSeconds(Long ? 15 : 4));
        var rate = FixedRate ?? Math.Max(1, Long ? sustainable / 2 : Math.Min(sustainable / 2, CiRateCap));
        output.WriteLine($"{fx.Store}: sustainable create_lead rate {sustainable}/s (closed loop, 8 writers); soaking at {rate}/s");
        // The measurement's own events are delivered before the soak starts, so its backlog is not counted as growth.
        await Eventually.TrueAsync(async () => await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.GymId == gym.GymId && d.Status != "delivered")) == 0,
            TimeSpan.FromSeconds(180), "the measurement's deliveries drain");
        var calibrationDeliveries = receiver.Requests.Count;

        var samples = new List<Sample>();
        var clock = Stopwatch.StartNew();
        var sent = 0;
        var nextSample = 0.0;
        // Steady rate: one second's worth of actions at the start of each second. Counting the seconds (rather than
        // reading the clock's second) keeps a timer that fires a little early from sending a second batch in one second.
        for (var second = 0; second < Seconds && clock.Elapsed < TimeSpan.FromSeconds(Seconds * 2 + 60); second++)
        {
            var wait = TimeSpan.FromSeconds(second) - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }
            var writes = Enumerable.Range(0, rate).Select(i => client.PostAsJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = $"Soak {second}-{i}" }));
            foreach (var response in await Task.WhenAll(writes))
            {
                Assert.Equal(HttpStatusCode.Created, response.StatusCode);
                sent++;
            }
            if (clock.Elapsed.TotalSeconds >= nextSample)
            {
                samples.Add(await SampleAsync(node, gym.GymId, clock.Elapsed.TotalSeconds));
                nextSample += Math.Max(1, Seconds / 60.0);
            }
        }
        await Eventually.TrueAsync(() => Task.FromResult(receiver.Requests.Count - calibrationDeliveries >= sent * 2), TimeSpan.FromSeconds(120), "the queue drains after the load stops");
        await Eventually.TrueAsync(async () => await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.GymId == gym.GymId && d.Status != "delivered")) == 0,
            TimeSpan.FromSeconds(60), "every delivery recorded");
        samples.Add(await SampleAsync(node, gym.GymId, clock.Elapsed.TotalSeconds));

        var report = string.Join("\n", samples.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.At,7:F1}s rss={s.RssKb} kB fds={s.Fds} queue={s.Queue} db={s.DatabaseBytes} B")));
        var summary = $"{fx.Store}: sustainable {sustainable}/s, soaked at {rate}/s for {Seconds}s: {sent} actions, {receiver.Requests.Count - calibrationDeliveries} deliveries";
        output.WriteLine($"{summary}\n{report}");
        await File.WriteAllTextAsync(Path.Combine(AppContext.BaseDirectory, $"soak-{fx.Store}.txt"), $"{summary}\n{report}\n");

        var third = Math.Max(1, samples.Count / 3);
        var middle = samples.Skip(third).Take(third).ToList();
        // The final sample (after the drain) is not part of the steady state.
        var last = samples.Take(samples.Count - 1).Skip(samples.Count - 1 - third).ToList();
        Assert.True(last.Max(s => s.RssKb) <= middle.Max(s => s.RssKb) * 1.5 + 20_000, $"memory grew: {report}");
        Assert.True(last.Max(s => s.Fds) <= middle.Max(s => s.Fds) + 50, $"file descriptors grew: {report}");
        Assert.True(last.Max(s => s.Queue) <= Math.Max(middle.Max(s => s.Queue) * 2, rate * 4), $"the delivery queue grew: {report}");
        // The database grows by the leads written (and their events, deliveries and attempts, kept for the retention
        // period), so "flat" means its growth does not speed up: the last third may add at most twice what the middle
        // third added, plus 16 MiB for SQLite's WAL and PostgreSQL's file extension steps.
        var middleGrowth = middle[^1].DatabaseBytes - middle[0].DatabaseBytes;
        var lastGrowth = last[^1].DatabaseBytes - last[0].DatabaseBytes;
        Assert.True(lastGrowth <= Math.Max(0, middleGrowth) * 2 + (16 << 20), $"database growth sped up ({middleGrowth} B then {lastGrowth} B): {report}");
        Assert.Equal(0, samples[^1].Queue);
    }

    /// <summary>
    /// create_lead calls completed per second by 8 writers that each send the next call as soon as the last one is
    /// answered (deliveries of the resulting events run meanwhile, as they do in the soak).
    /// </summary>
    private static async Task<int> MeasureSustainableRateAsync(HttpClient client, TimeSpan duration)
    {
        var clock = Stopwatch.StartNew();
        var completed = 0;
        async Task WriterAsync(int writer)
        {
            for (var i = 0; clock.Elapsed < duration && i < 100_000; i++)
            {
                using var response = await client.PostAsJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = $"Measure {writer}-{i}" });
                Assert.Equal(HttpStatusCode.Created, response.StatusCode);
                Interlocked.Increment(ref completed);
            }
        }
        await Task.WhenAll(Enumerable.Range(0, 8).Select(WriterAsync));
        return (int)(completed / clock.Elapsed.TotalSeconds);
    }

    private async Task<Sample> SampleAsync(GymwireProcess node, Guid gymId, double at)
    {
        var status = await File.ReadAllLinesAsync($"/proc/{node.ProcessId}/status");
        var rss = long.Parse(status.First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        var fds = Directory.GetFiles($"/proc/{node.ProcessId}/fd").Length;
        var queue = await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.GymId == gymId && d.Status != "delivered"));
        long size;
        if (fx.Store == Store.Sqlite)
        {
            var file = new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(fx.ConnectionString).DataSource;
            size = new FileInfo(file).Length + (File.Exists(file + "-wal") ? new FileInfo(file + "-wal").Length : 0);
        }
        else
        {
            size = (await fx.WithDbAsync(db => db.Database.SqlQueryRaw<long>("SELECT pg_database_size(current_database()) AS \"Value\"").ToListAsync()))[0];
        }
        return new Sample(at, rss, fds, queue, size);
    }
}
