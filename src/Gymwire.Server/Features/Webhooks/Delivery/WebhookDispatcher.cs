using Gymwire.Data;
using Gymwire.Features.Events;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// Fans the outbox out: each undispatched event becomes one delivery per matching active subscription, enqueued in
/// the same transaction that marks the event dispatched (<see cref="IDeliveryQueue.EnqueueAsync"/>). As many as this
/// node's worker has free slots for are inserted already claimed and handed to it (<see cref="DeliverySlots"/>) before
/// the insert, so they are sent without waiting for a claim, and the insert waits until they are on their way
/// (<see cref="HandOverSends"/>); the rest wait in the queue. Woken by <see cref="OutboxSignal"/> when a local write
/// commits; polls for events other nodes wrote.
/// </summary>
public sealed partial class WebhookDispatcher(
    IDeliveryQueue queue,
    DeliverySlots slots,
    EndpointPolicy policy,
    OutboxSignal outboxSignal,
    DeliverySignal deliverySignal,
    IOptions<WebhookOptions> options,
    TimeProvider clock,
    DeliveryMetrics metrics,
    ILogger<WebhookDispatcher> logger) : BackgroundService
{
    /// <summary>Events read per pass at most.</summary>
    public const int BatchSize = 200;

    /// <summary>Deliveries written per transaction at most, so that workers start on a burst while the rest is fanned out (an event is never split across two).</summary>
    public const int MaxDeliveriesPerBatch = 250;

    // After a pass that failed, the next hands its claims over only once committed: a fault that outlasts one pass (a
    // full disk, a lock timeout) would otherwise send the same deliveries again at every pass.
    private bool _lastPassFailed;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        var deletedMeanwhile = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                // A pass that read less than a full batch and fanned all of it out left nothing behind: an event this
                // process committed since then has woken the signal (other nodes' are found by the poll, as before).
                DispatchedBatch pass;
                do
                {
                    pass = await DispatchBatchAsync(stoppingToken);
                }
                while (pass.MayHaveMore);
                deletedMeanwhile = 0;
                await outboxSignal.WaitAsync(options.Value.PollInterval, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (ErrorHandling.IsConcurrencyConflict(e) || (ErrorHandling.IsForeignKeyViolation(e) && ++deletedMeanwhile < ErrorHandling.ConflictTries))
            {
                // PostgreSQL rolled the pass back to break a deadlock with another writer (the fan-out's inserts lock the
                // subscriptions they name), or a webhook was deleted after the fan-out read it: nothing is written, and the
                // pass runs again at once (without that webhook). A missing row that does not go away is an error below.
                LogDispatchConflict(logger, e.GetBaseException().Message);
            }
            catch (Exception e)
            {
                deletedMeanwhile = 0;
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

    /// <summary>How many events a pass dispatched, and whether undispatched ones may be left (the pass read a full batch, or fanned out only part of what it read).</summary>
    public readonly record struct DispatchedBatch(int Events, bool MayHaveMore);

    /// <summary>Dispatches one batch of events, oldest first.</summary>
    public async Task<DispatchedBatch> DispatchBatchAsync(CancellationToken ct)
    {
        // The events fanned out, recorded once their deliveries are committed.
        List<DateTime> occurred = [];
        var read = 0;
        List<Claimable> claimed = [];
        // The claims go to the worker before the fan-out's insert and commit, so that they are sent meanwhile; each
        // attempt is recorded, or given back, only once this says the rows are there (ClaimedDelivery.Committed).
        var committed = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var early = !_lastPassFailed;
        List<ClaimedDelivery>? notHandedOver = null;
        var handedOver = 0;
        int events, deliveries;
        try
        {
            (events, deliveries) = await queue.EnqueueAsync(BatchSize, async (db, batch, token) =>
            {
                var fanned = await FanOutAsync(db, batch, claimed, token);
                read = batch.Count;
                occurred = [.. batch.Take(fanned.Dispatched.Count).Select(e => e.OccurredAt)];
                if (early && claimed.Count > 0)
                {
                    var sends = new HandOverSends(claimed.Select(c => c.Delivery.Id));
                    handedOver = HandOverOrKeep(HandOver(claimed, committed.Task, sends), ref notHandedOver);
                    if (handedOver > 0)
                    {
                        await WaitForSendsAsync(sends, token);
                    }
                }
                return fanned;
            }, ct);
        }
        catch
        {
            // Not committed (a commit whose answer was lost may have committed: its claims then lapse with their lease,
            // as a crashed node's do). Those handed over hold their slots until the worker drops their attempts; the
            // event is fanned out again, and they are sent again under the same webhook-id (WebhookDelivery.IdFor).
            _lastPassFailed = true;
            committed.SetResult(false);
            slots.Return(claimed.Count - handedOver);
            throw;
        }
        _lastPassFailed = false;
        committed.SetResult(true);
        if (!early && claimed.Count > 0)
        {
            HandOverOrKeep(HandOver(claimed, committed.Task, sends: null), ref notHandedOver);
        }
        if (notHandedOver is not null)
        {
            // The worker has stopped: the claims go back to the queue.
            try
            {
                await queue.ReleaseAsync(notHandedOver, CancellationToken.None);
            }
            finally
            {
                slots.Return(notHandedOver.Count);
            }
        }
        if (occurred.Count > 0)
        {
            var now = clock.GetUtcNow().UtcDateTime;
            foreach (var at in occurred)
            {
                metrics.RecordDispatchLag(now - at);
            }
        }
        metrics.RecordDeliveriesCreated(deliveries, DeliveryMetrics.Triggers.Initial);
        if (deliveries > 0)
        {
            LogDispatched(logger, events, deliveries);
            deliverySignal.Notify();
        }
        return new DispatchedBatch(events, read == BatchSize || events < read);
    }

    /// <summary>
    /// Until the worker has sent (or set aside) every delivery handed over, for at most <c>HandOverSendsWait</c>: on a
    /// machine of few cores the insert and commit would otherwise take the CPU the sends need, and they would reach their
    /// receivers later. Only the commit waits, and with it the attempts' records.
    /// </summary>
    private async Task WaitForSendsAsync(HandOverSends sends, CancellationToken ct)
    {
        try
        {
            await sends.All.WaitAsync(options.Value.HandOverSendsWait, TimeProvider.System, ct);
        }
        catch (TimeoutException)
        {
        }
    }

    /// <summary>Hands claims to the worker and wakes it; returns how many, none when the worker has stopped (kept for the caller to give back).</summary>
    private int HandOverOrKeep(List<ClaimedDelivery> handOver, ref List<ClaimedDelivery>? notHandedOver)
    {
        if (!slots.HandOver(handOver))
        {
            notHandedOver = handOver;
            return 0;
        }
        deliverySignal.Notify();
        return handOver.Count;
    }

    /// <summary>What the fan-out reads of a subscription: where its deliveries go and, for those handed over, how they are sent.</summary>
    private sealed record Subscription(Guid Id, Guid GymId, List<string> Events, EndpointHealth Health, string Url, string SecretProtected,
        string? PreviousSecretProtected, DateTime? PreviousSecretExpiresAt);

    /// <summary>A new delivery inserted claimed for this node's worker, with what it is sent from.</summary>
    private sealed record Claimable(WebhookDelivery Delivery, Subscription Subscription, OutboxEvent Event);

    /// <summary>
    /// One delivery per event and matching active subscription. A batch stops adding events once it holds
    /// <see cref="MaxDeliveriesPerBatch"/> deliveries. Those due now of endpoints neither at their cap on this node nor
    /// paused or probed are claimed for this node's worker, as many as it has free slots, and added to <paramref name="claimed"/>.
    /// </summary>
    private async Task<(IReadOnlyList<WebhookDelivery> Deliveries, IReadOnlyList<long> Dispatched)> FanOutAsync(
        GymwireDbContext db, IReadOnlyList<OutboxEvent> events, List<Claimable> claimed, CancellationToken ct)
    {
        var gymIds = events.Select(e => e.GymId).Distinct().ToList();
        var subscriptions = (await db.WebhookSubscriptions.AsNoTracking()
            .Where(s => gymIds.Contains(s.GymId) && s.IsActive)
            .Select(s => new Subscription(s.Id, s.GymId, s.Events, new EndpointHealth(s.ConsecutiveFailures, s.PausedUntil, s.PauseLength, s.ProbeClaimedUntil),
                s.Url, s.SecretProtected, s.PreviousSecretProtected, s.PreviousSecretExpiresAt))
            .ToListAsync(ct)).ToLookup(s => s.GymId);
        var now = clock.GetUtcNow().UtcDateTime;
        var atCapacity = policy.AtCapacity();
        var deliveries = new List<WebhookDelivery>();
        var claimable = new List<Claimable>();
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
                var delivery = new WebhookDelivery
                {
                    Id = WebhookDelivery.IdFor(evt.Id, subscription.Id),
                    GymId = evt.GymId,
                    SubscriptionId = subscription.Id,
                    EventId = evt.Id,
                    Event = name, // the body is built from the event when handed over or claimed (DeliveryQueue.WithEventsAsync)
                    Status = DeliveryStatus.Pending,
                    CreatedAt = now,
                    // A paused endpoint's new delivery waits for the pause's end, as its queued ones do (IDeliveryQueue.CompleteAsync).
                    NextAttemptAt = WebhookSubscription.FirstDueAt(subscription.Health.PausedUntil, now),
                };
                deliveries.Add(delivery);
                // A failing endpoint's next attempt is a probe, which the worker takes in the queue first (ClaimProbeAsync):
                // left to a claim, not handed over, so that a fan-out rolled back cannot strand a probe it took.
                if (delivery.NextAttemptAt == now && !policy.IsFailing(subscription.Health) && !(subscription.Health.ProbeClaimedUntil > now)
                    && !atCapacity.Contains(subscription.Id))
                {
                    claimable.Add(new Claimable(delivery, subscription, evt));
                }
            }
            dispatched.Add(evt.Sequence);
        }
        foreach (var c in claimable.Take(slots.Take(claimable.Count)))
        {
            queue.ClaimNew(c.Delivery);
            claimed.Add(c);
        }
        return (deliveries, dispatched);
    }

    /// <summary>The claims as the worker gets them: what a claim would read, each event's body built once.</summary>
    private static List<ClaimedDelivery> HandOver(List<Claimable> claimed, Task<bool> committed, HandOverSends? sends)
    {
        var bodies = new Dictionary<(Guid Event, string Name), byte[]?>();
        var handOver = new List<ClaimedDelivery>(claimed.Count);
        foreach (var (delivery, subscription, evt) in claimed)
        {
            if (!bodies.TryGetValue((evt.Id, delivery.Event), out var body))
            {
                bodies[(evt.Id, delivery.Event)] = body = WebhookPayloads.BuildUtf8FromOutbox(evt.Id, delivery.Event, evt.GymId, evt.Data, evt.OccurredAt);
            }
            handOver.Add(new ClaimedDelivery(delivery.Id, delivery.GymId, delivery.SubscriptionId, delivery.Event, StoredPayload: null, IsTest: false,
                AttemptCount: 0, LastAttemptAt: null, AttemptsRecorded: 0, subscription.Url, SubscriptionActive: true,
                subscription.SecretProtected, subscription.PreviousSecretProtected, subscription.PreviousSecretExpiresAt)
            {
                DueAt = delivery.DueBeforeClaim,
                CreatedAt = delivery.CreatedAt,
                EventId = evt.Id,
                Body = body,
                TraceContext = evt.TraceContext,
                Health = subscription.Health,
                Committed = committed,
                Sends = sends,
            });
        }
        return handOver;
    }

    [LoggerMessage(EventId = 5001, Level = LogLevel.Debug, Message = "Dispatched {Events} outbox events into {Deliveries} webhook deliveries")]
    private static partial void LogDispatched(ILogger logger, int events, int deliveries);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning, Message = "Webhook dispatch was rolled back by a concurrent change; running it again: {Reason}")]
    private static partial void LogDispatchConflict(ILogger logger, string reason);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Error, Message = "Webhook dispatch failed; retrying after the poll interval")]
    private static partial void LogDispatchFailed(ILogger logger, Exception exception);
}
