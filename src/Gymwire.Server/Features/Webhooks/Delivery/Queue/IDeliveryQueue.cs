using Gymwire.Data;
using Gymwire.Features.Events;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// The delivery queue: the <c>webhook_deliveries</c> rows that wait for an attempt, and every statement that moves
/// them. One implementation per store (<see cref="SqliteDeliveryQueue"/>, <see cref="PostgresDeliveryQueue"/>), so
/// that nothing else in the delivery pipeline depends on which store it runs on (docs/architecture.md).
/// </summary>
public interface IDeliveryQueue
{
    /// <summary>How many attempt batches may be recorded at once (<see cref="AttemptRecorder"/>).</summary>
    int RecordWriters { get; }

    /// <summary>
    /// Fans out one batch of undispatched outbox events (at most <paramref name="maxEvents"/>, oldest first, none
    /// another node is fanning out): <paramref name="fanOut"/> makes their deliveries, which are inserted with the
    /// events marked dispatched, in one transaction. Returns how many events and deliveries. A delivery's subscription
    /// deleted meanwhile fails the insert (<see cref="ErrorHandling.IsForeignKeyViolation"/>): nothing is written, and the next
    /// fan-out leaves it out.
    /// </summary>
    Task<(int Events, int Deliveries)> EnqueueAsync(int maxEvents, FanOut fanOut, CancellationToken ct);

    /// <summary>
    /// Inside <see cref="EnqueueAsync"/>'s fan-out: the new delivery, due now, is inserted claimed by this node, as
    /// <see cref="ClaimAsync"/> would claim it, for a worker on this node to attempt without a claim of its own
    /// (<see cref="DeliverySlots.HandOver"/>).
    /// </summary>
    void ClaimNew(WebhookDelivery delivery);

    /// <summary>
    /// Claims up to <paramref name="limit"/> due deliveries, oldest first, for <see cref="WebhookOptions.EffectiveClaimLease"/>,
    /// leaving out the given endpoints and deliveries and the endpoints paused or being probed (their stored
    /// <see cref="EndpointHealth"/>), and reads them with their subscriptions. A claim moves a delivery's due time to
    /// the end of its lease, so an attempt that dies with its worker is due again then.
    /// </summary>
    Task<IReadOnlyList<ClaimedDelivery>> ClaimAsync(int limit, Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct);

    /// <summary>
    /// Gives claims back without an attempt (shutdown, an endpoint at its cap or paused, a probe lost to another node): each
    /// is due again at its <see cref="ClaimedDelivery.DueAt"/>, its due time before the claim unless the caller moved it
    /// (those held behind a won probe are due at the probe's end).
    /// </summary>
    Task ReleaseAsync(IReadOnlyCollection<ClaimedDelivery> deliveries, CancellationToken ct);

    /// <summary>
    /// Takes the probe of a failing endpoint whose pause has ended, until the claim lease ends: one conditional update
    /// of its subscription, true for exactly one caller in the cluster; the others leave the endpoint out. The probe's
    /// recorded outcome ends it (a success, or a failure that pauses the endpoint again); a probe not recorded (its
    /// node stopped or died mid-attempt) lapses with its lease, like its delivery's claim. Returns the probe's end for
    /// the caller that won it (the endpoint's other queued deliveries are due then, out of the claims' way, until the
    /// probe's record moves them on), null for the others.
    /// </summary>
    Task<DateTime?> ClaimProbeAsync(Guid subscriptionId, CancellationToken ct);

    /// <summary>
    /// Gives back every claim still held by a node known to be dead (<see cref="Cluster.ClusterHeartbeat"/>), in one
    /// conditional statement: each is due again at its due time before the claim. Several nodes running it at once
    /// release each claim once. Returns how many were released.
    /// </summary>
    Task<int> ReleaseClaimsOfAsync(Guid node, CancellationToken ct);

    /// <summary>
    /// Run by the worker at start, before its first claim: gives back the claims no live process can hold (a killed
    /// previous process's, where the store serves one node), so that a restart redelivers at once. Where other nodes'
    /// claims may be live nothing is released here (a dead node's are released by the heartbeat). Returns how many.
    /// </summary>
    Task<int> ReleaseLeftoverClaimsAsync(CancellationToken ct);

    /// <summary>
    /// Records finished attempts in one transaction: <paramref name="decide"/> works out each one's effect from its
    /// delivery's stored state and its (tracked) subscription; the attempt rows and the deliveries' next states are
    /// written, and the queued deliveries of subscriptions the batch deactivated are ended; those of an endpoint the batch
    /// paused, or paused for longer, are due at the pause's end.
    /// </summary>
    Task<RecordedBatch> CompleteAsync(IReadOnlyList<AttemptRecord> records, DecideOutcome decide, CancellationToken ct);

    /// <summary>When the next delivery that could be claimed (the given ones, and paused or probed endpoints, left out) is due, if any.</summary>
    Task<DateTime?> NextDueAsync(Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct);

    /// <summary>
    /// How many deliveries are due now (pending or retrying, due time passed; a claimed one is due at its lease's end),
    /// the oldest due time among them, and how many active subscriptions are paused, and failing but not paused. Read
    /// by <see cref="DeliveryGauges"/> every few seconds, never per scrape or per claim.
    /// </summary>
    Task<QueueDepth> DepthAsync(CancellationToken ct);

    /// <summary>Reads an unfinished delivery as a claim would, without claiming it (a test send has no due time).</summary>
    Task<ClaimedDelivery?> ReadUnfinishedAsync(Guid deliveryId, CancellationToken ct);

    // The owner's operations on db. None touches a delivery a worker has claimed now.

    /// <summary>
    /// In the caller's transaction: the owner turned the webhook off, so its queued deliveries (test sends excepted)
    /// lose their due time and no worker claims them; they keep their status, attempt count and last error. Returns how many.
    /// </summary>
    Task<int> HoldAsync(GymwireDbContext db, Guid gymId, Guid subscriptionId, CancellationToken ct);

    /// <summary>In the caller's transaction: the owner turned the webhook on again, so the deliveries <see cref="HoldAsync"/> held are due now. Returns how many.</summary>
    Task<int> ResumeAsync(GymwireDbContext db, Guid gymId, Guid subscriptionId, CancellationToken ct);

    /// <summary>
    /// In the caller's transaction (on SQLite after the write lock): a fresh round of attempts (the whole retry schedule
    /// again, under the same webhook-id) for the deliveries of the webhook created at or after <paramref name="createdSince"/>
    /// that are <paramref name="statuses"/> (one delivery when <paramref name="deliveryId"/> is given), due at
    /// <paramref name="due"/>. Returns how many.
    /// </summary>
    Task<int> RedeliverAsync(GymwireDbContext db, Guid gymId, Guid subscriptionId, Guid? deliveryId, DateTime createdSince, string[] statuses,
        DateTime due, CancellationToken ct);
}

/// <summary>
/// Makes the deliveries of a batch of outbox events. On PostgreSQL <paramref name="db"/> is inside the enqueue's
/// transaction, which holds the events; on SQLite the transaction begins after it, so that nothing waits for its work.
/// </summary>
public delegate Task<(IReadOnlyList<WebhookDelivery> Deliveries, IReadOnlyList<long> Dispatched)> FanOut(
    GymwireDbContext db, IReadOnlyList<OutboxEvent> events, CancellationToken ct);

/// <summary>
/// One finished attempt's effect, or null when its delivery is gone or already finished; it may change the tracked
/// <paramref name="subscription"/> (its health), which is then saved with the batch.
/// </summary>
public delegate (DeliveryOutcome Delivery, WebhookAttempt? Attempt)? DecideOutcome(AttemptRecord record, StoredDelivery delivery, WebhookSubscription subscription);

/// <summary>
/// What a batch of records produced: each record's outcome (in order), the subscriptions it deactivated, and how many
/// deliveries it ended undeliverable (those recorded so, attempted or not, and the deactivated subscriptions' queued ones).
/// </summary>
public sealed record RecordedBatch(AttemptOutcome?[] Outcomes, IReadOnlyList<WebhookSubscription> Deactivated, int Undeliverable);

/// <summary>What recording an attempt needs of a delivery's stored state (not its payload).</summary>
public sealed record StoredDelivery(Guid Id, string Status, int AttemptCount, DateTime? LastAttemptAt, int? LastStatusCode, string? LastError);

/// <summary>
/// A delivery a worker has claimed, with everything its attempt needs: the delivery, its body, its subscription and
/// the number of attempts already recorded, read together with the claim (a few queries for a whole batch).
/// <see cref="StoredPayload"/> is the body stored with a test send (null for an event's delivery, whose body is built
/// from its outbox event).
/// </summary>
public sealed record ClaimedDelivery(
    Guid Id,
    Guid GymId,
    Guid SubscriptionId,
    string Event,
    string? StoredPayload,
    bool IsTest,
    int AttemptCount,
    DateTime? LastAttemptAt,
    int AttemptsRecorded,
    string Url,
    bool SubscriptionActive,
    string SecretProtected,
    string? PreviousSecretProtected,
    DateTime? PreviousSecretExpiresAt)
{
    /// <summary>
    /// When the delivery was due before its claim moved it to the end of the lease (null for a test send, which is
    /// attempted without a claim): a claim given back without an attempt is due at this time again.
    /// </summary>
    public DateTime? DueAt { get; init; }

    /// <summary>When the delivery was created (the dispatcher's fan-out, a moment after its event's commit).</summary>
    public DateTime CreatedAt { get; init; }

    /// <summary>The outbox event the delivery sends (null for a test send, whose body is stored with it).</summary>
    public Guid? EventId { get; init; }

    /// <summary>
    /// The body to send, UTF-8 (the deliveries of one event claimed together share one array: never write to it).
    /// Null only when the delivery's outbox event has been deleted by hand, or its data made not JSON (<see cref="AttemptRecord.NoBody"/>).
    /// </summary>
    public byte[]? Body { get; init; }

    /// <summary>
    /// The trace context of the operation that wrote the delivery's event (<see cref="OutboxEvent.TraceContext"/>),
    /// read with the claim; the attempt's span links to it. Null for a test send and for events written outside a trace.
    /// </summary>
    public string? TraceContext { get; init; }

    /// <summary>The subscription's stored health, read with the claim.</summary>
    public EndpointHealth Health { get; init; }

    /// <summary>
    /// For a delivery the dispatcher handed over before its fan-out committed: true once the delivery's row is
    /// committed, false if the fan-out was not (the event is fanned out again, and the delivery sent again under the
    /// same id). Its attempt is recorded, or its claim given back, only after this. Null for one read from the queue.
    /// </summary>
    public Task<bool>? Committed { get; init; }

    /// <summary>For a failing endpoint's probe: the probe's end, as <see cref="IDeliveryQueue.ClaimProbeAsync"/> stored it. Null otherwise.</summary>
    public DateTime? ProbeEnd { get; init; }

    /// <summary>For a delivery handed over before its fan-out's insert: the worker marks it here once sent or set aside. Null otherwise.</summary>
    public HandOverSends? Sends { get; init; }

    /// <summary>Tells the dispatcher that waits for this handed-over delivery's send that it is on its way, or set aside.</summary>
    public void MarkStarted() => Sends?.Started(Id);
}

/// <summary>A finished attempt waiting to be recorded; <see cref="Attempt"/> is null when the subscription was inactive and nothing was sent.</summary>
public sealed record AttemptRecord(ClaimedDelivery Delivery, WebhookAttempt? Attempt, TimeSpan? RetryAfter, DateTime Finished)
{
    /// <summary>The receiver answered 2xx.</summary>
    public bool Succeeded => Attempt?.StatusCode is >= 200 and < 300;

    /// <summary>
    /// A worker's attempt (claimed, so it has a due time) that reached for the endpoint, which moves its
    /// <see cref="EndpointHealth"/>; a test send is not admitted by the endpoint policy, and an attempt with no body
    /// sent nothing, so both leave it as it is.
    /// </summary>
    public bool CountsForHealth => Attempt is not null && Delivery.DueAt is not null && !NoBody;

    /// <summary>The delivery had no body to send (<see cref="NoBodyError"/>): its attempt sent nothing, and none ever will.</summary>
    public bool NoBody => Attempt is not null && Delivery.Body is null;

    public const string NoBodyError = "The delivery's event is missing from outbox_events, or its data there is not JSON (changed by hand?): "
        + "there is no body to send, so the delivery ends here; redeliver it once the event is back";
}

/// <summary>The due queue as <see cref="IDeliveryQueue.DepthAsync"/> read it.</summary>
public sealed record QueueDepth(long Due, DateTime? OldestDueAt, long PausedSubscriptions, long FailingSubscriptions);

/// <summary>What one recorded attempt produced, and its endpoint's stored health after it.</summary>
public sealed record AttemptOutcome(WebhookAttempt Attempt, string DeliveryStatus, EndpointHealth Health);
