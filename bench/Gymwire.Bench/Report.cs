using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Gymwire.Bench;

public sealed record Figure(string Store, string Metric, string Subject, string Ceiling, double Ratio, double Target, bool LowerIsBetter, bool? ExtraMet, string Notes)
{
    public bool Met => (double.IsNaN(Target) || (LowerIsBetter ? Ratio <= Target : Ratio >= Target)) && ExtraMet != false;

    public string RatioText => double.IsNaN(Ratio) ? "-" : Ratio.ToString("0.00", CultureInfo.InvariantCulture);

    public string TargetText => double.IsNaN(Target) ? (ExtraMet is null ? "-" : "see notes") : (LowerIsBetter ? "<= " : ">= ") + Target.ToString("0.##", CultureInfo.InvariantCulture);

    public string MetText => double.IsNaN(Target) && ExtraMet is null ? "-" : Met ? "met" : "**missed**";
}

/// <summary>Collects the figures and writes docs/benchmarks.md.</summary>
public sealed class Report(BenchOptions options)
{
    private readonly List<Figure> _figures = [];
    private readonly List<(string Store, string What, string Text)> _details = [];
    private DateTime _started;
    private TimeSpan _elapsed;
    private string _loadBefore = "";
    private string _loadAfter = "";

    public void Begin()
    {
        _started = DateTime.UtcNow;
        _loadBefore = LoadAverage();
        Console.WriteLine($"load average at start: {_loadBefore}");
    }

    public void End()
    {
        _elapsed = DateTime.UtcNow - _started;
        _loadAfter = LoadAverage();
    }

    public void Add(string store, string metric, string subject, string ceiling, double ratio, double target, string notes, bool lowerIsBetter = false, bool? extraMet = null)
    {
        var figure = new Figure(store, metric, subject, ceiling, ratio, target, lowerIsBetter, extraMet, notes);
        _figures.Add(figure);
        Console.WriteLine($"[{store}] {metric}: {subject} | ceiling {ceiling} | ratio {figure.RatioText} (target {figure.TargetText}) {figure.MetText} | {notes}");
    }

    public void Detail(string store, string what, string text) => _details.Add((store, what, text));

    public string ConsoleTable()
    {
        var b = new StringBuilder();
        foreach (var f in _figures)
        {
            b.AppendLine(CultureInfo.InvariantCulture, $"{f.Store,-9} {f.Metric,-45} {f.RatioText,6} {f.TargetText,-10} {f.MetText.Replace("*", "", StringComparison.Ordinal),-7} {f.Subject} | {f.Ceiling}");
        }
        return b.ToString();
    }

    public string Markdown()
    {
        var b = new StringBuilder();
        b.AppendLine("# Benchmarks");
        b.AppendLine();
        b.AppendLine("Written by `scripts/bench` (the program in `bench/Gymwire.Bench`); do not edit by hand: run it again.");
        b.AppendLine("Each figure is a ratio to a ceiling measured in the same run, with the same load generator, connections and payload, on loopback.");
        b.AppendLine("Why targets are missed, what each mechanism was measured to gain, and what was tried and not kept: [benchmark-findings.md](benchmark-findings.md).");
        b.AppendLine();
        b.AppendLine("## This run");
        b.AppendLine();
        b.AppendLine(CultureInfo.InvariantCulture, $"- Command: `{options.Command}`{(options.Quick ? " (quick: one run per point, shorter durations, smaller tables)" : "")}");
        b.AppendLine(CultureInfo.InvariantCulture, $"- Date: {_started:yyyy-MM-dd HH:mm} UTC; took {_elapsed.TotalMinutes:0.0} min");
        b.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {CpuModel()}, {Environment.ProcessorCount} cores, {MemoryGiB()} GiB; {RuntimeInformation.OSDescription}; {RuntimeInformation.FrameworkDescription}");
        b.AppendLine(CultureInfo.InvariantCulture, $"- Load average (1, 5, 15 min) at start: {_loadBefore}; at end: {_loadAfter}. The machine is shared: absolute figures move with its load, ratios taken in the same run much less.");
        b.AppendLine(CultureInfo.InvariantCulture, $"- Runs: median of {options.Runs} run(s) of {options.Duration.TotalSeconds:0} s per point (wrk, 1 thread), ceiling and subject interleaved.");
        b.AppendLine();
        foreach (var store in _figures.Select(f => f.Store).Distinct())
        {
            b.AppendLine(CultureInfo.InvariantCulture, $"## {(store == "postgres" ? "PostgreSQL" : "SQLite")}");
            b.AppendLine();
            b.AppendLine("| metric | Gymwire | ceiling | ratio | target | met | notes |");
            b.AppendLine("|---|---|---|---|---|---|---|");
            foreach (var f in _figures.Where(f => f.Store == store))
            {
                b.AppendLine(CultureInfo.InvariantCulture, $"| {f.Metric} | {f.Subject} | {f.Ceiling} | {f.RatioText} | {f.TargetText} | {f.MetText} | {f.Notes} |");
            }
            b.AppendLine();
            foreach (var d in _details.Where(d => d.Store == store))
            {
                b.AppendLine(CultureInfo.InvariantCulture, $"- {d.What}: {d.Text}");
            }
            b.AppendLine();
        }
        b.AppendLine(Methods);
        return b.ToString();
    }

    private const string Methods = """
        ## How each figure is taken

        One process hosts Gymwire in-process on Kestrel (`GymwireApp.CreateBuilder`/`Build`, the same composition as the `gymwire` executable) on 127.0.0.1, with bench-only endpoints mapped beside the real ones for the ceilings. A second process hosts the 100 webhook receivers (one Kestrel listening on 100 loopback ports, answering 200), and a third, at nice 10, R3's hostile receivers. wrk (Debian's package) is the HTTP load generator for M1-M3. Everything shares the machine's 2 cores: load generator, server, database and receivers.

        - **M1 polling**: `GET /api/zapier/triggers?type=new_member` with a real API key, on a gym of 100k members. The ceiling is a bare endpoint returning the same JSON bytes (captured from the real endpoint) with no auth and no database. wrk sweeps the connection count; the figure is the highest req/s whose p99 stays under 5 ms.
        - **M2**: the same endpoint with authentication and the rate limiter (on, with a limit never reached) against the same handler and query mapped with neither, at M1's connection count: after the sweep, pairs of runs of the two back to back (the order alternating), and the median of the pairs' own ratios, as for M6 isolation.
        - **Scale**: the same poll on a gym of 10k members and on one of 1M (200k with `--quick`), at M1's best connection count, in pairs back to back (the order alternating); the ratio is the median of the pairs' ratios of p99 latencies.
        - **M3 actions**: `POST /api/zapier/actions?type=create_lead` (lead row + `lead.created` outbox event in one transaction, with auth and limiter) against a bench endpoint doing one raw single-row `INSERT` into `leads` through the same HTTP stack; 16 connections.
        - **M4 delivery throughput**: 100 subscriptions, one per receiver; a batch of events is committed at once (each fans out to 100 deliveries of a 1 KiB body) and the time until the receivers counted every delivery is taken. The ceiling is a raw `HttpClient` POST loop with the same concurrency (256, Gymwire's default `Webhooks:MaxConcurrentDeliveries`), body and receivers.
        - **Memory**: peak RSS of the process hosting Gymwire during the M4 runs.
        - **M5 delivery latency**: events are committed one by one at a steady rate of half M4's throughput; each carries the monotonic clock reading taken just before its commit, and the receiver subtracts it from its own reading on arrival (CLOCK_MONOTONIC is shared by all processes). The baseline is the round-trip of raw POSTs at the same rate. The notes split Gymwire's figure by its own histograms, read in process with a `MeterListener` during the run: the dispatcher's lag (`gymwire.webhook.dispatcher.lag`: commit to the event's deliveries committed) and the attempt (`gymwire.webhook.attempt.duration`: request sent to response read); the rest is the worker's wake-up, and the claim for deliveries the dispatcher did not hand over already claimed.
        - **M6 backlog**: due deliveries are bulk-inserted as fan-out leaves them (one outbox event per 100, each delivery without a body of its own), as a backlog after an outage would look; the worker is woken, and the drain rate is compared with M4's. The database's growth per queued delivery (SQLite: pages in use; PostgreSQL: `pg_database_size`) is reported beside it.
        - **M6 isolation**: a 101st subscription whose receiver answers after 10 s; the M4 measurement to the other 100 is repeated, each run paired with a baseline run just before it with the 10 s subscription paused (`is_active` false), and the median of the pairs' own ratios taken, after one warm-up pair that is printed and not counted (the first runs with the extra endpoints active take Gymwire down paths M4's warm-up never took, and JIT-compile them; the bench prints each run's JIT time) (a pair runs back to back, so a change in the machine's speed hits both its runs alike; the medians of the two sides are the absolute figures). The baseline is taken there, not from M4, because the queue table has grown since M4 (M5 and the backlog ran in between). Before each run of a pair the queue table is put back in the same state: the extra endpoints' queued deliveries are deleted first (turning a webhook off only holds its queue, so neither run pays for earlier runs'), the healthy endpoints' delivered rows deleted, and on PostgreSQL the tables vacuumed.
        - **M6 outage**: a subscription whose receiver refuses connections (nothing listens on its port) gets a backlog of 36,000 deliveries (10,000 with `--quick`; an hour's outage at 10 events a second), queued as fan-out leaves them and due a minute before the measured run's, so they stand at the head of the due index; the worker then attempts, fails and pauses it, and the run starts once its pause has grown to 4 s (a few failed probes). The M4 measurement to the 100 healthy endpoints is repeated, each run paired with a baseline run just before it with the dead subscription inactive (its queue dropped), after one warm-up pair (target: lose <= 10 %).
        - **R3 hostile receivers** (issue 10): five more subscriptions whose receivers never answer, trickle a byte a second, stream 1 GiB, redirect to `169.254.169.254`, or answer 410, each getting every event beside the 10 s one; the M4 measurement to the 100 healthy endpoints is repeated, paired with baseline runs with the six paused as in M6 (target: keep >= 90 %), and the peak RSS meanwhile is reported beside M4's. The hostile receivers run in a process of their own at nice 10: a real one is remote and takes none of Gymwire's cores, and the 1 GiB one alone pushes megabytes into its socket per attempt before Gymwire's close reaches it, CPU that on this machine would otherwise be taken from Gymwire and the healthy receivers at equal priority. They still run on the same 2 cores whenever those have time left. `BENCH_HOSTILE_SHARED=1` puts them in the healthy receivers' process instead; the bench prints the CPU seconds of every process per run, and the attempts each hostile endpoint got.

        - **Metrics cost** (issue 28): M1's poll (at M1's best connection count, or 8 when M1 did not run; one run of the M1 duration) and M4's delivery run (on a gym of its own with 100 subscriptions, one per receiver), each with `Metrics:Prometheus:Enabled=true` (the OpenTelemetry SDK's meter provider with Gymwire's, ASP.NET Core's, HttpClient's, the runtime's and the process's instruments, and the Prometheus exporter on the API's port; no traces, no OTLP) and a scraper GETting `/metrics` every second from the server's start to the run's end, paired back to back with the same run with metrics off (the default: no meter provider at all). Metrics are switched on when the server starts, so each run gets a Gymwire of its own, stopped and started again on the same database (the in-process JIT and connection pools carry over) and warmed up the same way before it (1 s of polling; a fifth of an M4 run; then waits until the JIT has compiled nothing for a quarter of a second, at most 10 s, so that code run once per start, recompiled at the process's 30th start, is not compiled beside a measured run; each pair's line prints the wait and the methods its two measured runs JIT-compiled); before each M4 run the queue table is put back as in M6 isolation. The order within a pair alternates (off then on, on then off, ...), so that neither side is always the second; the figure is the median of the pairs' own ratios after one warm-up pair, as in M6 isolation (target: lose <= 3 %). The scrapes, the failed ones and the size of the last are in the notes, with the CPU time the bench process (the server: wrk and the receivers run in processes of their own) spent per request or delivery during the measured runs, medians on and off: a figure that contention on a shared machine disturbs less than throughput.

        Databases: SQLite in WAL mode (synchronous=NORMAL, Gymwire's setting) on a temporary file; PostgreSQL as a throwaway cluster from the system binaries (the test suite's `PostgresCluster`, with fsync, synchronous_commit and full_page_writes off), so PostgreSQL's write figures are not durable-commit figures.
        """;

    private static string LoadAverage()
    {
        try
        {
            return string.Join(", ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    private static string CpuModel()
    {
        try
        {
            return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
        }
        catch (IOException)
        {
            return "unknown CPU";
        }
    }

    private static string MemoryGiB()
    {
        try
        {
            var line = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            return (long.Parse(line[9..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1048576.0).ToString("0", CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return "?";
        }
    }
}
