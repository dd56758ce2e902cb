using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime;
using System.Runtime.CompilerServices;
using System.Security.Claims;
using System.Text;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Features.ApiKeys;
using Gymwire.Features.Events;
using Gymwire.Features.Gyms;
using Gymwire.Features.Webhooks;
using Gymwire.Features.Zapier;
using Gymwire.Infrastructure;
using Gymwire.Infrastructure.Auth;
using Gymwire.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Bench;

internal sealed record BenchGym(Guid GymId, string Key);

/// <summary>Every figure on one store: Gymwire in-process on Kestrel over loopback, its ceilings beside it in the same run.</summary>
internal sealed partial class StoreBench(string store, BenchOptions o, Receivers receivers, Receivers hostile, Report report)
{
    private const double P99Bound = 5.0;
    private const int Subscriptions = 100;

    /// <summary>M4 warms up with at least this many whole runs, then until one is within 10 % of the one before it (at most <see cref="MaxWarmupRuns"/>).</summary>
    private int MinWarmupRuns => o.Quick ? 2 : 5;
    private int MaxWarmupRuns => o.Quick ? 2 : 8;
    // Gymwire's default, given to the server explicitly; the raw POST ceiling runs at the same concurrency.
    private static readonly int DeliveryConcurrency = new WebhookOptions().MaxConcurrentDeliveries;
    private const string LeadBody = """{"first_name":"Bench","last_name":"Lead","email":"lead@example.com","source":"bench"}""";

    private WebApplication _app = null!;
    private string _connectionString = "";
    // One for the whole run: a restarted server (the metrics' cost) must read the key ring, and the webhooks' secrets, again.
    private readonly string _dataProtectionKey = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
    private string _base = "";
    /// <summary>M1's best connection count, when M1 ran: the metrics' cost polls at it.</summary>
    private int? _m1Connections;
    private byte[] _triggerJson = [];
    private ClaimsPrincipal _m1Principal = new();
    private Guid _actionsGym;
    private string? _sqliteDirectory;
    private int _pad;
    private double _deliveryBytes;
    /// <summary>Subscriptions whose deliveries are slow on purpose: a run does not wait for them to settle.</summary>
    private readonly List<Guid> _unsettled = [];
    private readonly CommandCounter _commands = new();

    public async Task RunAsync()
    {
        _connectionString = await CreateDatabaseAsync();
        _app = await StartAsync(metrics: false);
        try
        {
            var m1 = await CreateGymAsync("m1");
            var small = await CreateGymAsync("small");
            var large = await CreateGymAsync("large");
            var actions = await CreateGymAsync("actions");
            var hooks = await CreateGymAsync("hooks");
            _actionsGym = actions.GymId;
            var seed = Stopwatch.StartNew();
            var seeded = 0;
            if (o.Includes(BenchPart.Polling) || o.Includes(BenchPart.Metrics))
            {
                await SeedMembersAsync(m1.GymId, o.M1Members, 1);
                seeded += o.M1Members;
            }
            if (o.Includes(BenchPart.Polling))
            {
                await SeedMembersAsync(small.GymId, o.ScaleSmall, 2);
                await SeedMembersAsync(large.GymId, o.ScaleLarge, 3);
                seeded += o.ScaleSmall + o.ScaleLarge;
            }
            Console.WriteLine($"seeded {seeded:N0} members in {seed.Elapsed.TotalSeconds:0.0} s");

            if (o.Includes(BenchPart.Polling))
            {
                await PollingAsync(m1, small, large);
            }
            if (o.Includes(BenchPart.Actions))
            {
                await ActionsAsync(actions);
            }
            if (o.Includes(BenchPart.Delivery) || o.Includes(BenchPart.M4) || o.Includes(BenchPart.M5))
            {
                await DeliveryAsync(hooks);
            }
            if (o.Includes(BenchPart.Dashboard))
            {
                await DashboardAsync();
            }
            if (o.Includes(BenchPart.Metrics))
            {
                await MetricsCostAsync(m1, hooks, await CreateGymAsync("metrics"));
            }
        }
        finally
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _app.StopAsync(stop.Token);
            await _app.DisposeAsync();
            if (_sqliteDirectory is not null)
            {
                Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                Directory.Delete(_sqliteDirectory, recursive: true);
            }
        }
    }

    // ---------------------------------------------------------------- M1, M2, scale

    /// <summary>
    /// M2's figure: <see cref="BenchOptions.PairedRuns"/> pairs of runs of the subject and the open endpoint, back to
    /// back, the order alternating; the median of the pairs' own ratios, and the medians of each side.
    /// </summary>
    /// <summary>
    /// Runs of two polls back to back, <c>PairedRuns</c> times, the order alternating; the ratio is the median of the
    /// pairs' own ratios, so a change in the machine's load between pairs does not move it.
    /// </summary>
    private async Task<(double Ratio, LoadResult First, LoadResult Second)> PollPairsAsync(
        string name, (string Url, string? Script) first, (string Url, string? Script) second, int connections, Func<LoadResult, LoadResult, double> ratio)
    {
        var a = new List<LoadResult>();
        var b = new List<LoadResult>();
        for (var r = 0; r < o.PairedRuns; r++)
        {
            LoadResult x, y;
            if (r % 2 == 0)
            {
                x = await Wrk.RunAsync(first.Url, connections, o.Duration, first.Script);
                y = await Wrk.RunAsync(second.Url, connections, o.Duration, second.Script);
            }
            else
            {
                y = await Wrk.RunAsync(second.Url, connections, o.Duration, second.Script);
                x = await Wrk.RunAsync(first.Url, connections, o.Duration, first.Script);
            }
            Check(x, name);
            Check(y, name);
            Console.WriteLine($"  {name} pair {r + 1}: {Describe(x)}, {Describe(y)} ({ratio(x, y):0.00})");
            a.Add(x);
            b.Add(y);
        }
        return (Stats.Median(a.Zip(b, ratio)), LoadResult.Median(a), LoadResult.Median(b));
    }


    private async Task PollingAsync(BenchGym m1, BenchGym small, BenchGym large)
    {
        using (var client = Client(m1.Key))
        {
            _triggerJson = await client.GetByteArrayAsync("/api/zapier/triggers?type=new_member");
        }
        if (JsonDocument.Parse(_triggerJson).RootElement.GetArrayLength() != ZapierTriggers.Limit)
        {
            throw new InvalidOperationException("the trigger did not return a full page");
        }
        _m1Principal = new ClaimsPrincipal(new ClaimsIdentity([new Claim(GymwireClaims.GymId, m1.GymId.ToString())], "bench"));

        var subjectUrl = $"{_base}/api/zapier/triggers?type=new_member";
        var subjectScript = Wrk.Script("GET", null, new Dictionary<string, string> { ["Authorization"] = "Bearer " + m1.Key });
        var ceilingUrl = $"{_base}/bench/ceiling";
        var openUrl = $"{_base}/bench/triggers-open?type=new_member";
        // Warm-up: JIT, pools, caches.
        foreach (var (url, script) in new[] { (ceilingUrl, (string?)null), (subjectUrl, subjectScript), (openUrl, null) })
        {
            await Wrk.RunAsync(url, 8, TimeSpan.FromSeconds(1), script);
        }

        await HoldForProfilingAsync(subjectUrl, m1.Key, openUrl, "BENCH_M2_HOLD", "gymwire-m2-hold.env");

        // Interleaved, so that a change in the machine's load hits all three alike.
        var runs = new Dictionary<string, List<SweepPoint>> { ["ceiling"] = [], ["subject"] = [], ["open"] = [] };
        // This process's CPU time per request, summed over every run of each (Gymwire and the idle harness; wrk is a
        // process of its own), and its allocated bytes per request, run by run: steadier than throughput on a shared machine.
        var cost = new Dictionary<string, (TimeSpan Cpu, long Requests)>();
        var allocated = new Dictionary<string, Allocations> { ["ceiling"] = new(), ["subject"] = new(), ["open"] = new() };
        async Task<LoadResult> MeasuredAsync(string name, string url, int c, string? script)
        {
            var (cpu, bytes) = (Process.GetCurrentProcess().TotalProcessorTime, Allocations.Now());
            var result = await Wrk.RunAsync(url, c, o.Duration, script);
            var sum = cost.GetValueOrDefault(name);
            cost[name] = (sum.Cpu + Process.GetCurrentProcess().TotalProcessorTime - cpu, sum.Requests + result.Requests);
            allocated[name].Add(Allocations.Now() - bytes, result.Requests);
            return result;
        }
        foreach (var c in o.Connections)
        {
            var raw = new Dictionary<string, List<LoadResult>> { ["ceiling"] = [], ["subject"] = [], ["open"] = [] };
            for (var r = 0; r < o.Runs; r++)
            {
                raw["ceiling"].Add(await MeasuredAsync("ceiling", ceilingUrl, c, null));
                raw["subject"].Add(await MeasuredAsync("subject", subjectUrl, c, subjectScript));
                raw["open"].Add(await MeasuredAsync("open", openUrl, c, null));
            }
            foreach (var (name, list) in raw)
            {
                var point = new SweepPoint(c, LoadResult.Median(list));
                runs[name].Add(point);
                Console.WriteLine($"  M1/M2 {name,-8} c={c,-3} {Describe(point.Result)}");
                Check(point.Result, name);
            }
        }
        var before = _commands.Count;
        var counted = await Wrk.RunAsync(subjectUrl, 4, TimeSpan.FromSeconds(1), subjectScript);
        var perPoll = (_commands.Count - before) / (double)counted.Requests;
        var ceiling = Best(runs["ceiling"]);
        var subject = Best(runs["subject"]);
        _m1Connections = subject.Connections;
        // M2 compares like with like: the same handler without auth and limiter, at the subject's connection count.
        var open = runs["open"].First(p => p.Connections == subject.Connections);
        report.Add(store, "M1 polling (100k members)", Describe(subject), Describe(ceiling), subject.Result.Rps / ceiling.Result.Rps, 0.5,
            "req/s at p99 < 5 ms, best of a connection sweep " + string.Join('/', o.Connections) + (subject.Result.P99Ms < P99Bound ? "" : "; p99 never under 5 ms: lowest-p99 point shown") + $"; {perPoll:0.0} SQL commands per poll");
        // The sweep picks the subject's best point of three medians and compares it with one median of the open
        // endpoint: a change in the machine's load between them moves the ratio. Pairs run back to back, as for M6.
        var (m2, m2Subject, m2Open) = await PollPairsAsync("M2", (subjectUrl, subjectScript), (openUrl, null), subject.Connections, (x, y) => x.Rps / y.Rps);
        report.Add(store, "M2 auth + rate limiter on/off", Describe(m2Subject, subject.Connections), Describe(m2Open, subject.Connections), m2, 0.95,
            $"ceiling: the same trigger query with no authentication and no limiter, at M1's connection count; ratio: the median of the pairs' own ratios ({o.PairedRuns} pairs, " +
            $"each back to back, the order alternating; absolute figures the medians of each side; the sweep's medians gave {subject.Result.Rps / open.Result.Rps:0.00})");
        foreach (var (name, list) in runs)
        {
            report.Detail(store, $"M1/M2 sweep, {name}", string.Join("; ", list.Select(p => $"c={p.Connections}: {Describe(p.Result)}")));
        }
        string PerRequest(string name) => $"{name} {cost[name].Cpu.TotalMicroseconds / cost[name].Requests:0.0} µs CPU, {allocated[name].Median:N0} B allocated";
        var perRequest = $"{PerRequest("subject")}; {PerRequest("open")}; {PerRequest("ceiling")} (CPU over every run of the sweep, allocation the median of its runs; Gymwire's process, wrk not counted)";
        Console.WriteLine($"  M1/M2 per request: {perRequest}");
        report.Detail(store, "M1/M2 per request", perRequest);

        // Scale: the same poll on a gym of 10k members and one of 1M, at the subject's best connection count.
        var smallScript = Wrk.Script("GET", null, new Dictionary<string, string> { ["Authorization"] = "Bearer " + small.Key });
        var largeScript = Wrk.Script("GET", null, new Dictionary<string, string> { ["Authorization"] = "Bearer " + large.Key });
        // Each gym's first polls fill its cached answer: not measured.
        await Wrk.RunAsync(subjectUrl, subject.Connections, TimeSpan.FromSeconds(1), largeScript);
        await Wrk.RunAsync(subjectUrl, subject.Connections, TimeSpan.FromSeconds(1), smallScript);
        // A p99 of a couple of milliseconds moves by half of one between runs seconds apart: pairs, as for M2.
        var (scale, l, s) = await PollPairsAsync("Scale", (subjectUrl, largeScript), (subjectUrl, smallScript), subject.Connections, (x, y) => x.P99Ms / y.P99Ms);
        report.Add(store, $"Scale: M1 p99 at {Count(o.ScaleLarge)} vs {Count(o.ScaleSmall)} members", Describe(l, subject.Connections), Describe(s, subject.Connections),
            scale, 1.2, $"ratio of p99 latencies (lower is better; target <= 1.2): the median of {o.PairedRuns} pairs' own ratios, each back to back, the order alternating " +
            $"(absolute figures the medians of each side; their p99s gave {l.P99Ms / s.P99Ms:0.00}, p50s {l.P50Ms / s.P50Ms:0.00})", lowerIsBetter: true);
    }

    /// <summary>
    /// BENCH_M2_HOLD=SECONDS: after M1/M2's warm-up, writes the process id, the URLs and the key to gymwire-m2-hold.env in
    /// the temporary directory and keeps the server up for that long (or until that file is deleted), so that a profiler
    /// can be attached under load driven from outside.
    /// </summary>
    private static async Task HoldForProfilingAsync(string subjectUrl, string key, string openUrl, string variable, string fileName)
    {
        if (!int.TryParse(Environment.GetEnvironmentVariable(variable), out var seconds) || seconds <= 0)
        {
            return;
        }
        var file = Path.Combine(Path.GetTempPath(), fileName);
        await File.WriteAllTextAsync(file, $"PID={Environment.ProcessId}\nSUBJECT={subjectUrl}\nKEY={key}\nOPEN={openUrl}\n");
        Console.WriteLine($"  {variable}: holding for {seconds} s (delete {file} to go on)");
        var until = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < until && File.Exists(file))
        {
            await Task.Delay(1000);
        }
        File.Delete(file);
    }

    private static SweepPoint Best(List<SweepPoint> points) =>
        points.Where(p => p.Result.P99Ms < P99Bound).MaxBy(p => p.Result.Rps) ?? points.MinBy(p => p.Result.P99Ms)!;

    // ---------------------------------------------------------------- M3

    private async Task ActionsAsync(BenchGym actions)
    {
        var json = new Dictionary<string, string> { ["Content-Type"] = "application/json" };
        var subjectScript = Wrk.Script("POST", LeadBody, new Dictionary<string, string>(json) { ["Authorization"] = "Bearer " + actions.Key });
        var ceilingScript = Wrk.Script("POST", LeadBody, json);
        var subjectUrl = $"{_base}/api/zapier/actions?type=create_lead";
        var ceilingUrl = $"{_base}/bench/raw-lead";
        const int connections = 16;
        await HoldForProfilingAsync(subjectUrl, actions.Key, ceilingUrl, "BENCH_M3_HOLD", "gymwire-m3-hold.env");
        await Wrk.RunAsync(ceilingUrl, connections, o.ActionsWarmUp, ceilingScript);
        await Wrk.RunAsync(subjectUrl, connections, o.ActionsWarmUp, subjectScript);
        var (before, transactionsBefore) = (_commands.Count, _commands.Transactions);
        _commands.StartAttributing();
        var counted = await Wrk.RunAsync(subjectUrl, connections, TimeSpan.FromSeconds(1), subjectScript);
        // The dispatcher's pass for the last requests may still be running: let it finish, so its commands are counted.
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        var byKind = _commands.StopAttributing();
        var perWrite = (_commands.Count - before) / (double)counted.Requests;
        var transactionsPerWrite = (_commands.Transactions - transactionsBefore) / (double)counted.Requests;
        var commandKinds = string.Join(", ", byKind.OrderByDescending(k => k.Value).Select(k => $"{k.Key} {k.Value / (double)counted.Requests:0.00}"));
        Console.WriteLine($"  M3 commands per create_lead: {perWrite:0.00} ({commandKinds}); {transactionsPerWrite:0.00} explicit transactions");
        var ceilingRuns = new List<LoadResult>();
        var subjectRuns = new List<LoadResult>();
        // This process's CPU time and allocated bytes per request, as for M1/M2 (Gymwire, its dispatcher and delivery
        // worker; wrk not counted), and on PostgreSQL its server processes' CPU time.
        var cost = new Dictionary<string, (TimeSpan Cpu, TimeSpan PgCpu, long Requests)>();
        var allocated = new Dictionary<string, Allocations> { ["ceiling"] = new(), ["create_lead"] = new() };
        async Task<LoadResult> MeasuredAsync(string name, string url, string script)
        {
            var (cpu, bytes) = (Process.GetCurrentProcess().TotalProcessorTime, Allocations.Now());
            var pgCpu = store == "postgres" ? PostgresCpu.Total() : TimeSpan.Zero;
            using var types = AllocationTypes.Enabled ? new AllocationTypes() : null;
            var result = await Wrk.RunAsync(url, connections, o.Duration, script);
            if (types is not null)
            {
                Console.WriteLine($"  M3 {name}, allocated by type:{Environment.NewLine}{types.Top(30, Math.Max(1, result.Requests), "request")}");
            }
            var sum = cost.GetValueOrDefault(name);
            cost[name] = (sum.Cpu + Process.GetCurrentProcess().TotalProcessorTime - cpu,
                sum.PgCpu + (store == "postgres" ? PostgresCpu.Total() - pgCpu : TimeSpan.Zero), sum.Requests + result.Requests);
            allocated[name].Add(Allocations.Now() - bytes, result.Requests);
            return result;
        }
        // Pairs back to back, the order alternating, as for M2: the machine's load moves between runs.
        for (var r = 0; r < o.PairedRuns; r++)
        {
            if (r % 2 == 0)
            {
                ceilingRuns.Add(await MeasuredAsync("ceiling", ceilingUrl, ceilingScript));
                subjectRuns.Add(await MeasuredAsync("create_lead", subjectUrl, subjectScript));
            }
            else
            {
                subjectRuns.Add(await MeasuredAsync("create_lead", subjectUrl, subjectScript));
                ceilingRuns.Add(await MeasuredAsync("ceiling", ceilingUrl, ceilingScript));
            }
        }
        var ratio = Stats.Median(subjectRuns.Zip(ceilingRuns, (s, c) => s.Rps / c.Rps));
        if (PgStatements.Enabled && store == "postgres")
        {
            // One more run of each on its own, so that their statements do not mix.
            foreach (var (name, url, script) in new[] { ("create_lead", subjectUrl, subjectScript), ("raw insert", ceilingUrl, ceilingScript) })
            {
                var statements = await PgStatements.StartAsync(_app.Services, store);
                var run = await Wrk.RunAsync(url, connections, o.Duration, script);
                await Task.Delay(TimeSpan.FromMilliseconds(500));
                await statements.PrintAsync($"a {name} run", (int)run.Requests, name);
            }
        }
        string PerRequest(string name) => $"{name} {cost[name].Cpu.TotalMicroseconds / cost[name].Requests:0.0} µs CPU"
            + (store == "postgres" ? $" (PostgreSQL's processes {cost[name].PgCpu.TotalMicroseconds / cost[name].Requests:0.0} µs)" : "")
            + $", {allocated[name].Median:N0} B allocated";
        var perRequest = $"{PerRequest("create_lead")}; {PerRequest("ceiling")} (CPU over every measured run, allocation the median of the runs; Gymwire's process{(store == "postgres" ? " and PostgreSQL's" : "")}, wrk not counted)";
        Console.WriteLine($"  M3 per request: {perRequest}");
        report.Detail(store, "M3 per request", $"{perRequest}; SQL commands per create_lead {perWrite:0.00} ({commandKinds}), {transactionsPerWrite:0.00} explicit transactions");
        var ceiling = LoadResult.Median(ceilingRuns);
        var subject = LoadResult.Median(subjectRuns);
        Check(ceiling, "raw insert");
        Check(subject, "create_lead");
        // wrk stops with requests still in flight: let them commit, so the two counts see the same writes.
        await Task.Delay(TimeSpan.FromSeconds(2));
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            var leads = await db.Leads.CountAsync(x => x.GymId == actions.GymId && x.Source == "bench");
            var events = await db.OutboxEvents.CountAsync(x => x.GymId == actions.GymId && x.Type == EventCatalog.LeadCreated);
            Console.WriteLine($"  M3 check: {leads:N0} create_lead rows, {events:N0} lead.created events (equal: {leads == events})");
        }
        report.Add(store, "M3 create_lead (row + outbox event)", Describe(ceiling: false, subject, connections), Describe(ceiling: false, ceiling, connections),
            ratio, 0.4, $"writes/s; ceiling: one raw INSERT of a lead row per request through the same HTTP stack, after {o.ActionsWarmUp.TotalSeconds:0} s of each; " +
            $"ratio: the median of {o.PairedRuns} pairs' own ratios (absolute figures the medians of each side: {subject.Rps / ceiling.Rps:0.00}); {perWrite:0.0} SQL commands per create_lead (dispatcher's included)");
    }

    // ---------------------------------------------------------------- M4, M5, M6, memory

    private async Task DeliveryAsync(BenchGym hooks)
    {
        using var owner = Client(hooks.Key);
        for (var i = 0; i < Subscriptions; i++)
        {
            var created = await owner.PostAsJsonAsync("/api/gym/webhooks", new { url = receivers.Url(i), events = new[] { EventCatalog.LeadCreated } });
            if (!created.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"creating a webhook failed: {(int)created.StatusCode} {await created.Content.ReadAsStringAsync()}");
            }
        }
        _pad = PadFor(hooks.GymId);
        var rawPayload = Encoding.UTF8.GetBytes(WebhookPayloads.Build(Guid.NewGuid(), EventCatalog.LeadCreated, hooks.GymId,
            JsonSerializer.Serialize(Data(null), GymwireJson.Options), DateTime.UtcNow));
        Console.WriteLine($"  delivery payload: {rawPayload.Length} bytes");

        // M4: warm up both with whole runs (JIT tiering in both processes, connection pools, SQLite's WAL) until
        // Gymwire's rate stops climbing, then interleave runs. One warm-up run was not enough: in delivery-only runs the
        // three measured runs still climbed (1.8k, 2.4k, 3.3k/s) while the same runs later in the part gave
        // 3.8-4.6k/s; and three can look flat before the climb (1.45k, 1.63k, 1.62k, then 2.3k, 2.9k, 3.1k/s).
        var perRun = o.EventsPerRun * Subscriptions;
        var warmups = new List<double>();
        while (warmups.Count < MaxWarmupRuns && (warmups.Count < MinWarmupRuns || warmups[^1] > warmups[^2] * 1.1))
        {
            await RawRateAsync(rawPayload, perRun);
            warmups.Add(await GymwireRateAsync(hooks.GymId, o.EventsPerRun));
        }
        var warmupRates = string.Join(", ", warmups.Select(w => $"{w:N0}"));
        Console.WriteLine($"  M4 warm-up runs: {warmupRates} deliveries/s");
        var rawRates = new List<double>();
        var gwRates = new List<double>();
        long peakRss = 0;
        var perDelivery = new List<double>();
        // This process's CPU time and allocated bytes per delivery (Gymwire and the waiting harness; the receivers are a
        // process of their own): steadier than throughput on a shared machine.
        var cpuPerDelivery = new List<double>();
        var bytesPerDelivery = new Allocations();
        var pgCpuPerDelivery = new List<double>();
        var statements = await PgStatements.StartAsync(_app.Services, store);
        for (var r = 0; r < o.Runs; r++)
        {
            rawRates.Add(await RawRateAsync(rawPayload, perRun));
            using var sampler = new RssSampler();
            var before = _commands.Count;
            // Precise: the approximate count can stand still across a whole run.
            var (cpu, bytes) = (Process.GetCurrentProcess().TotalProcessorTime, Allocations.Now());
            var pgCpu = store == "postgres" ? PostgresCpu.Total() : TimeSpan.Zero;
            using var types = AllocationTypes.Enabled ? new AllocationTypes() : null;
            gwRates.Add(await GymwireRateAsync(hooks.GymId, o.EventsPerRun));
            if (store == "postgres")
            {
                pgCpuPerDelivery.Add((PostgresCpu.Total() - pgCpu).TotalMicroseconds / perRun);
            }
            if (types is not null)
            {
                Console.WriteLine($"  M4 run {r + 1}, allocated by type:{Environment.NewLine}{types.Top(40, perRun, "delivery")}");
            }
            cpuPerDelivery.Add((Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMicroseconds / perRun);
            bytesPerDelivery.Add(Allocations.Now() - bytes, perRun);
            perDelivery.Add((_commands.Count - before) / (double)perRun);
            peakRss = Math.Max(peakRss, sampler.Stop());
            Console.WriteLine($"  M4 run {r + 1}: raw {rawRates[^1]:N0}/s, gymwire {gwRates[^1]:N0}/s ({cpuPerDelivery[^1]:0.0} µs CPU{(pgCpuPerDelivery.Count > 0 ? $", PostgreSQL {pgCpuPerDelivery[^1]:0.0} µs" : "")}, {bytesPerDelivery.Last:N0} B allocated per delivery), peak RSS {peakRss / 1048576.0:N0} MiB");
        }
        await statements.PrintAsync("M4's measured runs", o.Runs * perRun, "delivery");
        var raw = Stats.Median(rawRates);
        var gw = Stats.Median(gwRates);
        report.Add(store, "M4 delivery throughput", $"{gw:N0} deliveries/s", $"{raw:N0} POSTs/s", gw / raw, 0.3,
            $"{perRun:N0} deliveries of {rawPayload.Length} B per run ({o.EventsPerRun} events x {Subscriptions} receivers), {DeliveryConcurrency} in flight, after {warmups.Count} warm-up runs ({warmupRates}/s); {Stats.Median(perDelivery):0.0} SQL commands, {Stats.Median(cpuPerDelivery):0.0} µs of the server's CPU{(pgCpuPerDelivery.Count > 0 ? $" (PostgreSQL's processes: {Stats.Median(pgCpuPerDelivery):0.0} µs)" : "")} and {bytesPerDelivery.Median:N0} B allocated per delivery; absolute target 10,000/s: {(gw >= 10_000 ? "met" : "missed")}",
            extraMet: gw >= 10_000);
        report.Add(store, "Memory: peak RSS during M4", $"{peakRss / 1048576.0:N0} MiB", "-", double.NaN, double.NaN,
            "the bench process (Gymwire server in-process, plus the harness), sampled every 100 ms");

        if (!o.Includes(BenchPart.Delivery) && !o.Includes(BenchPart.M5))
        {
            return;
        }

        // M5: latency at half of M4's rate.
        var rate = Math.Max(100, gw / 2);
        var (gwCount, gwP50, gwP99, gwStages) = await GymwireLatencyAsync(hooks.GymId, rate);
        var (rawP50, rawP99) = await RawLatencyAsync(rawPayload, rate);
        var (burstP50, burstP99) = await RawBurstLatencyAsync(hooks.GymId, rate);
        Console.WriteLine($"  M5: gymwire p50 {gwP50:0.0} ms, p99 {gwP99:0.0} ms; raw POSTs one by one p50 {rawP50:0.0} ms, p99 {rawP99:0.0} ms; raw POSTs in bursts of {Subscriptions} p50 {burstP50:0.0} ms, p99 {burstP99:0.0} ms; stages: {gwStages}");
        var met = gwP50 - rawP50 < 5 && gwP99 - rawP99 < 50;
        report.Add(store, "M5 delivery latency (commit to receiver)", $"p50 {gwP50:0.0} ms, p99 {gwP99:0.0} ms", $"raw POST p50 {rawP50:0.0} ms, p99 {rawP99:0.0} ms",
            double.NaN, double.NaN, $"at {rate:N0} deliveries/s (half of M4), {gwCount:N0} deliveries; target p50 < raw + 5 ms, p99 < raw + 50 ms; each event fans out to {Subscriptions} endpoints at once; raw POSTs sent in the same bursts of {Subscriptions} (send to arrival): p50 {burstP50:0.0} ms, p99 {burstP99:0.0} ms; Gymwire's stages: {gwStages}",
            extraMet: met);
        if (!o.Includes(BenchPart.Delivery))
        {
            return;
        }

        // M6: a backlog drains.
        var backlog = await BacklogRateAsync(hooks.GymId, o.Backlog);
        report.Add(store, $"M6 backlog drain ({Count(o.Backlog)} deliveries)", $"{backlog:N0} deliveries/s", $"M4 {gw:N0}/s", backlog / gw, 0.8,
            $"backlog bulk-inserted as due deliveries (as fan-out leaves them), then the worker woken; the database grew by {_deliveryBytes:N0} B per delivery queued (rows, indexes, events)");

        // M6: one endpoint taking 10 s per request. Each run is paired with a baseline run just before it, in the same
        // state of the database, with the extra endpoints paused: the table grows run by run, and M4 above ran on a
        // smaller one.
        var slow = await owner.PostAsJsonAsync("/api/gym/webhooks", new { url = receivers.SlowUrl, events = new[] { EventCatalog.LeadCreated } });
        slow.EnsureSuccessStatusCode();
        _unsettled.Add((await slow.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid());
        var iso = await PairedRunsAsync(owner, hooks.GymId, "M6 isolation");
        report.Add(store, "M6 isolation (one endpoint at 10 s/request)", $"{iso.Measured:N0} deliveries/s", $"{iso.Baseline:N0}/s with it paused", iso.Ratio, 0.9,
            $"throughput to the other 100 endpoints while one answers after 10 s (target: lose <= 10%); each run paired with a baseline run just before it, the 10 s endpoint paused, after one warm-up pair; ratio: the median of the {o.PairedRuns} pairs' ratios (of the medians: {iso.Measured / iso.Baseline:0.00}); M4 was {gw:N0}/s");

        // Issue 10, R3: the hostile receivers beside the healthy ones, each subscribed to every event.
        foreach (var url in hostile.HostileUrls)
        {
            var created = await owner.PostAsJsonAsync("/api/gym/webhooks", new { url, events = new[] { EventCatalog.LeadCreated } });
            created.EnsureSuccessStatusCode();
            _unsettled.Add((await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid());
        }
        using (var sampler = new RssSampler())
        {
            var h = await PairedRunsAsync(owner, hooks.GymId, "R3 hostile");
            var rss = sampler.Stop();
            report.Add(store, "R3 hostile receivers (hang, trickle, 1 GiB, redirect, 410)", $"{h.Measured:N0} deliveries/s", $"{h.Baseline:N0}/s with them paused", h.Ratio, 0.9,
                $"throughput to the 100 healthy endpoints while 5 hostile ones (and the 10 s one) get every event too (issue 10: keep >= 90%); each run paired with a baseline run just before it, the 6 paused, after one warm-up pair; ratio: the median of the {o.PairedRuns} pairs' ratios (of the medians: {h.Measured / h.Baseline:0.00}); peak RSS {rss / 1048576.0:N0} MiB (M4: {peakRss / 1048576.0:N0} MiB)");
        }

        // M6 outage: an endpoint down for an hour leaves its deliveries queued ahead of everyone else's.
        await SetActiveAsync(owner, false);
        var outage = await OutageAsync(owner, hooks.GymId);
        report.Add(store, $"M6 outage ({Count(o.OutageBacklog)} queued to a dead endpoint)", $"{outage.Measured:N0} deliveries/s", $"{outage.Baseline:N0}/s without it", outage.Ratio, 0.9,
            $"throughput to the 100 healthy endpoints while a 101st refuses connections with {o.OutageBacklog:N0} deliveries queued before theirs (an hour's outage at 10 events/s; target: lose <= 10%), paused after failing as the worker does it; each run paired with a baseline run just before it without that endpoint, after one warm-up pair; ratio: the median of the {o.PairedRuns} pairs' ratios (of the medians: {outage.Measured / outage.Baseline:0.00})");
    }

    /// <summary>
    /// Runs with the extra endpoints (<see cref="_unsettled"/>) active, each after a baseline run with them
    /// paused (<c>is_active</c> false); before either run their queued deliveries are deleted, so each measured run
    /// starts with none of theirs queued.
    /// </summary>
    private async Task<PairedResult> PairedRunsAsync(HttpClient owner, Guid gymId, string name)
    {
        // Attempts to each extra endpoint after the warm-up pair, counted before their rows are deleted.
        var attempts = new Dictionary<string, int>();
        var counted = new Dictionary<string, int>();
        var counting = false;
        async Task CountAttemptsAsync()
        {
            if (counting)
            {
                foreach (var (url, count) in await AttemptsPerSubscriptionAsync())
                {
                    attempts[url] = attempts.GetValueOrDefault(url) + count - counted.GetValueOrDefault(url);
                }
            }
        }
        // Per run: deliveries/s, and CPU seconds of this process (Gymwire and the harness) and of the receivers'
        // processes (the hostile ones' too, when they have their own): the machine's two cores are shared, so work done
        // for (and by) the extra receivers is taken from the healthy deliveries.
        // And the full (gen 2) garbage collections and the JIT compilation time of this process per run.
        var measured = new List<PairedRun>();
        var baseline = new List<PairedRun>();
        async Task<PairedRun> RunAsync(bool active)
        {
            // Every run starts with none of the extra endpoints' deliveries queued: turning a webhook off only holds
            // its queue, and turning it on again would make the held rows of all earlier runs due at once.
            await SetActiveAsync(owner, false);
            await CountAttemptsAsync();
            await DropQueuedAsync(gymId, _unsettled);
            counted = await AttemptsPerSubscriptionAsync();
            if (active)
            {
                await SetActiveAsync(owner, true);
            }
            await ResetQueueAsync(gymId);
            var (self, theirs, gen2, jit) = (Process.GetCurrentProcess().TotalProcessorTime, ReceiversCpu(), GC.CollectionCount(2), JitInfo.GetCompilationTime());
            var rate = await GymwireRateAsync(gymId, o.EventsPerRun);
            return new PairedRun(rate, (Process.GetCurrentProcess().TotalProcessorTime - self).TotalSeconds, (ReceiversCpu() - theirs).TotalSeconds,
                GC.CollectionCount(2) - gen2, (JitInfo.GetCompilationTime() - jit).TotalMilliseconds);
        }
        // Pair 0 warms up and is not counted. The first run with the extra endpoints active takes Gymwire down paths
        // M4's warm-up never took (failed, redirected, cut-off and slow attempts; holds, pauses, deactivation) and
        // JIT-compiles them: in R3 that first pair's ratio was 0.70-0.81 in four delivery-only runs, against a median
        // of 0.93 for the pairs after it, with 0.7-1.2 s more of Gymwire's CPU than its baseline.
        PgStatements? statements = null;
        for (var r = 0; r <= o.PairedRuns; r++)
        {
            var b = await RunAsync(active: false);
            var m = await RunAsync(active: true);
            Console.WriteLine($"  {name} {(r == 0 ? "warm-up pair (not counted)" : $"run {r}")}: {m.Rate:N0}/s to the {Subscriptions} healthy endpoints, {b.Rate:N0}/s with the others paused ({m.Rate / b.Rate:0.00}); " +
                $"CPU s (gymwire, receivers): {m.Gymwire:0.0}, {m.Receivers:0.0} against {b.Gymwire:0.0}, {b.Receivers:0.0}; gen 2 GCs {m.Gen2} against {b.Gen2}; JIT ms {m.JitMs:N0} against {b.JitMs:N0}");
            if (r == 0)
            {
                counting = true;
                counted = await AttemptsPerSubscriptionAsync();
                statements = await PgStatements.StartAsync(_app.Services, store);
                continue;
            }
            measured.Add(m);
            baseline.Add(b);
        }
        if (statements is not null)
        {
            await statements.PrintAsync($"{name}'s measured pairs (both runs of each, and the queue's reset before each)", 2 * o.PairedRuns * o.EventsPerRun * Subscriptions, "healthy delivery");
        }
        await CountAttemptsAsync();
        Console.WriteLine($"  {name}: attempts per measured run: " + string.Join(", ", attempts.Select(x => $"{x.Key} {x.Value / (double)o.PairedRuns:0.#}")));
        Console.WriteLine($"  {name}: median CPU s per run (gymwire, receivers): {Stats.Median(measured.Select(x => x.Gymwire)):0.00}, {Stats.Median(measured.Select(x => x.Receivers)):0.00} " +
            $"against {Stats.Median(baseline.Select(x => x.Gymwire)):0.00}, {Stats.Median(baseline.Select(x => x.Receivers)):0.00} with the others paused");
        return new PairedResult(Stats.Median(measured.Select(x => x.Rate)), Stats.Median(baseline.Select(x => x.Rate)),
            Stats.Median(measured.Zip(baseline, (m, b) => m.Rate / b.Rate)));
    }

    private readonly record struct PairedRun(double Rate, double Gymwire, double Receivers, int Gen2, double JitMs);

    /// <summary>
    /// Pairs of runs: a baseline with the dead endpoint inactive, then, after <see cref="BenchOptions.OutageBacklog"/> of
    /// its deliveries are queued (due a minute ago, ahead of the run's) and the worker has paused it for at least
    /// <see cref="OutagePause"/> (failed attempts, then failed probes), a run with it active and paused.
    /// </summary>
    private async Task<PairedResult> OutageAsync(HttpClient owner, Guid gymId)
    {
        // Port 9 (discard) on loopback: nothing listens, so every attempt is refused at once.
        var created = await owner.PostAsJsonAsync("/api/gym/webhooks", new { url = "http://127.0.0.1:9/down", events = new[] { EventCatalog.LeadCreated } });
        created.EnsureSuccessStatusCode();
        var dead = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        _unsettled.Add(dead);
        var measured = new List<double>();
        var baseline = new List<double>();
        for (var r = 0; r <= o.PairedRuns; r++)
        {
            await SetActiveAsync(owner, [dead], false);
            await DropOutageAsync(dead);
            await ResetQueueAsync(gymId);
            var b = await GymwireRateAsync(gymId, o.EventsPerRun);
            await SetActiveAsync(owner, [dead], true);
            var paused = await QueueOutageAsync(gymId, dead);
            await ResetQueueAsync(gymId);
            var m = await GymwireRateAsync(gymId, o.EventsPerRun);
            Console.WriteLine($"  M6 outage {(r == 0 ? "warm-up pair (not counted)" : $"run {r}")}: {m:N0}/s with the dead endpoint's backlog queued (paused for {paused.TotalSeconds:0} s), {b:N0}/s without ({m / b:0.00})");
            if (r > 0)
            {
                measured.Add(m);
                baseline.Add(b);
            }
        }
        await SetActiveAsync(owner, [dead], false);
        await DropOutageAsync(dead);
        return new PairedResult(Stats.Median(measured), Stats.Median(baseline), Stats.Median(measured.Zip(baseline, (m, b) => m / b)));
    }

    /// <summary>The endpoints' queued deliveries that no attempt holds now (a claimed one is left to finish).</summary>
    private async Task DropQueuedAsync(Guid gymId, IReadOnlyCollection<Guid> subscriptions)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        var now = DateTime.UtcNow;
        await db.WebhookDeliveries.Where(d => d.GymId == gymId && subscriptions.Contains(d.SubscriptionId)
            && (d.Status == DeliveryStatus.Pending || d.Status == DeliveryStatus.Retrying) && (d.LockedUntil == null || d.LockedUntil <= now)).ExecuteDeleteAsync();
    }

    /// <summary>
    /// Deletes the dead endpoint's deliveries: disabling it only takes their due times away (enabling it again would
    /// resume them), and each pair starts from the same backlog.
    /// </summary>
    private async Task DropOutageAsync(Guid dead)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        db.Database.SetCommandTimeout(TimeSpan.FromMinutes(5));
        // The delete locks 36,000 rows in no particular order while the worker may still record or move a few of them:
        // PostgreSQL can pick it as a deadlock's victim, and then it is simply run again.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await db.WebhookDeliveries.Where(d => d.SubscriptionId == dead).ExecuteDeleteAsync();
                return;
            }
            catch (Exception e) when (attempt < 5 && e.GetBaseException() is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.DeadlockDetected })
            {
                Console.WriteLine($"  dropping the dead endpoint's deliveries deadlocked (try {attempt}); trying again");
            }
        }
    }

    /// <summary>How long the dead endpoint's pause must have grown to before a measured run: a few failed probes.</summary>
    private static readonly TimeSpan OutagePause = TimeSpan.FromSeconds(4);

    /// <summary>Queues the dead endpoint's backlog as fan-out leaves it and waits until the worker has paused it for <see cref="OutagePause"/>.</summary>
    private async Task<TimeSpan> QueueOutageAsync(Guid gymId, Guid dead)
    {
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            db.Database.SetCommandTimeout(TimeSpan.FromMinutes(5));
            var due = DateTime.UtcNow.AddMinutes(-1);
            var payload = JsonSerializer.Serialize(Data(null), GymwireJson.Options);
            // Each row carries its body, so it needs no outbox event of its own.
            db.ChangeTracker.AutoDetectChangesEnabled = false;
            db.WebhookDeliveries.AddRange(Enumerable.Range(0, o.OutageBacklog).Select(_ => new WebhookDelivery
            {
                Id = Guid.CreateVersion7(), GymId = gymId, SubscriptionId = dead, EventId = Guid.CreateVersion7(), Event = EventCatalog.LeadCreated,
                Payload = payload, Status = DeliveryStatus.Pending, CreatedAt = due, NextAttemptAt = due,
            }));
            await db.SaveChangesAsync();
        }
        _app.Services.GetRequiredService<DeliverySignal>().Notify();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromMinutes(2))
        {
            await using var scope = _app.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            if (await db.WebhookSubscriptions.Where(s => s.Id == dead).Select(s => s.PauseLength).FirstAsync() >= OutagePause)
            {
                break;
            }
            await Task.Delay(100);
        }
        return clock.Elapsed;
    }

    /// <summary>
    /// The medians of the measured and of the baseline runs (the absolute figures), and the median of the pairs' own
    /// ratios: the figure compared with the target. A pair runs back to back so that a change in the shared machine's
    /// speed hits both of its runs alike; the ratio of the two medians would let it back in, since when the machine
    /// slows down for a few pairs the two medians can fall on runs from different phases (one run gave 0.78 that way
    /// from pairs whose own ratios had a median of 1.04).
    /// </summary>
    private readonly record struct PairedResult(double Measured, double Baseline, double Ratio);

    /// <summary>
    /// Puts the queue table back in the same state before each paired run: the healthy endpoints' delivered rows of
    /// earlier runs (and, by cascade, their attempts) deleted, and on PostgreSQL the tables vacuumed. Without it each
    /// run meets a table larger than the last (on PostgreSQL, with the dead rows autovacuum has not reached yet), and
    /// that drift between the two halves of a pair was larger than the effect being measured. The extra endpoints' rows
    /// stay: some of their attempts are still in flight.
    /// </summary>
    private async Task ResetQueueAsync(Guid gymId)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        db.Database.SetCommandTimeout(TimeSpan.FromMinutes(5));
        await db.WebhookDeliveries.Where(d => d.GymId == gymId && d.Status == DeliveryStatus.Delivered && !_unsettled.Contains(d.SubscriptionId)).ExecuteDeleteAsync();
        if (db.Provider == DatabaseProvider.Postgres)
        {
            await db.Database.ExecuteSqlRawAsync("VACUUM (ANALYZE) webhook_deliveries, webhook_attempts");
        }
    }

    private TimeSpan ReceiversCpu() => receivers.CpuTime + (ReferenceEquals(hostile, receivers) ? TimeSpan.Zero : hostile.CpuTime);

    /// <summary>Attempts recorded so far to each of the extra endpoints (<see cref="_unsettled"/>), by the last segment of its URL ("slow", "huge" ...).</summary>
    private async Task<Dictionary<string, int>> AttemptsPerSubscriptionAsync()
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        var counts = await (
            from a in db.WebhookAttempts
            join d in db.WebhookDeliveries on a.DeliveryId equals d.Id
            join s in db.WebhookSubscriptions on d.SubscriptionId equals s.Id
            where _unsettled.Contains(d.SubscriptionId)
            group a by s.Url into g
            select new { Url = g.Key, Count = g.Count() }).ToListAsync();
        return counts.ToDictionary(x => x.Url[(x.Url.LastIndexOf('/') + 1)..], x => x.Count);
    }

    /// <summary>Bytes the database's pages hold (SQLite: pages in use, not free; PostgreSQL: pg_database_size).</summary>
    private async Task<long> DatabaseBytesAsync()
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        return db.Provider == DatabaseProvider.Postgres
            ? await db.Database.SqlQuery<long>($"SELECT pg_database_size(current_database()) AS \"Value\"").SingleAsync()
            : await db.Database.SqlQuery<long>($"SELECT (p.page_count - f.freelist_count) * s.page_size AS \"Value\" FROM pragma_page_count() p, pragma_freelist_count() f, pragma_page_size() s").SingleAsync();
    }

    private Task SetActiveAsync(HttpClient owner, bool active) => SetActiveAsync(owner, _unsettled, active);

    private static async Task SetActiveAsync(HttpClient owner, IEnumerable<Guid> subscriptions, bool active)
    {
        foreach (var id in subscriptions)
        {
            using var patched = await owner.PatchAsJsonAsync($"/api/gym/webhooks/{id}", new { is_active = active });
            patched.EnsureSuccessStatusCode();
        }
    }

    private Dictionary<string, object> Data(long? t0)
    {
        var data = new Dictionary<string, object>();
        if (t0 is { } t)
        {
            data["t0"] = t;
        }
        data["lead_id"] = Guid.Empty;
        data["pad"] = new string('x', _pad);
        return data;
    }

    /// <summary>Padding that makes the delivered body about 1 KiB.</summary>
    private int PadFor(Guid gymId)
    {
        _pad = 0;
        var empty = WebhookPayloads.Build(Guid.NewGuid(), EventCatalog.LeadCreated, gymId,
            JsonSerializer.Serialize(Data(Stopwatch.GetTimestamp()), GymwireJson.Options), DateTime.UtcNow);
        return Math.Max(0, 1024 - Encoding.UTF8.GetByteCount(empty));
    }

    private async Task<double> RawRateAsync(byte[] payload, int total)
    {
        await receivers.ResetAsync();
        using var client = RawClient();
        var next = -1;
        var clock = Stopwatch.StartNew();
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await Task.WhenAll(Enumerable.Range(0, DeliveryConcurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < total)
            {
                using var content = new ByteArrayContent(payload);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                using var response = await client.PostAsync(receivers.Url(i % Subscriptions), content, deadline.Token);
                response.EnsureSuccessStatusCode();
            }
        }));
        return total / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Commits <paramref name="events"/> events at once and times their deliveries to the 100 receivers.</summary>
    private async Task<double> GymwireRateAsync(Guid gymId, int events)
    {
        await receivers.ResetAsync();
        var target = (long)events * Subscriptions;
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        var now = DateTime.UtcNow;
        for (var e = 0; e < events; e++)
        {
            db.AddEvent(gymId, EventCatalog.LeadCreated, Data(null), now);
        }
        var clock = Stopwatch.StartNew();
        await db.SaveChangesAsync();
        var fannedOut = Task.Run(async () =>
        {
            while (clock.Elapsed < TimeSpan.FromMinutes(3))
            {
                await using var probe = _app.Services.CreateAsyncScope();
                if (!await probe.ServiceProvider.GetRequiredService<GymwireDbContext>().OutboxEvents.AnyAsync(e => e.GymId == gymId && e.DispatchedAt == null))
                {
                    break;
                }
                await Task.Delay(10);
            }
            return clock.Elapsed;
        });
        if (Environment.GetEnvironmentVariable("BENCH_EXPLAIN") == "1" && store == "postgres")
        {
            await ExplainClaimAsync();
        }
        var ninety = await receivers.WaitForAsync(target * 9 / 10, clock, TimeSpan.FromMinutes(3));
        var done = await receivers.WaitForAsync(target, clock, TimeSpan.FromMinutes(3));
        // Where the time goes: writing the deliveries, the bulk of them, the last tenth.
        Console.WriteLine($"    fanned out in {(await fannedOut).TotalSeconds:0.00} s; 90 % received at {ninety?.TotalSeconds:0.00} s, all at {done?.TotalSeconds:0.00} s");
        var rate = done is { } d ? target / d.TotalSeconds : (await receivers.StatsAsync()).Normal / clock.Elapsed.TotalSeconds;
        await SettleAsync(gymId);
        return rate;
    }

    /// <summary>
    /// BENCH_EXPLAIN=1 (PostgreSQL): a second into each delivery run, prints the plan of the worker's claim (rolled
    /// back) and the queue table's live and dead rows and autovacuum count, to see what a claim walks through.
    /// </summary>
    private async Task ExplainClaimAsync()
    {
        await Task.Delay(1000);
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        await db.Database.OpenConnectionAsync();
        await using var tx = await db.Database.BeginTransactionAsync();
        // The worker's own claim statement with its planner settings (rolled back below), the subscriptions the bench
        // holds back skipped; EF binds the arguments as it does for the worker.
        var now = DateTime.UtcNow;
        var claim = PostgresDeliveryQueue.Claim(now, now.AddMinutes(1), 16, [.. _unsettled], [], Guid.NewGuid());
        await using var command = db.Database.SqlQuery<string>(PostgresDeliveryQueue.WithPlannerSettings(
            FormattableStringFactory.Create("EXPLAIN (ANALYZE, BUFFERS) " + claim.Format, claim.GetArguments()))).CreateDbCommand();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                Console.WriteLine("    explain: " + reader.GetString(0));
            }
        }
        command.Parameters.Clear();
        command.CommandText = "SELECT n_live_tup, n_dead_tup, autovacuum_count FROM pg_stat_user_tables WHERE relname = 'webhook_deliveries'";
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                Console.WriteLine($"    explain: webhook_deliveries {reader.GetValue(0)} live rows, {reader.GetValue(1)} dead, {reader.GetValue(2)} autovacuums");
            }
        }
        await tx.RollbackAsync();
    }

    /// <summary>Waits (bounded) until no delivery is pending, so the next run starts on a quiet queue.</summary>
    private async Task SettleAsync(Guid gymId)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            await using var scope = _app.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            var pending = await db.WebhookDeliveries.CountAsync(d => d.GymId == gymId && d.Status == DeliveryStatus.Pending && !_unsettled.Contains(d.SubscriptionId));
            if (pending == 0)
            {
                return;
            }
            await Task.Delay(100);
        }
    }

    private async Task<(int Count, double P50, double P99, string Stages)> GymwireLatencyAsync(Guid gymId, double deliveriesPerSecond)
    {
        await receivers.ResetAsync();
        using var stages = new InstrumentSamples(DeliveryMetrics.MeterName, DispatcherLag, AttemptDuration);
        var eventsPerSecond = deliveriesPerSecond / Subscriptions;
        var total = Math.Max(5, (int)(eventsPerSecond * o.LatencyDuration.TotalSeconds));
        var clock = Stopwatch.StartNew();
        for (var k = 0; k < total; k++)
        {
            var due = TimeSpan.FromSeconds(k / eventsPerSecond) - clock.Elapsed;
            if (due > TimeSpan.Zero)
            {
                await Task.Delay(due);
            }
            await using var scope = _app.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            // t0 is taken before the commit, so the figure includes the commit itself.
            db.AddEvent(gymId, EventCatalog.LeadCreated, Data(Stopwatch.GetTimestamp()), DateTime.UtcNow);
            await db.SaveChangesAsync();
        }
        await receivers.WaitForAsync((long)total * Subscriptions, clock, o.LatencyDuration + TimeSpan.FromMinutes(1));
        await SettleAsync(gymId);
        var (count, p50, p99) = await receivers.LatencyAsync();
        return (count, p50, p99,
            $"{stages.Milliseconds(DispatcherLag, "commit to fan-out committed (per event)")}; {stages.Milliseconds(AttemptDuration, "attempt (send to response read)")}");
    }

    private const string DispatcherLag = DeliveryMetrics.DispatchLagName;
    private const string AttemptDuration = DeliveryMetrics.AttemptDurationName;

    private async Task<(double P50, double P99)> RawLatencyAsync(byte[] payload, double perSecond)
    {
        using var client = RawClient();
        using var slots = new SemaphoreSlim(DeliveryConcurrency);
        var total = (int)(perSecond * o.LatencyDuration.TotalSeconds);
        var tasks = new List<Task<double>>(total);
        var clock = Stopwatch.StartNew();
        async Task<double> OneAsync(int i)
        {
            await slots.WaitAsync();
            try
            {
                var started = Stopwatch.GetTimestamp();
                using var content = new ByteArrayContent(payload);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                using var response = await client.PostAsync(receivers.Url(i % Subscriptions), content);
                response.EnsureSuccessStatusCode();
                return Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            }
            finally
            {
                slots.Release();
            }
        }
        while (tasks.Count < total && clock.Elapsed < o.LatencyDuration + TimeSpan.FromSeconds(30))
        {
            var due = Math.Min(total, (int)(clock.Elapsed.TotalSeconds * perSecond) + 1);
            while (tasks.Count < due)
            {
                tasks.Add(OneAsync(tasks.Count));
            }
            await Task.Delay(1);
        }
        var sorted = (await Task.WhenAll(tasks)).Order().ToArray();
        return (Stats.Percentile(sorted, 0.5), Stats.Percentile(sorted, 0.99));
    }

    /// <summary>
    /// M5's load shape without Gymwire: at the same rate, each event's {Subscriptions} POSTs (one per receiver, a body of
    /// the same size) start at once from a raw HttpClient, and the receivers measure each from the burst's start to its
    /// arrival, as they measure Gymwire's from the commit. What a fan-out of that size costs on this machine by itself.
    /// </summary>
    private async Task<(double P50, double P99)> RawBurstLatencyAsync(Guid gymId, double deliveriesPerSecond)
    {
        await receivers.ResetAsync();
        using var client = RawClient();
        using var slots = new SemaphoreSlim(DeliveryConcurrency);
        var eventsPerSecond = deliveriesPerSecond / Subscriptions;
        var total = Math.Max(5, (int)(eventsPerSecond * o.LatencyDuration.TotalSeconds));
        var sends = new List<Task>(total * Subscriptions);
        async Task OneAsync(byte[] body, int i)
        {
            await slots.WaitAsync();
            try
            {
                using var content = new ByteArrayContent(body);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                using var response = await client.PostAsync(receivers.Url(i), content);
                response.EnsureSuccessStatusCode();
            }
            finally
            {
                slots.Release();
            }
        }
        var clock = Stopwatch.StartNew();
        for (var k = 0; k < total; k++)
        {
            var due = TimeSpan.FromSeconds(k / eventsPerSecond) - clock.Elapsed;
            if (due > TimeSpan.Zero)
            {
                await Task.Delay(due);
            }
            var body = Encoding.UTF8.GetBytes(WebhookPayloads.Build(Guid.NewGuid(), EventCatalog.LeadCreated, gymId,
                JsonSerializer.Serialize(Data(Stopwatch.GetTimestamp()), GymwireJson.Options), DateTime.UtcNow));
            for (var i = 0; i < Subscriptions; i++)
            {
                sends.Add(OneAsync(body, i));
            }
        }
        await Task.WhenAll(sends);
        var (_, p50, p99) = await receivers.LatencyAsync();
        return (p50, p99);
    }

    private async Task<double> BacklogRateAsync(Guid gymId, int count)
    {
        // As fan-out leaves them: count / 100 dispatched outbox events, each with a delivery to every receiver.
        var data = JsonSerializer.Serialize(Data(null), GymwireJson.Options);
        var events = (count + Subscriptions - 1) / Subscriptions;
        var bytesBefore = await DatabaseBytesAsync();
        var seed = Stopwatch.StartNew();
        await using (var scope = _app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            db.Database.SetCommandTimeout(TimeSpan.FromMinutes(10));
            var now = DateTime.UtcNow;
            if (db.Provider == DatabaseProvider.Postgres)
            {
                await db.Database.ExecuteSqlAsync($"""
                    WITH ev AS (
                        INSERT INTO outbox_events (id, gym_id, type, data, occurred_at, dispatched_at)
                        SELECT gen_random_uuid(), {gymId}, 'lead.created', {data}, {now}, {now} FROM generate_series(1, {events})
                        RETURNING id),
                    e AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS rn FROM ev),
                    s AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS rn FROM webhook_subscriptions WHERE gym_id = {gymId})
                    INSERT INTO webhook_deliveries (id, gym_id, subscription_id, event_id, event, payload, is_test, status, attempt_count, created_at, next_attempt_at)
                    SELECT gen_random_uuid(), {gymId}, s.id, e.id, 'lead.created', NULL, false, 'pending', 0, {now}, {now}
                    FROM generate_series(0, {count - 1}) AS i
                    JOIN s ON s.rn = i % {Subscriptions} JOIN e ON e.rn = i / {Subscriptions}
                    """);
            }
            else
            {
                await using var tx = await db.Database.BeginTransactionAsync();
                await db.Database.ExecuteSqlAsync($"""
                    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {events - 1})
                    INSERT INTO outbox_events (id, gym_id, type, data, occurred_at, dispatched_at)
                    SELECT printf('%08X-0001-7000-8000-%012X', i, i), {gymId}, 'lead.created', {data}, {now}, {now} FROM n
                    """);
                await db.Database.ExecuteSqlAsync($"""
                    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {count - 1}),
                    s(id, rn) AS (SELECT id, row_number() OVER (ORDER BY id) - 1 FROM webhook_subscriptions WHERE gym_id = {gymId})
                    INSERT INTO webhook_deliveries (id, gym_id, subscription_id, event_id, event, payload, is_test, status, attempt_count, created_at, next_attempt_at)
                    SELECT printf('%08X-0000-7000-9000-%012X', i, i), {gymId}, s.id, printf('%08X-0001-7000-8000-%012X', i / {Subscriptions}, i / {Subscriptions}),
                        'lead.created', NULL, 0, 'pending', 0, {now}, {now}
                    FROM n JOIN s ON s.rn = n.i % {Subscriptions}
                    """);
                await tx.CommitAsync();
            }
        }
        Console.WriteLine($"  M6 backlog: {count:N0} deliveries inserted in {seed.Elapsed.TotalSeconds:0.0} s");
        _deliveryBytes = (await DatabaseBytesAsync() - bytesBefore) / (double)count;
        Console.WriteLine($"  M6 backlog: the database grew by {_deliveryBytes:N0} B per delivery (rows, indexes and the events' data)");
        await receivers.ResetAsync();
        var clock = Stopwatch.StartNew();
        _app.Services.GetRequiredService<DeliverySignal>().Notify();
        var done = await receivers.WaitForAsync(count, clock, TimeSpan.FromMinutes(o.Quick ? 2 : 6));
        var rate = done is { } d ? count / d.TotalSeconds : (await receivers.StatsAsync()).Normal / clock.Elapsed.TotalSeconds;
        Console.WriteLine($"  M6 backlog drained at {rate:N0}/s{(done is null ? " (deadline reached before the end)" : "")}");
        await SettleAsync(gymId);
        return rate;
    }

    private static HttpClient RawClient() => new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, UseCookies = false, PooledConnectionLifetime = TimeSpan.FromMinutes(2) })
    {
        Timeout = TimeSpan.FromSeconds(30),
    };

    // ---------------------------------------------------------------- the metrics' cost (issue 28)

    /// <summary>
    /// M1's poll and M4's delivery run with the Prometheus endpoint on and scraped every second, each paired with the
    /// same run with metrics off. Metrics are switched on when the server starts, so every run has a server of its
    /// own, started afresh and warmed up the same way; the order within a pair alternates, so that neither side is
    /// always the one that runs second.
    /// </summary>
    private async Task MetricsCostAsync(BenchGym m1, BenchGym hooks, BenchGym gym)
    {
        // R3's endpoints (when the delivery part ran) are paused, so their retries do not run beside these runs.
        if (_unsettled.Count > 0)
        {
            using var hooksOwner = Client(hooks.Key);
            await SetActiveAsync(hooksOwner, active: false);
        }
        using (var owner = Client(gym.Key))
        {
            for (var i = 0; i < Subscriptions; i++)
            {
                using var created = await owner.PostAsJsonAsync("/api/gym/webhooks", new { url = receivers.Url(i), events = new[] { EventCatalog.LeadCreated } });
                created.EnsureSuccessStatusCode();
            }
        }
        _pad = PadFor(gym.GymId);
        var connections = _m1Connections ?? 8;
        var pollScript = Wrk.Script("GET", null, new Dictionary<string, string> { ["Authorization"] = "Bearer " + m1.Key });
        async Task<(double Rate, long Units)> PollAsync(TimeSpan duration)
        {
            var result = await Wrk.RunAsync($"{_base}/api/zapier/triggers?type=new_member", connections, duration, pollScript);
            Check(result, "metrics cost, M1");
            return (result.Rps, result.Requests);
        }

        var poll = await MetricsPairsAsync("M1", before: () => Task.CompletedTask,
            warmUp: () => PollAsync(TimeSpan.FromSeconds(1)), run: () => PollAsync(o.Duration));
        var warmUpEvents = Math.Max(10, o.EventsPerRun / 5);
        var delivery = await MetricsPairsAsync("M4", before: () => ResetQueueAsync(gym.GymId),
            warmUp: () => GymwireRateAsync(gym.GymId, warmUpEvents),
            run: async () => (await GymwireRateAsync(gym.GymId, o.EventsPerRun), (long)o.EventsPerRun * Subscriptions));

        var common = $"each run on a server started afresh and warmed up, {(o.PairedRuns + 1) * 2} starts per figure; ratio: the median of the {o.PairedRuns} pairs' ratios after one warm-up pair";
        report.Add(store, "Metrics cost: M1 on/off", $"{poll.Result.Measured:N0} req/s with metrics on", $"{poll.Result.Baseline:N0} req/s with them off",
            poll.Result.Ratio, 0.97, $"M1's poll at {connections} conn, {o.Duration.TotalSeconds:0} s per run, Prometheus endpoint on and scraped every second ({poll.Scrapes} scrapes, {poll.Failures} failed, last {poll.Bytes / 1024.0:N0} KiB) against off; {Cpu(poll, "request")}; {common}; target: lose <= 3%");
        report.Add(store, "Metrics cost: M4 on/off", $"{delivery.Result.Measured:N0} deliveries/s with metrics on", $"{delivery.Result.Baseline:N0}/s with them off",
            delivery.Result.Ratio, 0.97, $"M4's run ({o.EventsPerRun * Subscriptions:N0} deliveries to {Subscriptions} receivers, on a gym of its own), Prometheus endpoint on and scraped every second ({delivery.Scrapes} scrapes, {delivery.Failures} failed, last {delivery.Bytes / 1024.0:N0} KiB) against off; {Cpu(delivery, "delivery")}; {common}; target: lose <= 3%");
    }

    private static string Cpu(MetricsPairs pairs, string unit) =>
        $"server CPU per {unit} {pairs.CpuOn:N1} µs on, {pairs.CpuOff:N1} µs off (medians; {pairs.CpuOn / pairs.CpuOff:0.00})";

    /// <summary>The pairs' throughput, and the median CPU time this process (the server; wrk and the receivers run apart) spent per unit of work, on and off.</summary>
    private readonly record struct MetricsPairs(PairedResult Result, int Scrapes, int Failures, long Bytes, double CpuOn, double CpuOff);

    /// <summary>
    /// Pairs of runs, one with metrics on (and scraped from the server's start to the run's end) and one with them off,
    /// back to back, off-on then on-off; pair 0 warms up and is not counted. Before each run the server is restarted with
    /// the run's setting, then <paramref name="before"/> and <paramref name="warmUp"/> run on it.
    /// </summary>
    private async Task<MetricsPairs> MetricsPairsAsync(string name, Func<Task> before, Func<Task> warmUp, Func<Task<(double Rate, long Units)>> run)
    {
        var on = new List<double>();
        var off = new List<double>();
        var ratios = new List<double>();
        var cpu = new Dictionary<bool, List<double>> { [true] = [], [false] = [] };
        var (scrapes, failures, bytes) = (0, 0, 0L);
        for (var r = 0; r <= o.PairedRuns; r++)
        {
            var rates = new Dictionary<bool, double>();
            var perUnit = new Dictionary<bool, double>();
            var jitMethods = 0L;
            var settled = TimeSpan.Zero;
            foreach (var metrics in r % 2 == 0 ? new[] { false, true } : [true, false])
            {
                await RestartAsync(metrics);
                await before();
                await using var scraper = metrics ? new Scraper($"{_base}/metrics") : null;
                await warmUp();
                settled += await JitSettledAsync();
                // CPU time of this process: the server, and the bench's own idle waiting (the load comes from other processes).
                var cpuBefore = Environment.CpuUsage.TotalTime;
                var jitBefore = JitInfo.GetCompiledMethodCount();
                (rates[metrics], var units) = await run();
                perUnit[metrics] = (Environment.CpuUsage.TotalTime - cpuBefore).TotalMicroseconds / Math.Max(1, units);
                jitMethods += JitInfo.GetCompiledMethodCount() - jitBefore;
                if (scraper is not null)
                {
                    var (count, failed, size) = await scraper.StopAsync();
                    if (count == 0 || !scraper.SawGymwire)
                    {
                        throw new InvalidOperationException($"metrics cost, {name}: /metrics was never scraped with Gymwire's instruments in it ({failed} scrapes failed)");
                    }
                    (scrapes, failures, bytes) = (scrapes + count, failures + failed, size);
                }
            }
            Console.WriteLine($"  metrics cost {name} {(r == 0 ? "warm-up pair (not counted)" : $"run {r}")} ({(r % 2 == 0 ? "off, on" : "on, off")}): " +
                $"{rates[true]:N0}/s with metrics on, {rates[false]:N0}/s off ({rates[true] / rates[false]:0.00}); " +
                $"CPU {perUnit[true]:N1} µs per unit on, {perUnit[false]:N1} µs off ({perUnit[true] / perUnit[false]:0.00}); {jitMethods:N0} methods JIT-compiled in the two runs (after waiting {settled.TotalSeconds:0.0} s for the JIT to settle)");
            if (r == 0)
            {
                continue;
            }
            cpu[true].Add(perUnit[true]);
            cpu[false].Add(perUnit[false]);
            on.Add(rates[true]);
            off.Add(rates[false]);
            ratios.Add(rates[true] / rates[false]);
        }
        return new MetricsPairs(new PairedResult(Stats.Median(on), Stats.Median(off), Stats.Median(ratios)), scrapes, failures, bytes,
            Stats.Median(cpu[true]), Stats.Median(cpu[false]));
    }

    /// <summary>
    /// Waits (up to 10 s) until the JIT has compiled nothing for a quarter of a second. Code that runs once per server
    /// start reaches the tiered JIT's 30 calls at this process's 30th start and is recompiled in the background then,
    /// thousands of methods at once, beside whichever run comes next (docs/benchmark-findings.md, Metrics cost). A server
    /// in production starts once and never pays it beside its work.
    /// </summary>
    private static async Task<TimeSpan> JitSettledAsync()
    {
        var waited = Stopwatch.StartNew();
        var count = JitInfo.GetCompiledMethodCount();
        while (waited.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(250));
            var now = JitInfo.GetCompiledMethodCount();
            if (now == count)
            {
                break;
            }
            count = now;
        }
        return waited.Elapsed;
    }

    /// <summary>Stops the server and starts another on the same database, with metrics on or off.</summary>
    private async Task RestartAsync(bool metrics)
    {
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            await _app.StopAsync(stop.Token);
        }
        await _app.DisposeAsync();
        _app = await StartAsync(metrics);
    }

    // ---------------------------------------------------------------- set-up

    private async Task<string> CreateDatabaseAsync()
    {
        if (store == "postgres")
        {
            var cluster = await PostgresCluster.InstanceAsync();
            // A production-sized pool: the delivery worker alone may hold 64 connections.
            return (await cluster.CreateDatabaseAsync()).Replace("Maximum Pool Size=50", "Maximum Pool Size=200", StringComparison.Ordinal);
        }
        _sqliteDirectory = Path.Combine(Path.GetTempPath(), "gymwire-bench-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(_sqliteDirectory);
        return $"Data Source={Path.Combine(_sqliteDirectory, "gymwire.db")}";
    }

    private async Task<WebApplication> StartAsync(bool metrics)
    {
        const string unlimited = "1000000000";
        string[] args =
        [
            "--urls=http://127.0.0.1:0",
            $"--Database:Provider={store}",
            $"--ConnectionStrings:Gymwire={_connectionString}",
            // PostgreSQL needs the key that encrypts the key ring given (SQLite makes one beside its file).
            $"--DataProtection:Key={_dataProtectionKey}",
            // The Prometheus endpoint on the API's port (the metrics' cost); off, as by default, everywhere else.
            $"--Metrics:Prometheus:Enabled={(metrics ? "true" : "false")}",
            "--Logging:LogLevel:Default=Warning",
            // wrk ends each run by closing connections mid-request: the server logs those aborted requests
            // (and their rolled-back EF transactions) as errors. Failed requests are counted by wrk instead.
            "--Logging:LogLevel:Microsoft.AspNetCore.Diagnostics=None",
            "--Logging:LogLevel:Microsoft.EntityFrameworkCore=None",
            // The metrics' cost restarts the server for every run: not a start-up banner each time.
            "--Logging:LogLevel:Microsoft.Hosting.Lifetime=Warning",
            "--Webhooks:AllowHttp=true",
            "--Webhooks:AllowedNetworks:0=127.0.0.0/8",
            "--Webhooks:Timeout=00:00:15",
            $"--Webhooks:MaxConcurrentDeliveries={DeliveryConcurrency}",
            // The limiter stays on (M2 measures its cost) but never rejects under load.
            $"--RateLimiting:Triggers:PermitLimit={unlimited}",
            $"--RateLimiting:Actions:PermitLimit={unlimited}",
            $"--RateLimiting:Mutations:PermitLimit={unlimited}",
            $"--RateLimiting:Destructive:PermitLimit={unlimited}",
        ];
        var builder = GymwireApp.CreateBuilder(args, b => b.Services.AddSingleton<Microsoft.EntityFrameworkCore.Diagnostics.IInterceptor>(_commands));
        var app = GymwireApp.Build(builder);

        // Bench-only endpoints: the ceilings.
        app.MapGet("/bench/ceiling", () => Results.Bytes(_triggerJson, "application/json; charset=utf-8"));
        app.MapGet("/bench/triggers-open", (string? type, GymwireDbContext db, TriggerCache cache, HttpResponse response, CancellationToken ct) => ZapierTriggers.Poll(type, null, null, _m1Principal, db, cache, response, ct))
            // The poll counter the real endpoint has: M2 compares authentication and the limiter, not the metrics.
            .AddEndpointFilter(ZapierMetrics.Counting(polls: true));
        app.MapPost("/bench/raw-lead", async (GymwireDbContext db, CancellationToken ct) =>
        {
            var now = DateTime.UtcNow;
            var id = Guid.CreateVersion7(now);
            await db.Database.ExecuteSqlAsync(
                $"INSERT INTO leads (id, gym_id, first_name, last_name, email, source, created_at) VALUES ({id}, {_actionsGym}, {"Bench"}, {"Lead"}, {"lead@example.com"}, {"raw"}, {now})", ct);
            return Results.StatusCode(StatusCodes.Status201Created);
        });

        await DatabaseSetup.MigrateAsync(app.Services);
        await app.StartAsync();
        _base = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/');
        return app;
    }

    private async Task<BenchGym> CreateGymAsync(string name)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var (gym, _, error) = await scope.ServiceProvider.GetRequiredService<GymProvisioning>()
            .CreateAsync("Bench " + name, $"{name}-{Guid.NewGuid():N}@example.com", "correct-horse-battery-staple", CancellationToken.None);
        if (gym is null)
        {
            throw new InvalidOperationException(error);
        }
        var (key, keyError) = await scope.ServiceProvider.GetRequiredService<ApiKeyService>()
            .CreateAsync(gym.GymId, "bench", [Scopes.Read, Scopes.Write], null, CancellationToken.None);
        return new BenchGym(gym.GymId, key?.Key ?? throw new InvalidOperationException(keyError));
    }

    /// <summary>Bulk-inserts members in one statement (a recursive CTE on SQLite, generate_series on PostgreSQL).</summary>
    private async Task SeedMembersAsync(Guid gymId, int count, int tag)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        db.Database.SetCommandTimeout(TimeSpan.FromMinutes(10));
        var start = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        if (db.Provider == DatabaseProvider.Postgres)
        {
            await db.Database.ExecuteSqlAsync($"""
                INSERT INTO members (id, gym_id, user_id, name, email, role, joined_at)
                SELECT gen_random_uuid(), {gymId}, 'user_' || i, 'Member ' || i, 'm' || i || '@example.com',
                       CASE WHEN i % 20 = 0 THEN 'coach' ELSE 'member' END, {start} + i * interval '1 second'
                FROM generate_series(1, {count}) AS i
                """);
            await db.Database.ExecuteSqlRawAsync("ANALYZE members");
        }
        else
        {
            var startText = start.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
            await db.Database.ExecuteSqlAsync($"""
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
                INSERT INTO members (id, gym_id, user_id, name, email, role, joined_at)
                SELECT printf('%08X-%04X-7000-8000-%012X', i, {tag}, i), {gymId}, 'user_' || i, 'Member ' || i, 'm' || i || '@example.com',
                       CASE WHEN i % 20 = 0 THEN 'coach' ELSE 'member' END, strftime('%Y-%m-%d %H:%M:%S', {startText}, '+' || i || ' seconds')
                FROM n
                """);
            await db.Database.ExecuteSqlRawAsync("ANALYZE");
        }
    }

    private HttpClient Client(string key)
    {
        var client = new HttpClient { BaseAddress = new Uri(_base) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    private static void Check(LoadResult result, string what)
    {
        if (result.Errors > 0)
        {
            throw new InvalidOperationException($"{what}: {result.Errors} failed requests of {result.Requests}");
        }
    }

    private static string Count(int n) => n >= 1_000_000 ? $"{n / 1_000_000.0:0.#}M" : $"{n / 1000}k";

    private static string Describe(LoadResult r) => $"{r.Rps:N0} req/s (p50 {r.P50Ms:0.00} ms, p99 {r.P99Ms:0.00} ms)";

    private static string Describe(LoadResult r, int connections) => $"{Describe(r)} at {connections} conn";

    private static string Describe(SweepPoint p) => Describe(p.Result, p.Connections);

    private static string Describe(bool ceiling, LoadResult r, int connections) =>
        $"{r.Rps:N0} writes/s (p50 {r.P50Ms:0.00} ms, p99 {r.P99Ms:0.00} ms) at {connections} conn{(ceiling ? "" : "")}";
}

/// <summary>Samples this process's resident set every 100 ms.</summary>
internal sealed class RssSampler : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _peak;

    public RssSampler()
    {
        _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                _peak = Math.Max(_peak, Current());
                try
                {
                    await Task.Delay(100, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }
        });
    }

    public static long Current()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
        }
        return 0;
    }

    public long Stop()
    {
        _stop.Cancel();
        _loop.Wait();
        return Math.Max(_peak, Current());
    }

    public void Dispose()
    {
        if (!_stop.IsCancellationRequested)
        {
            Stop();
        }
        _stop.Dispose();
    }
}

/// <summary>
/// GETs a Prometheus endpoint every second (Prometheus' default is every 15 s) until stopped, counting the scrapes
/// that answered 200 in the text format and those that did not.
/// </summary>
internal sealed class Scraper : IAsyncDisposable
{
    private readonly HttpClient _client = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(10) };
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private int _scrapes;
    private int _failures;
    private long _bytes;

    public Scraper(string url) => _loop = Task.Run(() => LoopAsync(url));

    /// <summary>Whether a scrape held one of Gymwire's own instruments.</summary>
    public bool SawGymwire { get; private set; }

    private async Task LoopAsync(string url)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            do
            {
                try
                {
                    using var response = await _client.GetAsync(url, _stop.Token);
                    var body = await response.Content.ReadAsStringAsync(_stop.Token);
                    if (response.IsSuccessStatusCode && body.Contains("# TYPE ", StringComparison.Ordinal))
                    {
                        _scrapes++;
                        _bytes = body.Length;
                        SawGymwire |= body.Contains("gymwire_", StringComparison.Ordinal);
                    }
                    else
                    {
                        _failures++;
                    }
                }
                catch (HttpRequestException)
                {
                    _failures++;
                }
                catch (TaskCanceledException) when (!_stop.IsCancellationRequested)
                {
                    // The client's timeout.
                    _failures++;
                }
            }
            while (await timer.WaitForNextTickAsync(_stop.Token));
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>Stops scraping; returns the scrapes that succeeded, those that failed, and the size of the last one.</summary>
    public async Task<(int Scrapes, int Failures, long Bytes)> StopAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        return (_scrapes, _failures, _bytes);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await StopAsync();
        }
        _stop.Dispose();
        _client.Dispose();
    }
}
