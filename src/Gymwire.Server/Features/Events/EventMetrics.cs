using System.Diagnostics.Metrics;
using Gymwire.Infrastructure.Telemetry;

namespace Gymwire.Features.Events;

/// <summary>Events written to the outbox, counted when their transaction commits (meter <c>Gymwire.Events</c>).</summary>
public sealed class EventMetrics(IMeterFactory meters) : OneCounterMetrics(meters, MeterName, TypeTag,
    name: "gymwire.events.written", unit: "{event}", description: "Catalog events committed to the outbox, by event type.")
{
    public const string MeterName = "Gymwire.Events";
    public const string TypeTag = "gymwire.event.type";

    /// <summary>Counts committed events; the type is always a catalog name (Outbox.AddEvent refuses any other).</summary>
    public void Written(string type) => Count(type);
}
