using System.Diagnostics.Metrics;

namespace Gymwire.Infrastructure.Telemetry;

/// <summary>
/// The metrics of an area that counts one thing by one bounded tag (an outcome, an event type): the area's own meter
/// with a single counter. The subclass names the meter, the counter and what it counts with.
/// </summary>
public abstract class OneCounterMetrics(IMeterFactory meters, string meterName, string tag, string name, string unit, string description)
{
    private readonly Counter<long> _counter = meters.Create(meterName).CreateCounter<long>(name, unit, description);

    /// <summary>Whether anything listens (so a caller can skip work that only feeds the counter).</summary>
    public bool Enabled => _counter.Enabled;

    /// <summary>Counts one, tagged with <paramref name="value"/>.</summary>
    protected void Count(string value) => _counter.Add(1, new KeyValuePair<string, object?>(tag, value));
}
