using System.Globalization;
using Gymwire.Bench;

// Gymwire's benchmarks: see docs/benchmarks.md for what each figure means. Run through scripts/bench.
if (args.Length > 0 && args[0] == "receivers")
{
    return await ReceiversProcess.RunAsync(args[1..]);
}

var options = BenchOptions.Parse(args);
PgStatements.Configure();
var report = new Report(options);
report.Begin();
await using (var receivers = await Receivers.StartAsync(100))
// R3's hostile receivers have a process of their own, at a lower priority (BENCH_HOSTILE_SHARED=1: in the healthy
// receivers' process instead, at the same priority as everything else).
await using (var hostile = options.HostileShared ? null : await Receivers.StartAsync(1, niceness: 10))
{
    foreach (var store in options.Stores)
    {
        Console.WriteLine($"== {store} ==");
        var bench = new StoreBench(store, options, receivers, hostile ?? receivers, report);
        await bench.RunAsync();
    }
}
Wrk.DeleteScripts();
report.End();
Console.WriteLine(report.ConsoleTable());
if (options.Output is not null)
{
    await File.WriteAllTextAsync(options.Output, report.Markdown());
    Console.WriteLine($"wrote {options.Output}");
}
return 0;

namespace Gymwire.Bench
{
    public enum BenchPart
    {
        Polling,
        Actions,
        Delivery,
        /// <summary>M4 alone (the delivery part's throughput runs, without M5 and M6): for A/B pairs of the delivery path.</summary>
        M4,
        /// <summary>M4, then M5 at half of M4's rate (without M6): for A/B pairs of the delivery latency.</summary>
        M5,
        /// <summary>M1 and M4 with the Prometheus endpoint on and scraped, paired with runs with metrics off.</summary>
        Metrics,
        /// <summary>D1: the owner dashboard's webhook pages with a million deliveries (SQLite).</summary>
        Dashboard,
    }

    public sealed record BenchOptions(bool Quick, string[] Stores, string? Output, string Command, BenchPart[] Parts)
    {
        public bool Includes(BenchPart part) => Parts.Contains(part);

        /// <summary>R3's hostile receivers in the healthy receivers' process (BENCH_HOSTILE_SHARED=1) instead of their own.</summary>
        public bool HostileShared => Environment.GetEnvironmentVariable("BENCH_HOSTILE_SHARED") == "1";

        public int Runs => Quick ? 1 : 3;
        /// <summary>M6 isolation, R3 and the metrics' cost: pairs of a baseline and a measured run (their spread is wider than M4's).</summary>
        public int PairedRuns => Quick ? 1 : 7;
        public TimeSpan Duration => TimeSpan.FromSeconds(Quick ? 2 : 3);
        /// <summary>
        /// M3's load on each side before it is measured: a create_lead runs far more of Gymwire's code than its ceiling,
        /// and the runtime's tiered compilation takes seconds of load to finish optimizing it.
        /// </summary>
        public TimeSpan ActionsWarmUp => TimeSpan.FromSeconds(Quick ? 3 : 10);
        public int[] Connections => Quick ? [4, 16] : [2, 8, 32];
        public int M1Members => 100_000;
        public int ScaleSmall => 10_000;
        public int ScaleLarge => Quick ? 200_000 : 1_000_000;
        public int EventsPerRun => Quick ? 50 : 100;
        public int Backlog => Quick ? 10_000 : 100_000;
        /// <summary>An hour's outage at 10 events a second.</summary>
        public int OutageBacklog => Quick ? 10_000 : 36_000;
        public TimeSpan LatencyDuration => TimeSpan.FromSeconds(Quick ? 4 : 10);

        public static BenchOptions Parse(string[] args)
        {
            var quick = args.Contains("--quick");
            string[] stores = ["sqlite", "postgres"];
            string? output = null;
            var parts = Enum.GetValues<BenchPart>();
            for (var i = 0; i < args.Length; i++)
            {
                if (args[i] == "--store" && i + 1 < args.Length)
                {
                    stores = args[++i] == "both" ? stores : [args[i]];
                }
                else if (args[i] == "--only" && i + 1 < args.Length)
                {
                    parts = args[++i].Split(',').Select(p => Enum.Parse<BenchPart>(p, ignoreCase: true)).ToArray();
                }
                else if (args[i] == "--out" && i + 1 < args.Length)
                {
                    output = args[++i];
                }
            }
            var command = "scripts/bench" + (args.Length > 0 ? " " + string.Join(' ', args.Where(a => a != "--out" && !a.EndsWith(".md", StringComparison.Ordinal))) : "");
            _ = CultureInfo.InvariantCulture;
            return new BenchOptions(quick, stores, output, command.Trim(), parts);
        }
    }
}
