using System.Runtime.CompilerServices;
using Gymwire.Data;
using Gymwire.Features.Cluster;
using Gymwire.Features.Events;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// The delivery queue on PostgreSQL, where several nodes may share the database: claims and fan-out take rows no
/// other node holds (<c>FOR UPDATE SKIP LOCKED</c>), and the queue's reads run with planner settings that keep them
/// on the due index (<see cref="PlannerSettings"/>).
/// </summary>
public sealed class PostgresDeliveryQueue(IServiceScopeFactory scopes, IOptions<WebhookOptions> options, TimeProvider clock, ThisNode node)
    : DeliveryQueue(scopes, options, clock, node)
{
    /// <summary>A few: a batch's time is mostly round trips, and the batches touch different rows.</summary>
    public override int RecordWriters => 4;

    /// <summary>A hundred: one round trip per 100 rows (Npgsql rewrites the <c>@name</c> placeholders to positional ones).</summary>
    public override int RowsPerStatement => StatementRows;

    internal const int StatementRows = 100;

    protected override async ValueTask<WriteTransaction> BeginWriteAsync(GymwireDbContext db, CancellationToken ct) =>
        new(await db.Database.BeginTransactionAsync(ct));

    protected override async Task<(List<OutboxEvent> Events, WriteTransaction? Write)> TakeUndispatchedAsync(GymwireDbContext db, int limit, CancellationToken ct)
    {
        var write = await BeginWriteAsync(db, ct);
        var events = await db.OutboxEvents
            .FromSql($"SELECT * FROM outbox_events WHERE dispatched_at IS NULL ORDER BY sequence LIMIT {limit} FOR UPDATE SKIP LOCKED")
            .AsNoTracking().ToListAsync(ct);
        if (events.Count == 0)
        {
            await write.DisposeAsync();
            return ([], null);
        }
        return (events, write);
    }

    /// <summary>
    /// Row locks, taken in key order: a node's batch waits for another's that changes the same endpoints' health.
    /// <c>NO KEY UPDATE</c>, the lock an update of non-key columns takes, leaves the fan-out's inserts free: their foreign
    /// key checks take <c>KEY SHARE</c> on the subscriptions in no particular order, and <c>FOR UPDATE</c> deadlocked with them.
    /// </summary>
    protected override Task LockHealthAsync(GymwireDbContext db, List<Guid> always, List<Guid> ifNotHealthy, CancellationToken ct) =>
        db.Database.ExecuteSqlAsync(LockHealth(always, ifNotHealthy), ct);

    internal static FormattableString LockHealth(List<Guid> always, List<Guid> ifNotHealthy) => $"""
        SELECT id FROM webhook_subscriptions
        WHERE id = ANY({always.ToArray()})
           OR (id = ANY({ifNotHealthy.ToArray()})
               AND (consecutive_failures > 0 OR paused_until IS NOT NULL OR probe_claimed_until IS NOT NULL OR failing_since IS NOT NULL))
        ORDER BY id
        FOR NO KEY UPDATE
        """;

    /// <summary>
    /// Locks only rows no other transaction holds (<c>SKIP LOCKED</c>): the worker's release of refused claims and the
    /// recorder lock theirs in other orders, and waiting for them deadlocked. The locked ids are collected once (an
    /// <c>InitPlan</c>) and updated by key, so no plan can walk the backlog again for each of its rows.
    /// </summary>
    protected override Task MoveQueuedAsync(GymwireDbContext db, Guid subscriptionId, DateTime before, DateTime at, DateTime to, DateTime now, CancellationToken ct) =>
        db.Database.ExecuteSqlAsync(WithPlannerSettings(MoveQueued(subscriptionId, before, at, to, now)), ct);

    internal static FormattableString MoveQueued(Guid subscriptionId, DateTime before, DateTime at, DateTime to, DateTime now) => $"""
        UPDATE webhook_deliveries SET next_attempt_at = {to}
        WHERE id = ANY(ARRAY(
            SELECT id FROM webhook_deliveries
            WHERE status IN ('pending', 'retrying') AND subscription_id = {subscriptionId}
              AND (next_attempt_at < {before} OR next_attempt_at = {at}) AND (locked_until IS NULL OR locked_until <= {now})
            FOR UPDATE SKIP LOCKED))
        """;

    /// <summary>
    /// Locks, leases and reads in one transaction, so that the planner settings hold for the read too (<c>SET LOCAL</c>
    /// outside a transaction block also has PostgreSQL log a warning).
    /// </summary>
    public override async Task<IReadOnlyList<ClaimedDelivery>> ClaimAsync(int limit, Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct)
    {
        await using var scope = CreateScope(out var db);
        var now = Clock.GetUtcNow().UtcDateTime;
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var claimed = await db.Database.SqlQuery<ClaimedId>(WithPlannerSettings(Claim(now, now + Lease, limit, skipSubscriptions, skipDeliveries, Node))).ToListAsync(ct);
        var read = claimed.Count == 0 ? [] : await ReadClaimedAsync(db, claimed, ct);
        await tx.CommitAsync(ct);
        return read;
    }

    /// <summary>
    /// Locks and leases the oldest due deliveries no other node holds and whose endpoint is neither paused nor being
    /// probed, moves them to the lease's end, records the claiming node and the due time before the claim, and returns
    /// their ids with that due time.
    /// </summary>
    internal static FormattableString Claim(DateTime now, DateTime until, int limit, Guid[] skipSubscriptions, Guid[] skipDeliveries, Guid node) => $"""
        UPDATE webhook_deliveries AS d SET locked_until = {until}, next_attempt_at = {until}
            , claimed_by = {node}, due_before_claim = due.next_attempt_at
        FROM (
            SELECT id, next_attempt_at FROM webhook_deliveries
            WHERE status IN ('pending', 'retrying') AND next_attempt_at <= {now}
              AND (locked_until IS NULL OR locked_until <= {now})
              AND NOT (subscription_id = ANY({skipSubscriptions})) AND NOT (id = ANY({skipDeliveries}))
              AND NOT EXISTS (SELECT 1 FROM webhook_subscriptions AS s
                              WHERE s.id = webhook_deliveries.subscription_id AND (s.paused_until > {now} OR s.probe_claimed_until > {now}))
            ORDER BY next_attempt_at
            LIMIT {limit}
            FOR UPDATE SKIP LOCKED) AS due
        WHERE d.id = due.id
        RETURNING d.id, due.next_attempt_at
        """;

    /// <summary>Other nodes' claims may be live: a dead node's are released by the heartbeat (<see cref="IDeliveryQueue.ReleaseClaimsOfAsync"/>).</summary>
    public override Task<int> ReleaseLeftoverClaimsAsync(CancellationToken ct) => Task.FromResult(0);

    protected override Task ApplyPlannerSettingsAsync(GymwireDbContext db, CancellationToken ct) => db.Database.ExecuteSqlRawAsync(PlannerSettings, ct);

    /// <summary>It walks the due index in order, so it costs the rows in front (in flight, or left out), not the whole queue.</summary>
    public override async Task<DateTime?> NextDueAsync(Guid[] skipSubscriptions, Guid[] skipDeliveries, CancellationToken ct)
    {
        await using var scope = CreateScope(out var db);
        var now = Clock.GetUtcNow().UtcDateTime;
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var next = (await db.Database.SqlQuery<DateTime?>(WithPlannerSettings($"""
            SELECT next_attempt_at AS "Value" FROM webhook_deliveries
            WHERE status IN ('pending', 'retrying') AND next_attempt_at IS NOT NULL
              AND (locked_until IS NULL OR locked_until <= {now})
              AND NOT (subscription_id = ANY({skipSubscriptions})) AND NOT (id = ANY({skipDeliveries}))
              AND NOT EXISTS (SELECT 1 FROM webhook_subscriptions AS s
                              WHERE s.id = webhook_deliveries.subscription_id AND (s.paused_until > {now} OR s.probe_claimed_until > {now}))
            ORDER BY next_attempt_at
            LIMIT 1
            """)).ToListAsync(ct)).FirstOrDefault();
        await tx.CommitAsync(ct);
        return next;
    }

    /// <summary>
    /// Prefixed to the queue's statements, inside their transaction (the settings end with it): walk the due index in
    /// order and stop at the limit, never collect and sort the whole due set, and find rows by their indexes, never by
    /// a table scan. The planner chooses by its statistics, and a queue's go stale at once: after a burst it still
    /// estimates a handful due, and analysed while (nearly) empty it plans table scans that a prepared statement keeps.
    /// </summary>
    internal const string PlannerSettings = "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off;";

    internal static FormattableString WithPlannerSettings(FormattableString sql) =>
        FormattableStringFactory.Create(PlannerSettings + "\n" + sql.Format, sql.GetArguments());
}
