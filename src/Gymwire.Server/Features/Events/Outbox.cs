using System.Text.Json;
using Gymwire.Data;
using Gymwire.Infrastructure;

namespace Gymwire.Features.Events;

public static class Outbox
{
    /// <summary>
    /// Adds a catalog event to the unit of work. It is written by the same <c>SaveChanges</c> (and so
    /// the same transaction) as the change it describes: both land or neither does.
    /// </summary>
    public static OutboxEvent AddEvent(this GymwireDbContext db, Guid gymId, string type, object data, DateTime occurredAt)
    {
        if (!EventCatalog.ByName.TryGetValue(type, out var eventType) || eventType.AliasOf is not null)
        {
            throw new ArgumentException($"'{type}' is not a canonical catalog event.", nameof(type));
        }

        var evt = new OutboxEvent
        {
            Id = Guid.CreateVersion7(occurredAt),
            GymId = gymId,
            Type = type,
            Data = JsonSerializer.Serialize(data, GymwireJson.Options),
            OccurredAt = occurredAt,
            TraceContext = EventTrace.Current(),
        };
        db.OutboxEvents.Add(evt);
        return evt;
    }
}
