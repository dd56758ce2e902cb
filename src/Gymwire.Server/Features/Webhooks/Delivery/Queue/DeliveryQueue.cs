using System.Text;
using Gymwire.Data;
using Gymwire.Features.Cluster;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// What both stores' queues share: the statements EF Core writes the same way for both, around the few that differ
/// (how a write transaction begins, how events and deliveries are claimed, how the due index is read).
/// </summary>
public abstract class DeliveryQueue(IServiceScopeFactory scopes, IOptions<WebhookOptions> options, TimeProvider clock, ThisNode node) : IDeliveryQueue
{
    /// <summary>The queue for the store <c>Database:Provider</c> names.</summary>
    public static IDeliveryQueue ForConfiguredStore(IServiceProvider services) =>
        services.GetRequiredService<IOptions<DatabaseOptions>>().Value.ProviderKind == DatabaseProvider.Postgres
            ? ActivatorUtilities.CreateInstance<PostgresDeliveryQueue>(services)
            : ActivatorUtilities.CreateInstance<SqliteDeliveryQueue>(services);

    protected TimeProvider Clock => clock;

    protected TimeSpan Lease => options.Value.EffectiveClaimLease;

    /// <summary>This process's node id, recorded on every claim it makes.</summary>
    protected Guid Node => node.Id;

    public abstract int RecordWriters { get; }

    /// <summary>Rows per statement in the bulk writes (<see cref="DeliveryRows"/>).</summary>
    public abstract int RowsPerStatement { get; }

    public abstract Task<IReadOnlyList<ClaimedDelivery>> ClaimAsync(int limit, Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct);

    public abstract Task<DateTime?> NextDueAsync(Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct);

    /// <summary>Begins a write transaction (after the store's own lock, if it has one).</summary>
    protected abstract ValueTask<WriteTransaction> BeginWriteAsync(GymwireDbContext db, CancellationToken ct);

    /// <summary>
    /// Inside a record's write transaction, before its subscriptions are read: locks <paramref name="always"/> (a failed
    /// attempt's endpoint, whose health the batch changes, and one whose delivery was not sent because it was off when
    /// read, whose state now decides that delivery's) and those of <paramref name="ifNotHealthy"/> that are not healthy,
    /// in key order, so that two nodes' batches, or a batch and the owner's enable, change an endpoint one after the other.
    /// </summary>
    protected abstract Task LockHealthAsync(GymwireDbContext db, List<Guid> always, List<Guid> ifNotHealthy, CancellationToken ct);

    /// <summary>
    /// Inside a write transaction: the endpoint's queued, unclaimed deliveries due before <paramref name="before"/> or at
    /// exactly <paramref name="at"/> (<see cref="DateTime.MinValue"/> for neither) are due at <paramref name="to"/>
    /// instead. Never waits for a row another transaction holds: one it skips stays where it is.
    /// </summary>
    protected abstract Task MoveQueuedAsync(GymwireDbContext db, Guid subscriptionId, DateTime before, DateTime at, DateTime to, DateTime now, CancellationToken ct);

    /// <summary>
    /// Reads up to <paramref name="limit"/> undispatched events, and begins the transaction that dispatches them where it
    /// must hold them while they are fanned out (none when there are none); where not (null), it begins after the fan-out.
    /// </summary>
    protected abstract Task<(List<Events.OutboxEvent> Events, WriteTransaction? Write)> TakeUndispatchedAsync(GymwireDbContext db, int limit, CancellationToken ct);

    protected AsyncServiceScope CreateScope(out GymwireDbContext db)
    {
        var scope = scopes.CreateAsyncScope();
        db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        return scope;
    }

    public async Task<(int Events, int Deliveries)> EnqueueAsync(int maxEvents, FanOut fanOut, CancellationToken ct)
    {
        await using var scope = CreateScope(out var db);
        var (events, write) = await TakeUndispatchedAsync(db, maxEvents, ct);
        if (events.Count == 0)
        {
            return (0, 0);
        }
        try
        {
            var (deliveries, dispatched) = await fanOut(db, events, ct);
            write ??= await BeginWriteAsync(db, ct);
            var now = clock.GetUtcNow().UtcDateTime;
            await DeliveryRows.InsertAsync(db, RowsPerStatement, deliveries, ct);
            await db.OutboxEvents.Where(e => dispatched.Contains(e.Sequence)).ExecuteUpdateAsync(u => u.SetProperty(e => e.DispatchedAt, now), ct);
            await write.CommitAsync(ct);
            return (dispatched.Count, deliveries.Count);
        }
        finally
        {
            if (write is not null)
            {
                await write.DisposeAsync();
            }
        }
    }

    public void ClaimNew(WebhookDelivery delivery)
    {
        var due = delivery.NextAttemptAt;
        delivery.LockedUntil = delivery.NextAttemptAt = clock.GetUtcNow().UtcDateTime + Lease;
        delivery.ClaimedBy = Node;
        delivery.DueBeforeClaim = due;
    }

    /// <summary>
    /// One statement per due time (a claim's deliveries of one event share theirs), in one write transaction.
    /// </summary>
    public async Task ReleaseAsync(IReadOnlyCollection<ClaimedDelivery> deliveries, CancellationToken ct)
    {
        await using var scope = CreateScope(out var db);
        await using var write = await BeginWriteAsync(db, ct);
        foreach (var group in deliveries.GroupBy(d => d.DueAt))
        {
            var ids = group.Select(d => d.Id).ToList();
            var released = db.WebhookDeliveries.Where(d => ids.Contains(d.Id));
            _ = group.Key is not { } due
                ? await released.ExecuteUpdateAsync(s => s.SetProperty(d => d.LockedUntil, (DateTime?)null).SetProperty(d => d.ClaimedBy, (Guid?)null), ct)
                : await released.ExecuteUpdateAsync(s => s.SetProperty(d => d.LockedUntil, (DateTime?)null).SetProperty(d => d.ClaimedBy, (Guid?)null).SetProperty(d => d.NextAttemptAt, due), ct);
        }
        await write.CommitAsync(ct);
    }

    public async Task<DateTime?> ClaimProbeAsync(Guid subscriptionId, CancellationToken ct)
    {
        await using var scope = CreateScope(out var db);
        var now = clock.GetUtcNow().UtcDateTime;
        var threshold = options.Value.FailingEndpointThreshold;
        // In whole microseconds, as PostgreSQL stores it: the probe's record compares the stored end with this value.
        var until = now + Lease;
        until = until.AddTicks(-(until.Ticks % TimeSpan.TicksPerMicrosecond));
        await using var write = await BeginWriteAsync(db, ct);
        var won = await db.WebhookSubscriptions
            .Where(s => s.Id == subscriptionId && s.ConsecutiveFailures >= threshold
                && (s.PausedUntil == null || s.PausedUntil <= now) && (s.ProbeClaimedUntil == null || s.ProbeClaimedUntil <= now))
            .ExecuteUpdateAsync(u => u.SetProperty(s => s.ProbeClaimedUntil, until), ct) == 1;
        if (won)
        {
            // While the probe is out (up to the attempt's timeout), the endpoint's other deliveries wait for its end out
            // of the claims' way, as during a pause; its record moves them on (CompleteAsync).
            await MoveQueuedAsync(db, subscriptionId, before: until, at: DateTime.MinValue, to: until, now, ct);
        }
        await write.CommitAsync(ct);
        return won ? until : null;
    }

    public Task<int> ReleaseClaimsOfAsync(Guid node, CancellationToken ct) => ReleaseHeldAsync(node, ct);

    public abstract Task<int> ReleaseLeftoverClaimsAsync(CancellationToken ct);

    /// <summary>
    /// One statement: the claims still held (lease not ended) by <paramref name="node"/>, or by any node when null, are
    /// due again at their due time before the claim (now for a claim made before that was recorded). A held claim's due
    /// time is its lease's end, so the due index finds them (<see cref="ApplyPlannerSettingsAsync"/>).
    /// </summary>
    private protected async Task<int> ReleaseHeldAsync(Guid? node, CancellationToken ct)
    {
        await using var scope = CreateScope(out var db);
        var now = clock.GetUtcNow().UtcDateTime;
        await using var write = await BeginWriteAsync(db, ct);
        await ApplyPlannerSettingsAsync(db, ct);
        var held = db.WebhookDeliveries.Where(d => (d.Status == DeliveryStatus.Pending || d.Status == DeliveryStatus.Retrying)
            && d.NextAttemptAt > now && d.LockedUntil > now && d.ClaimedBy != null);
        if (node is { } id)
        {
            held = held.Where(d => d.ClaimedBy == id);
        }
        var released = await held.ExecuteUpdateAsync(s => s
            .SetProperty(d => d.NextAttemptAt, d => d.DueBeforeClaim ?? (DateTime?)now)
            .SetProperty(d => d.LockedUntil, (DateTime?)null)
            .SetProperty(d => d.ClaimedBy, (Guid?)null), ct);
        await write.CommitAsync(ct);
        return released;
    }

    /// <summary>Inside a write transaction, before a statement that should find its rows through the due index: the store's planner settings for it, if any.</summary>
    protected virtual Task ApplyPlannerSettingsAsync(GymwireDbContext db, CancellationToken ct) => Task.CompletedTask;

    /// <summary>
    /// A subscription's health (failing since, endpoint health) is tracked and saved by EF Core, and only when it
    /// changes, so a healthy endpoint's successes write nothing to it (nor is it tracked). When the batch has failures,
    /// the subscriptions it changes are locked first (<see cref="LockHealthAsync"/>); a save orders its updates by key,
    /// so two batches changing the same subscriptions wait for each other instead of deadlocking.
    /// </summary>
    public async Task<RecordedBatch> CompleteAsync(IReadOnlyList<AttemptRecord> records, DecideOutcome decide, CancellationToken ct)
    {
        await using var scope = CreateScope(out var db);
        var outcomes = new AttemptOutcome?[records.Count];
        await using var write = await BeginWriteAsync(db, ct);
        var deliveryIds = records.Select(r => r.Delivery.Id).Distinct().ToList();
        var subscriptionIds = records.Select(r => r.Delivery.SubscriptionId).Distinct().ToList();
        var failed = records.Where(r => r.Attempt is not null && !r.Succeeded).Select(r => r.Delivery.SubscriptionId).Distinct().ToList();
        var unsent = records.Where(r => r.Attempt is null).Select(r => r.Delivery.SubscriptionId).Distinct().ToList();
        if (failed.Count > 0 || unsent.Count > 0)
        {
            await LockHealthAsync(db, [.. failed.Union(unsent)], [.. records.Where(r => r.Succeeded).Select(r => r.Delivery.SubscriptionId).Distinct()], ct);
        }
        var deliveries = await db.WebhookDeliveries.AsNoTracking().Where(d => deliveryIds.Contains(d.Id))
            .Select(d => new StoredDelivery(d.Id, d.Status, d.AttemptCount, d.LastAttemptAt, d.LastStatusCode, d.LastError)).ToDictionaryAsync(d => d.Id, ct);
        var subscriptions = await db.WebhookSubscriptions.AsNoTracking().Where(s => subscriptionIds.Contains(s.Id)).ToDictionaryAsync(s => s.Id, ct);
        // Tracked, so that what the batch changes is saved, only where the batch can change something: an endpoint with
        // a failure in it, or one not healthy now. A success leaves a healthy endpoint as it was, and most batches are that.
        foreach (var subscription in subscriptions.Values.Where(s => failed.Contains(s.Id) || s.Health != EndpointHealth.Healthy || s.FailingSince is not null))
        {
            db.Attach(subscription);
        }
        var wasActive = subscriptions.Values.Where(s => s.IsActive).Select(s => s.Id).ToHashSet();
        // The health before this batch of the endpoints that are paused or probed, or may become so (a failure).
        var before = subscriptions.Values.Where(s => failed.Contains(s.Id) || s.ProbeClaimedUntil is not null)
            .Select(s => (Subscription: s, s.PausedUntil, s.ProbeClaimedUntil)).ToList();
        var changed = new List<DeliveryOutcome>(records.Count);
        var attempts = new List<WebhookAttempt>(records.Count);
        for (var i = 0; i < records.Count; i++)
        {
            var d = records[i].Delivery;
            if (deliveries.GetValueOrDefault(d.Id) is not { } stored || subscriptions.GetValueOrDefault(d.SubscriptionId) is not { } subscription
                || decide(records[i], stored, subscription) is not { } change)
            {
                continue;
            }
            // A delivery recorded twice in one batch (it cannot be claimed twice, but be safe) counts on from the first.
            deliveries[d.Id] = stored with { Status = change.Delivery.Status, AttemptCount = change.Delivery.AttemptCount, LastAttemptAt = change.Delivery.LastAttemptAt, LastStatusCode = change.Delivery.LastStatusCode, LastError = change.Delivery.LastError };
            changed.Add(change.Delivery);
            if (change.Attempt is { } attempt)
            {
                attempts.Add(attempt);
                outcomes[i] = new AttemptOutcome(attempt, change.Delivery.Status, subscription.Health);
            }
        }
        await DeliveryRows.UpdateOutcomesAsync(db, RowsPerStatement, changed, ct);
        await DeliveryRows.InsertAttemptsAsync(db, RowsPerStatement, attempts, ct);
        await db.SaveChangesAsync(ct);
        await MoveHeldAsync(db, before, ct);
        var deactivated = subscriptions.Values.Where(s => !s.IsActive && wasActive.Contains(s.Id)).ToList();
        // A subscription this batch deactivated (410, or failing too long) gets none of its queued deliveries sent.
        var dropped = await DeliveryRows.DropQueuedAsync(db, deactivated.Select(s => s.Id).ToList(), records.Max(r => r.Finished), ct);
        await write.CommitAsync(ct);
        return new RecordedBatch(outcomes, deactivated, changed.Count(c => c.Status == DeliveryStatus.Undeliverable) + dropped);
    }

    /// <summary>
    /// After a batch's health changes: an endpoint that was paused, or paused for longer, has its queued deliveries due
    /// before the pause's end (and those its probe held) due at that end; one whose probe succeeded, or was given up
    /// with no new pause (it had no body to send), has those its probe held due now. Left due, an outage's backlog
    /// would sit at the head of the due index, and every claim on every node would walk past all of it for as long as
    /// the outage lasts.
    /// </summary>
    private async Task MoveHeldAsync(GymwireDbContext db, List<(WebhookSubscription Subscription, DateTime? PausedUntil, DateTime? ProbeClaimedUntil)> before, CancellationToken ct)
    {
        var now = Clock.GetUtcNow().UtcDateTime;
        foreach (var (subscription, pausedUntil, probeClaimedUntil) in before.Where(b => b.Subscription.IsActive))
        {
            var probeHeld = probeClaimedUntil ?? DateTime.MinValue;
            if (subscription.PausedUntil is { } until && until > now && until > (pausedUntil ?? DateTime.MinValue))
            {
                await MoveQueuedAsync(db, subscription.Id, before: until, at: probeHeld, to: until, now, ct);
            }
            else if (subscription.ProbeClaimedUntil is null && !(subscription.PausedUntil > now) && probeHeld > now)
            {
                await MoveQueuedAsync(db, subscription.Id, before: DateTime.MinValue, at: probeHeld, to: now, now, ct);
            }
        }
    }

    public async Task<QueueDepth> DepthAsync(CancellationToken ct)
    {
        await using var scope = CreateScope(out var db);
        var now = Clock.GetUtcNow().UtcDateTime;
        var due = db.WebhookDeliveries.AsNoTracking()
            .Where(d => (d.Status == DeliveryStatus.Pending || d.Status == DeliveryStatus.Retrying) && d.NextAttemptAt <= now);
        var count = await due.LongCountAsync(ct);
        var oldest = count == 0 ? null : await due.MinAsync(d => d.NextAttemptAt, ct);
        var active = db.WebhookSubscriptions.AsNoTracking().Where(s => s.IsActive);
        var paused = await active.LongCountAsync(s => s.PausedUntil > now, ct);
        var failing = await active.LongCountAsync(s => s.FailingSince != null && !(s.PausedUntil > now), ct);
        return new QueueDepth(count, oldest, paused, failing);
    }

    public Task<int> HoldAsync(GymwireDbContext db, Guid gymId, Guid subscriptionId, CancellationToken ct) =>
        Queued(db, gymId, subscriptionId).Where(d => d.NextAttemptAt != null)
            .ExecuteUpdateAsync(u => u.SetProperty(d => d.NextAttemptAt, (DateTime?)null), ct);

    public Task<int> ResumeAsync(GymwireDbContext db, Guid gymId, Guid subscriptionId, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        return Queued(db, gymId, subscriptionId).Where(d => d.NextAttemptAt == null)
            .ExecuteUpdateAsync(u => u.SetProperty(d => d.NextAttemptAt, now), ct);
    }

    /// <summary>A webhook's queued deliveries that no worker has claimed now; test sends are attempted once, inline, never queued.</summary>
    private IQueryable<WebhookDelivery> Queued(GymwireDbContext db, Guid gymId, Guid subscriptionId)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        return db.WebhookDeliveries.Where(d => d.GymId == gymId && d.SubscriptionId == subscriptionId && !d.IsTest
            && (d.Status == DeliveryStatus.Pending || d.Status == DeliveryStatus.Retrying) && (d.LockedUntil == null || d.LockedUntil <= now));
    }

    public async Task<int> RedeliverAsync(GymwireDbContext db, Guid gymId, Guid subscriptionId, Guid? deliveryId, DateTime createdSince, string[] statuses,
        DateTime due, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var rows = db.WebhookDeliveries.Where(d => d.GymId == gymId && d.SubscriptionId == subscriptionId && d.CreatedAt >= createdSince
            && statuses.Contains(d.Status) && (d.LockedUntil == null || d.LockedUntil <= now));
        if (deliveryId is { } id)
        {
            rows = rows.Where(d => d.Id == id);
        }
        return await rows.ExecuteUpdateAsync(u => u
            .SetProperty(d => d.Status, DeliveryStatus.Pending)
            .SetProperty(d => d.AttemptCount, 0)
            .SetProperty(d => d.NextAttemptAt, due), ct);
    }

    public async Task<ClaimedDelivery?> ReadUnfinishedAsync(Guid deliveryId, CancellationToken ct)
    {
        await using var scope = CreateScope(out var db);
        var read = await Read(db, db.WebhookDeliveries.Where(d => d.Id == deliveryId
            && d.Status != DeliveryStatus.Delivered && d.Status != DeliveryStatus.Undeliverable)).ToListAsync(ct);
        return (await WithEventsAsync(db, read, due: null, ct)).FirstOrDefault();
    }

    /// <summary>A claimed delivery's id and its due time before the claim.</summary>
    internal sealed record ClaimedId(Guid Id, DateTime NextAttemptAt);

    /// <summary>
    /// The claimed deliveries (<see cref="Read"/>, then <see cref="WithEventsAsync"/>) in due order, each with its due
    /// time before the claim. Sorted in memory, so that the read never needs a sort step.
    /// </summary>
    private protected static async Task<List<ClaimedDelivery>> ReadClaimedAsync(GymwireDbContext db, List<ClaimedId> claimed, CancellationToken ct)
    {
        var read = await ReadClaimed(db, [.. claimed.Select(c => c.Id)]).ToListAsync(ct);
        var due = claimed.ToDictionary(c => c.Id, c => c.NextAttemptAt);
        var deliveries = await WithEventsAsync(db, read, due, ct);
        deliveries.Sort((a, b) => Nullable.Compare(a.DueAt, b.DueAt));
        return deliveries;
    }

    /// <summary>The claimed deliveries' rows, read by id (<see cref="Read"/>).</summary>
    internal static IQueryable<ClaimedDelivery> ReadClaimed(GymwireDbContext db, List<Guid> ids) => Read(db, db.WebhookDeliveries.Where(d => ids.Contains(d.Id)));

    /// <summary>
    /// The deliveries with their stored bodies (test sends), their subscriptions (with their health) and recorded
    /// attempt counts (the last number, by index); an event's delivery gets its body from <see cref="WithEventsAsync"/>.
    /// </summary>
    private static IQueryable<ClaimedDelivery> Read(GymwireDbContext db, IQueryable<WebhookDelivery> deliveries) =>
        from d in deliveries.AsNoTracking()
        join s in db.WebhookSubscriptions on d.SubscriptionId equals s.Id
        select new ClaimedDelivery(d.Id, d.GymId, d.SubscriptionId, d.Event, d.Payload,
            d.IsTest, d.AttemptCount, d.LastAttemptAt,
            db.WebhookAttempts.Where(a => a.GymId == d.GymId && a.DeliveryId == d.Id).Max(a => (int?)a.Number) ?? 0,
            s.Url, s.IsActive, s.SecretProtected, s.PreviousSecretProtected, s.PreviousSecretExpiresAt)
        {
            CreatedAt = d.CreatedAt,
            EventId = d.EventId,
            Health = new EndpointHealth(s.ConsecutiveFailures, s.PausedUntil, s.PauseLength, s.ProbeClaimedUntil),
        };

    /// <summary>
    /// Each delivery of an outbox event gets the event's envelope under the name its subscription receives it by, and
    /// the event's trace context; with <paramref name="due"/>, its due time before the claim. Each event is read once,
    /// and each body built once, for the whole batch: an event's fan-out claimed together shares one body. A delivery
    /// whose event row is gone (deleted by hand), or whose event's data is not JSON, keeps a null body.
    /// </summary>
    private static async Task<List<ClaimedDelivery>> WithEventsAsync(GymwireDbContext db, List<ClaimedDelivery> read, Dictionary<Guid, DateTime>? due, CancellationToken ct)
    {
        var eventIds = read.Where(d => d.StoredPayload is null && d.EventId is not null).Select(d => d.EventId!.Value).Distinct().ToList();
        var events = eventIds.Count == 0 ? [] : await db.OutboxEvents.AsNoTracking().Where(e => eventIds.Contains(e.Id))
            .Select(e => new { e.Id, e.GymId, e.Data, e.OccurredAt, e.TraceContext }).ToDictionaryAsync(e => e.Id, ct);
        var bodies = new Dictionary<(Guid Event, string Name), byte[]?>();
        var result = new List<ClaimedDelivery>(read.Count);
        foreach (var d in read)
        {
            var body = d.StoredPayload is { } stored ? Encoding.UTF8.GetBytes(stored) : null;
            string? traceContext = null;
            if (d.EventId is { } id && events.TryGetValue(id, out var e) && e.GymId == d.GymId)
            {
                traceContext = e.TraceContext;
                if (body is null && !bodies.TryGetValue((id, d.Event), out body))
                {
                    bodies[(id, d.Event)] = body = WebhookPayloads.BuildUtf8FromOutbox(id, d.Event, d.GymId, e.Data, e.OccurredAt);
                }
            }
            result.Add(d with { Body = body, TraceContext = traceContext, DueAt = due is null ? d.DueAt : due[d.Id] });
        }
        return result;
    }

    /// <summary>A write transaction, and the store's lock held for it if any; disposing it rolls back what was not committed.</summary>
    protected sealed class WriteTransaction(Microsoft.EntityFrameworkCore.Storage.IDbContextTransaction transaction, IDisposable? writeLock = null) : IAsyncDisposable
    {
        public Task CommitAsync(CancellationToken ct) => transaction.CommitAsync(ct);

        public async ValueTask DisposeAsync()
        {
            await transaction.DisposeAsync();
            writeLock?.Dispose();
        }
    }
}
