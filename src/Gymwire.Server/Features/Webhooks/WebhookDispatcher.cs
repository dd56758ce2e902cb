using Gymwire.Data;
using Gymwire.Features.Events;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// Fans the outbox out: each undispatched event becomes one delivery per matching active subscription,
/// written in the same transaction that marks the event dispatched. Woken by <see cref="OutboxSignal"/>
/// when a local write commits; polls for events other nodes wrote. A delivery to an endpoint paused on this node is
/// due when its hold ends (<see cref="EndpointHolds"/>).
/// </summary>
public sealed partial class WebhookDispatcher(
    IServiceScopeFactory scopes,
    OutboxSignal outboxSignal,
    DeliverySignal deliverySignal,
    EndpointHolds holds,
    SqliteWriteGate gate,
    IOptions<WebhookOptions> options,
    TimeProvider clock,
    ILogger<WebhookDispatcher> logger) : BackgroundService
{
    private const int BatchSize = 200;

    /// <summary>Deliveries written per transaction at most (on SQLite the workers wait for it, so keep it short) (an event is never split across two).</summary>
    public const int MaxDeliveriesPerBatch = 250;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                int dispatched;
                do
                {
                    dispatched = await DispatchBatchAsync(stoppingToken);
                }
                while (dispatched > 0);
                await outboxSignal.WaitAsync(options.Value.PollInterval, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogDispatchFailed(logger, e);
                try
                {
                    await outboxSignal.WaitAsync(options.Value.PollInterval, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
    }

    /// <summary>
    /// Dispatches one batch of events, oldest first; returns how many events it handled. A batch stops adding events
    /// once it holds <see cref="MaxDeliveriesPerBatch"/> deliveries, so the workers start on the first deliveries of a
    /// burst while the rest is still being fanned out.
    /// </summary>
    public async Task<int> DispatchBatchAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        // PostgreSQL: several nodes may dispatch; each takes, in its transaction, events the others have not locked.
        // SQLite: one process, one dispatcher. It reads before it writes: a transaction there takes the database's
        // only write lock at BEGIN, and most wake-ups (each commit of an action, say) find one event or none.
        var postgres = db.Provider == DatabaseProvider.Postgres;
        await using var tx = postgres ? await db.Database.BeginTransactionAsync(ct) : null;
        var events = postgres
            ? await db.OutboxEvents.FromSql($"SELECT * FROM outbox_events WHERE dispatched_at IS NULL ORDER BY sequence LIMIT {BatchSize} FOR UPDATE SKIP LOCKED").AsNoTracking().ToListAsync(ct)
            : await db.OutboxEvents.AsNoTracking().Where(e => e.DispatchedAt == null).OrderBy(e => e.Sequence).Take(BatchSize).ToListAsync(ct);
        if (events.Count == 0)
        {
            return 0;
        }
        using var turn = await gate.EnterAsync(db, ct);
        await using var sqliteTx = postgres ? null : await db.Database.BeginTransactionAsync(ct);
        var gymIds = events.Select(e => e.GymId).Distinct().ToList();
        var subscriptions = (await db.WebhookSubscriptions.AsNoTracking()
            .Where(s => gymIds.Contains(s.GymId) && s.IsActive)
            .Select(s => new { s.Id, s.GymId, s.Events })
            .ToListAsync(ct)).ToLookup(s => s.GymId);
        var now = clock.GetUtcNow().UtcDateTime;
        var deliveries = new List<WebhookDelivery>();
        var dispatched = new List<long>();
        foreach (var evt in events)
        {
            if (deliveries.Count >= MaxDeliveriesPerBatch)
            {
                break;
            }
            foreach (var subscription in subscriptions[evt.GymId])
            {
                if (WebhookPayloads.SubscribedName(subscription.Events, evt.Type) is not { } name)
                {
                    continue;
                }
                deliveries.Add(new WebhookDelivery
                {
                    Id = Guid.CreateVersion7(now),
                    GymId = evt.GymId,
                    SubscriptionId = subscription.Id,
                    EventId = evt.Id,
                    Event = name, // the body is built from the event at each attempt (WebhookPayloads.For)
                    Status = DeliveryStatus.Pending,
                    CreatedAt = now,
                    NextAttemptAt = holds.DueAt(subscription.Id, now),
                });
            }
            dispatched.Add(evt.Sequence);
        }
        await DeliveryRows.InsertAsync(db, deliveries, ct);
        await db.OutboxEvents.Where(e => dispatched.Contains(e.Sequence)).ExecuteUpdateAsync(u => u.SetProperty(e => e.DispatchedAt, now), ct);
        await (tx ?? sqliteTx!).CommitAsync(ct);
        if (deliveries.Count > 0)
        {
            LogDispatched(logger, dispatched.Count, deliveries.Count);
            deliverySignal.Notify();
        }
        return dispatched.Count;
    }

    [LoggerMessage(EventId = 5001, Level = LogLevel.Debug, Message = "Dispatched {Events} outbox events into {Deliveries} webhook deliveries")]
    private static partial void LogDispatched(ILogger logger, int events, int deliveries);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Error, Message = "Webhook dispatch failed; retrying after the poll interval")]
    private static partial void LogDispatchFailed(ILogger logger, Exception exception);
}
