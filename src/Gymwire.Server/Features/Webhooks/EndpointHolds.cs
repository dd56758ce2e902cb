using System.Collections.Concurrent;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// The paused and slow endpoints on this node and the time their queued deliveries are held until (their
/// <c>next_attempt_at</c>): the end of the pause, or, while a probe or a slow endpoint's one attempt is out, the end
/// of its claim (a slow endpoint's attempt then lets the next held one go). The delivery worker
/// sets them (<see cref="DeliveryWorker"/>); fan-out gives a held subscription's new deliveries the same due time.
/// Held deliveries are out of the due index's head: left due, every claim on every node would walk past each of them
/// for as long as the endpoint is down, a cost that grows with the outage. And every held delivery has that one exact
/// time, so the next move of the hold finds them by the due index, not by a walk of the subscription's deliveries.
/// Where fan-out runs on other nodes (the roles split, docs/configuration.md), their new deliveries to a paused endpoint are
/// due at once and this node skips them, as it did before holds, until the endpoint answers.
/// </summary>
public sealed class EndpointHolds
{
    private readonly ConcurrentDictionary<Guid, DateTime> _until = new();

    /// <summary>When a new delivery to the subscription is due: now, or the end of its hold.</summary>
    public DateTime DueAt(Guid subscriptionId, DateTime now) => _until.TryGetValue(subscriptionId, out var until) && until > now ? until : now;

    internal bool TryGet(Guid subscriptionId, out DateTime until) => _until.TryGetValue(subscriptionId, out until);

    internal void Set(Guid subscriptionId, DateTime until) => _until[subscriptionId] = until;

    internal bool TryAdd(Guid subscriptionId, DateTime until) => _until.TryAdd(subscriptionId, until);

    internal bool TryRemove(Guid subscriptionId, out DateTime until) => _until.TryRemove(subscriptionId, out until);
}
