using System.Collections.Concurrent;
using System.Diagnostics.Tracing;

namespace Gymwire.Bench;

/// <summary>
/// BENCH_ALLOCATIONS=1: the runtime's allocation samples (one about every 100 KB allocated, with the type that crossed
/// the mark) summed by type while it listens, to see which types a run allocates most. Sampled, so a type's figure is
/// an estimate that grows more exact with the bytes allocated.
/// </summary>
internal sealed class AllocationTypes : EventListener
{
    private readonly ConcurrentDictionary<string, long> _bytes = new(StringComparer.Ordinal);

    public static bool Enabled => Environment.GetEnvironmentVariable("BENCH_ALLOCATIONS") == "1";

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == "Microsoft-Windows-DotNETRuntime")
        {
            // The GC keyword at verbose level carries the allocation ticks.
            EnableEvents(source, EventLevel.Verbose, (EventKeywords)0x1);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        if (e.EventName?.StartsWith("GCAllocationTick", StringComparison.Ordinal) != true || e.PayloadNames is null)
        {
            return;
        }
        var type = e.Payload![e.PayloadNames.IndexOf("TypeName")] as string ?? "?";
        var amount = e.PayloadNames.IndexOf("AllocationAmount64") is >= 0 and var i ? Convert.ToInt64(e.Payload[i]) : Convert.ToInt64(e.Payload[e.PayloadNames.IndexOf("AllocationAmount")]);
        _bytes.AddOrUpdate(type, amount, (_, sum) => sum + amount);
    }

    /// <summary>The types that took the most bytes, each with its bytes per <paramref name="unit"/> of <paramref name="units"/>.</summary>
    public string Top(int count, long units, string unit) => string.Join(Environment.NewLine, _bytes.OrderByDescending(kv => kv.Value).Take(count)
        .Select(kv => $"    {kv.Value / (double)units,10:N0} B per {unit}  {kv.Key}"));
}
