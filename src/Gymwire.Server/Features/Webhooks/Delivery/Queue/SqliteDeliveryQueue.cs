using Gymwire.Data;
using Gymwire.Features.Cluster;
using Gymwire.Features.Events;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// The delivery queue on SQLite. One process writes the database, and in it every writer takes the
/// <see cref="SqliteWriteGate"/> lock, so a claim can read the due rows and claim them in one write transaction, and
/// the dispatcher reads and fans out before it takes the lock (most wake-ups find one event or none, a transaction takes
/// the database's only write lock at <c>BEGIN</c>, and this process's dispatcher is the only one).
/// </summary>
public sealed class SqliteDeliveryQueue(IServiceScopeFactory scopes, SqliteWriteGate gate, IOptions<WebhookOptions> options, TimeProvider clock, ThisNode node)
    : DeliveryQueue(scopes, options, clock, node)
{
    /// <summary>One: SQLite has one write lock.</summary>
    public override int RecordWriters => 1;

    /// <summary>
    /// One: SQLite runs in process, so a prepared single-row statement executed per row is its fastest bulk path; it
    /// binds parameters by name, so a statement of hundreds of parameters costs more than it saves.
    /// </summary>
    public override int RowsPerStatement => StatementRows;

    internal const int StatementRows = 1;

    protected override async ValueTask<WriteTransaction> BeginWriteAsync(GymwireDbContext db, CancellationToken ct)
    {
        var writeLock = await gate.EnterAsync(db, ct);
        try
        {
            return new WriteTransaction(await db.Database.BeginTransactionAsync(ct), writeLock);
        }
        catch
        {
            writeLock.Dispose();
            throw;
        }
    }

    protected override async Task<(List<OutboxEvent> Events, WriteTransaction? Write)> TakeUndispatchedAsync(GymwireDbContext db, int limit, CancellationToken ct)
    {
        var events = await db.OutboxEvents.AsNoTracking().Where(e => e.DispatchedAt == null).OrderBy(e => e.Sequence).Take(limit).ToListAsync(ct);
        return (events, null);
    }

    /// <summary>Nothing to lock: every record batch holds the process's write lock, and the database's one write lock.</summary>
    protected override Task LockHealthAsync(GymwireDbContext db, List<Guid> always, List<Guid> ifNotHealthy, CancellationToken ct) => Task.CompletedTask;

    /// <summary>Names the due index: for a range of due times SQLite would otherwise read the subscription's whole delivery log.</summary>
    protected override Task MoveQueuedAsync(GymwireDbContext db, Guid subscriptionId, DateTime before, DateTime at, DateTime to, DateTime now, CancellationToken ct) =>
        db.Database.ExecuteSqlAsync($"""
            UPDATE webhook_deliveries INDEXED BY ix_webhook_deliveries_due SET next_attempt_at = {to}
            WHERE status IN ('pending', 'retrying') AND subscription_id = {subscriptionId}
              AND (next_attempt_at < {before} OR next_attempt_at = {at}) AND (locked_until IS NULL OR locked_until <= {now})
            """, ct);

    public override async Task<IReadOnlyList<ClaimedDelivery>> ClaimAsync(int limit, Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct)
    {
        await using var scope = CreateScope(out var db);
        var now = Clock.GetUtcNow().UtcDateTime;
        var until = now + Lease;
        List<ClaimedId> due;
        await using (var write = await BeginWriteAsync(db, ct))
        {
            due = await Due(db, now, skipSubscriptions, skipDeliveries).OrderBy(x => x.NextAttemptAt).Take(limit)
                .Select(x => new ClaimedId(x.Id, x.NextAttemptAt!.Value)).ToListAsync(ct);
            if (due.Count > 0)
            {
                var ids = due.Select(c => c.Id).ToList();
                await db.WebhookDeliveries.Where(d => ids.Contains(d.Id))
                    .ExecuteUpdateAsync(s => s.SetProperty(d => d.LockedUntil, until).SetProperty(d => d.NextAttemptAt, until)
                        .SetProperty(d => d.ClaimedBy, Node).SetProperty(d => d.DueBeforeClaim, d => d.NextAttemptAt), ct);
            }
            await write.CommitAsync(ct);
        }
        return due.Count == 0 ? [] : await ReadClaimedAsync(db, due, ct);
    }

    /// <summary>One node: whatever is still claimed when the worker starts was claimed by a process that is gone.</summary>
    public override Task<int> ReleaseLeftoverClaimsAsync(CancellationToken ct) => ReleaseHeldAsync(null, ct);

    public override async Task<DateTime?> NextDueAsync(Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct)
    {
        await using var scope = CreateScope(out var db);
        var now = Clock.GetUtcNow().UtcDateTime;
        return await db.WebhookDeliveries.AsNoTracking()
            .Where(x => (x.Status == DeliveryStatus.Pending || x.Status == DeliveryStatus.Retrying) && x.NextAttemptAt != null
                && (x.LockedUntil == null || x.LockedUntil <= now)
                && !skipSubscriptions.Contains(x.SubscriptionId) && !skipDeliveries.Contains(x.Id)
                && !db.WebhookSubscriptions.Any(s => s.Id == x.SubscriptionId && (s.PausedUntil > now || s.ProbeClaimedUntil > now)))
            .OrderBy(x => x.NextAttemptAt)
            .Select(x => x.NextAttemptAt)
            .FirstOrDefaultAsync(ct);
    }

    /// <summary>Due, unclaimed, not left out, and of an endpoint neither paused nor being probed (its stored health).</summary>
    private static IQueryable<WebhookDelivery> Due(GymwireDbContext db, DateTime now, Guid[] skipSubscriptions, Guid[] skipDeliveries) =>
        db.WebhookDeliveries.Where(x => (x.Status == DeliveryStatus.Pending || x.Status == DeliveryStatus.Retrying)
            && x.NextAttemptAt <= now && (x.LockedUntil == null || x.LockedUntil <= now)
            && !skipSubscriptions.Contains(x.SubscriptionId) && !skipDeliveries.Contains(x.Id)
            && !db.WebhookSubscriptions.Any(s => s.Id == x.SubscriptionId && (s.PausedUntil > now || s.ProbeClaimedUntil > now)));
}
