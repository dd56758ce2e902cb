namespace Gymwire.Features.Events;

/// <summary>
/// A catalog event, written in the same transaction as the change that caused it (transactional
/// outbox). <see cref="Sequence"/> orders events; the webhook dispatcher fans out undispatched ones.
/// </summary>
public sealed class OutboxEvent
{
    public long Sequence { get; set; }
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    /// <summary>Canonical catalog name, e.g. <c>member.joined</c>.</summary>
    public required string Type { get; set; }
    /// <summary>The event's <c>data</c> object as JSON text.</summary>
    public required string Data { get; set; }
    public DateTime OccurredAt { get; set; }
    /// <summary>Set when the dispatcher has created the deliveries for this event.</summary>
    public DateTime? DispatchedAt { get; set; }
    /// <summary>
    /// The W3C trace context of the traced operation that wrote the event (<see cref="EventTrace"/>), which its delivery
    /// attempts' spans link to; null when it was written outside a recorded trace.
    /// </summary>
    public string? TraceContext { get; set; }
}
