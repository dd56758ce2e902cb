using System.Diagnostics.Metrics;

namespace Gymwire.Features.Events;

/// <summary>Events written to the outbox, counted when their transaction commits (meter <c>Gymwire.Events</c>).</summary>
public sealed class EventMetrics
{
    public const string MeterName = "Gymwire.Events";
    public const string TypeTag = "gymwire.event.type";

    private readonly Counter<long> _written;

    public EventMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _written = meter.CreateCounter<long>("gymwire.events.written", "{event}", "Catalog events committed to the outbox, by event type.");
    }

    public bool Enabled => _written.Enabled;

    /// <summary>Counts committed events; the type is always a catalog name (Outbox.AddEvent refuses any other).</summary>
    public void Written(string type) => _written.Add(1, new KeyValuePair<string, object?>(TypeTag, type));
}
