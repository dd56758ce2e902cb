using Gymwire.Data;
using Gymwire.Features.Events;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// Fans the outbox out: each undispatched event becomes one delivery per matching active subscription,
/// written in the same transaction that marks the event dispatched. Woken by <see cref="OutboxSignal"/>
/// when a local write commits; polls for events other nodes wrote.
/// </summary>
public sealed partial class WebhookDispatcher(
    IServiceScopeFactory scopes,
    OutboxSignal outboxSignal,
    DeliverySignal deliverySignal,
    IOptions<WebhookOptions> options,
    TimeProvider clock,
    ILogger<WebhookDispatcher> logger) : BackgroundService
{
    private const int BatchSize = 200;

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
                while (dispatched == BatchSize);
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

    /// <summary>Dispatches one batch of events, oldest first; returns how many events it handled.</summary>
    public async Task<int> DispatchBatchAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        await using var tx = db.Provider == DatabaseProvider.Postgres ? await db.Database.BeginTransactionAsync(ct) : null;
        // PostgreSQL: several nodes may dispatch; each takes events the others have not locked.
        // SQLite: one process, one dispatcher; the write below is its own transaction.
        var events = db.Provider == DatabaseProvider.Postgres
            ? await db.OutboxEvents.FromSql($"SELECT * FROM outbox_events WHERE dispatched_at IS NULL ORDER BY sequence LIMIT {BatchSize} FOR UPDATE SKIP LOCKED").ToListAsync(ct)
            : await db.OutboxEvents.Where(e => e.DispatchedAt == null).OrderBy(e => e.Sequence).Take(BatchSize).ToListAsync(ct);
        if (events.Count == 0)
        {
            return 0;
        }
        var gymIds = events.Select(e => e.GymId).Distinct().ToList();
        var subscriptions = await db.WebhookSubscriptions.AsNoTracking()
            .Where(s => gymIds.Contains(s.GymId) && s.IsActive)
            .Select(s => new { s.Id, s.GymId, s.Events })
            .ToListAsync(ct);
        var now = clock.GetUtcNow().UtcDateTime;
        var created = 0;
        foreach (var evt in events)
        {
            foreach (var subscription in subscriptions.Where(s => s.GymId == evt.GymId))
            {
                if (WebhookPayloads.SubscribedName(subscription.Events, evt.Type) is not { } name)
                {
                    continue;
                }
                db.WebhookDeliveries.Add(new WebhookDelivery
                {
                    Id = Guid.CreateVersion7(now),
                    GymId = evt.GymId,
                    SubscriptionId = subscription.Id,
                    EventId = evt.Id,
                    Event = name,
                    Payload = WebhookPayloads.Build(evt.Id, name, evt.GymId, evt.Data, evt.OccurredAt),
                    Status = DeliveryStatus.Pending,
                    CreatedAt = now,
                    NextAttemptAt = now,
                });
                created++;
            }
            evt.DispatchedAt = now;
        }
        await db.SaveChangesAsync(ct);
        if (tx is not null)
        {
            await tx.CommitAsync(ct);
        }
        if (created > 0)
        {
            LogDispatched(logger, events.Count, created);
            deliverySignal.Notify();
        }
        return events.Count;
    }

    [LoggerMessage(EventId = 5001, Level = LogLevel.Debug, Message = "Dispatched {Events} outbox events into {Deliveries} webhook deliveries")]
    private static partial void LogDispatched(ILogger logger, int events, int deliveries);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Error, Message = "Webhook dispatch failed; retrying after the poll interval")]
    private static partial void LogDispatchFailed(ILogger logger, Exception exception);
}
