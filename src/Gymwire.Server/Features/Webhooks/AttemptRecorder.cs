using System.Collections.Concurrent;
using Gymwire.Data;
using Gymwire.Features.Email;
using Gymwire.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>A finished attempt waiting to be recorded; <see cref="Attempt"/> is null when the subscription was inactive and nothing was sent.</summary>
public sealed record AttemptRecord(ClaimedDelivery Delivery, WebhookAttempt? Attempt, TimeSpan? RetryAfter, DateTime Finished);

/// <summary>
/// Records finished attempts: the attempt row, the delivery's next state (delivered, retry at, undeliverable) and
/// the subscription's health. Attempts that finish while a write is under way are written together by the next
/// one (group commit), so a busy worker spends one transaction on many attempts instead of one each; an idle one
/// writes each attempt at once. A caller's task completes when its attempt is committed, so a delivery keeps its
/// worker slot (and its claim) until then and the in-flight bound on duplicates after a crash still holds.
/// </summary>
public sealed partial class AttemptRecorder(
    IServiceScopeFactory scopes, SqliteWriteGate gate, IOptions<WebhookOptions> options, IOptions<DatabaseOptions> database, ILogger<AttemptRecorder> logger)
{
    /// <summary>At most this many attempts in one transaction.</summary>
    public const int MaxBatch = 256;

    /// <summary>Batches written at once on PostgreSQL.</summary>
    public const int PostgresWriters = 4;

    private readonly WebhookOptions _options = options.Value;
    private readonly ConcurrentQueue<Pending> _queue = new();
    private readonly int _maxWriters = database.Value.ProviderKind == DatabaseProvider.Postgres ? PostgresWriters : 1;
    private int _writers;

    private sealed record Pending(AttemptRecord Record, TaskCompletionSource<AttemptOutcome?> Done);

    /// <summary>Queues the attempt and completes once it is committed (with the outcome; null if the delivery was gone or finished).</summary>
    public async Task<AttemptOutcome?> RecordAsync(AttemptRecord record)
    {
        var pending = new Pending(record, new TaskCompletionSource<AttemptOutcome?>(TaskCreationOptions.RunContinuationsAsynchronously));
        _queue.Enqueue(pending);
        StartWriter();
        return await pending.Done.Task;
    }

    /// <summary>
    /// Starts a writer unless enough are running. A writer runs on its own, so an attempt's slot is freed when its own
    /// record commits, not when the writer has drained everything queued behind it. SQLite has one writer (it has one
    /// write lock); PostgreSQL has a few, because there a batch's time is mostly round trips and the batches touch
    /// different rows. A subscription's health is the exception, written only when it changes: EF Core orders a
    /// save's updates by key, so two batches changing the same subscriptions wait for each other instead of deadlocking.
    /// </summary>
    private void StartWriter()
    {
        while (true)
        {
            var running = Volatile.Read(ref _writers);
            if (running >= _maxWriters)
            {
                return;
            }
            if (Interlocked.CompareExchange(ref _writers, running + 1, running) == running)
            {
                _ = Task.Run(WriteQueuedAsync);
                return;
            }
        }
    }

    /// <summary>A writer: batch after batch until the queue is empty.</summary>
    private async Task WriteQueuedAsync()
    {
        while (true)
        {
            var batch = new List<Pending>();
            while (batch.Count < MaxBatch && _queue.TryDequeue(out var next))
            {
                batch.Add(next);
            }
            if (batch.Count == 0)
            {
                Interlocked.Decrement(ref _writers);
                // Something queued after the last dequeue may have found every writer running: start one for it.
                if (!_queue.IsEmpty)
                {
                    StartWriter();
                }
                return;
            }
            try
            {
                await WriteAsync(batch);
            }
            catch (Exception e) when (batch.Count > 1)
            {
                // One bad record must not fail the others: write each on its own.
                LogBatchFailed(logger, batch.Count, e);
                foreach (var one in batch)
                {
                    try
                    {
                        await WriteAsync([one]);
                    }
                    catch (Exception single)
                    {
                        one.Done.TrySetException(single);
                    }
                }
            }
            catch (Exception e)
            {
                batch[0].Done.TrySetException(e);
            }
            // WriteAsync completes every record it wrote; one left pending here would hang its attempt.
            foreach (var one in batch)
            {
                one.Done.TrySetException(new InvalidOperationException("The attempt was not recorded."));
            }
        }
    }

    /// <summary>What the recorder needs of a delivery's stored state (not its payload).</summary>
    private sealed record StoredDelivery(Guid Id, string Status, int AttemptCount, DateTime? LastAttemptAt, int? LastStatusCode);

    private async Task WriteAsync(List<Pending> batch)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        var outcomes = new AttemptOutcome?[batch.Count];
        List<WebhookSubscription> disabled;
        using (await gate.EnterAsync(db, CancellationToken.None))
        {
            await using var tx = await db.Database.BeginTransactionAsync(CancellationToken.None);
            var deliveryIds = batch.Select(p => p.Record.Delivery.Id).Distinct().ToList();
            var subscriptionIds = batch.Select(p => p.Record.Delivery.SubscriptionId).Distinct().ToList();
            var deliveries = await db.WebhookDeliveries.AsNoTracking().Where(d => deliveryIds.Contains(d.Id))
                .Select(d => new StoredDelivery(d.Id, d.Status, d.AttemptCount, d.LastAttemptAt, d.LastStatusCode)).ToDictionaryAsync(d => d.Id, CancellationToken.None);
            var subscriptions = await db.WebhookSubscriptions.Where(s => subscriptionIds.Contains(s.Id)).ToDictionaryAsync(s => s.Id, CancellationToken.None);
            var wasActive = subscriptions.Values.Where(s => s.IsActive).Select(s => s.Id).ToHashSet();
            var changed = new List<DeliveryOutcome>(batch.Count);
            var attempts = new List<WebhookAttempt>(batch.Count);
            for (var i = 0; i < batch.Count; i++)
            {
                var d = batch[i].Record.Delivery;
                var stored = deliveries.GetValueOrDefault(d.Id);
                if (Apply(batch[i].Record, stored, subscriptions.GetValueOrDefault(d.SubscriptionId)) is not { } change)
                {
                    continue;
                }
                // A delivery recorded twice in one batch (it cannot be claimed twice, but be safe) counts on from the first.
                deliveries[d.Id] = stored! with { Status = change.Delivery.Status, AttemptCount = change.Delivery.AttemptCount, LastAttemptAt = change.Delivery.LastAttemptAt, LastStatusCode = change.Delivery.LastStatusCode };
                changed.Add(change.Delivery);
                if (change.Attempt is { } attempt)
                {
                    attempts.Add(attempt);
                    outcomes[i] = new AttemptOutcome(attempt, change.Delivery.Status);
                }
            }
            await DeliveryRows.UpdateOutcomesAsync(db, changed, CancellationToken.None);
            await DeliveryRows.InsertAttemptsAsync(db, attempts, CancellationToken.None);
            await db.SaveChangesAsync(CancellationToken.None);
            disabled = subscriptions.Values.Where(s => !s.IsActive && wasActive.Contains(s.Id)).ToList();
            // A subscription this batch deactivated (410, or failing too long) gets none of its queued deliveries sent.
            await DeliveryRows.DropQueuedAsync(db, disabled.Select(s => s.Id).ToList(), batch.Max(p => p.Record.Finished), CancellationToken.None);
            await tx.CommitAsync(CancellationToken.None);
        }
        for (var i = 0; i < batch.Count; i++)
        {
            batch[i].Done.TrySetResult(outcomes[i]);
        }
        // After the commit and outside the batch's failure handling: a failed notification must not write the batch again.
        foreach (var subscription in disabled)
        {
            try
            {
                // Tell the owner by email (when Email is configured).
                await scope.ServiceProvider.GetRequiredService<OwnerNotifications>()
                    .WebhookDisabledAsync(subscription.GymId, subscription.Url, subscription.DisabledReason ?? "", CancellationToken.None);
            }
            catch (Exception e)
            {
                LogNotifyFailed(logger, subscription.Id, e);
            }
        }
    }

    /// <summary>
    /// Works out one finished attempt's effect: the delivery's next state (delivered, retry at, undeliverable) and
    /// its attempt row, and applies the subscription's health to the tracked subscription (the caller saves).
    /// Null when the delivery is gone or finished meanwhile; the attempt is null when nothing was sent.
    /// </summary>
    private (DeliveryOutcome Delivery, WebhookAttempt? Attempt)? Apply(AttemptRecord record, StoredDelivery? delivery, WebhookSubscription? subscription)
    {
        if (delivery is null || subscription is null || delivery.Status is DeliveryStatus.Delivered or DeliveryStatus.Undeliverable)
        {
            return null;
        }
        if (record.Attempt is not { } attempt)
        {
            return (new DeliveryOutcome(delivery.Id, DeliveryStatus.Undeliverable, delivery.AttemptCount, delivery.LastAttemptAt, delivery.LastStatusCode,
                DeliveryRows.InactiveError, null), null);
        }
        var now = attempt.AttemptedAt;
        var finished = record.Finished;
        var succeeded = attempt.StatusCode is >= 200 and < 300;
        var attemptCount = delivery.AttemptCount + 1;
        var schedule = _options.EffectiveRetrySchedule;
        string status;
        DateTime? next = null;
        if (succeeded)
        {
            status = DeliveryStatus.Delivered;
            subscription.FailingSince = null;
            LogDelivered(logger, delivery.Id, subscription.Id, attempt.StatusCode!.Value, attempt.DurationMs);
        }
        else
        {
            subscription.FailingSince ??= now;
            if (attempt.StatusCode == StatusCodes.Status410Gone)
            {
                Deactivate(subscription, "The endpoint answered 410 Gone", finished);
                status = DeliveryStatus.Undeliverable;
            }
            else if (record.Delivery.IsTest || attemptCount > schedule.Count)
            {
                status = DeliveryStatus.Undeliverable;
                LogUndeliverable(logger, delivery.Id, subscription.Id, attemptCount);
            }
            else
            {
                status = DeliveryStatus.Retrying;
                next = finished + RetryDelay(schedule[attemptCount - 1], record.RetryAfter);
                LogRetrying(logger, delivery.Id, subscription.Id, attempt.StatusCode, attempt.Error, next.Value);
            }
            if (subscription.IsActive && finished - subscription.FailingSince >= _options.AutoDisableAfter)
            {
                Deactivate(subscription,
                    $"Every delivery attempt has failed since {GymwireJson.FormatTimestamp(subscription.FailingSince.Value)} (Webhooks:AutoDisableAfter is {_options.AutoDisableAfter})", finished);
            }
        }
        return (new DeliveryOutcome(delivery.Id, status, attemptCount, now, attempt.StatusCode, Truncate(attempt.Error, 1000), next), attempt);
    }

    private void Deactivate(WebhookSubscription subscription, string reason, DateTime now)
    {
        subscription.IsActive = false;
        subscription.DisabledReason = reason;
        subscription.DisabledAt = now;
        subscription.UpdatedAt = now;
        LogDeactivated(logger, subscription.Id, reason);
    }

    private TimeSpan RetryDelay(TimeSpan scheduled, TimeSpan? retryAfter)
    {
        if (retryAfter is { } asked)
        {
            return asked < _options.MinRetryAfter ? _options.MinRetryAfter : asked > _options.MaxRetryAfter ? _options.MaxRetryAfter : asked;
        }
        // Jitter spreads the retries of a burst that failed together.
        return scheduled * (1 + Random.Shared.NextDouble() * _options.RetryJitter);
    }

    [LoggerMessage(EventId = 5100, Level = LogLevel.Debug, Message = "Webhook delivery {DeliveryId} to subscription {SubscriptionId} delivered: {StatusCode} in {DurationMs} ms")]
    private static partial void LogDelivered(ILogger logger, Guid deliveryId, Guid subscriptionId, int statusCode, int durationMs);

    [LoggerMessage(EventId = 5101, Level = LogLevel.Information, Message = "Webhook delivery {DeliveryId} to subscription {SubscriptionId} failed ({StatusCode}, {Error}); retry at {NextAttemptAt:o}")]
    private static partial void LogRetrying(ILogger logger, Guid deliveryId, Guid subscriptionId, int? statusCode, string? error, DateTime nextAttemptAt);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId} to subscription {SubscriptionId} is undeliverable after {Attempts} attempts")]
    private static partial void LogUndeliverable(ILogger logger, Guid deliveryId, Guid subscriptionId, int attempts);

    [LoggerMessage(EventId = 5103, Level = LogLevel.Warning, Message = "Webhook subscription {SubscriptionId} deactivated: {Reason}")]
    private static partial void LogDeactivated(ILogger logger, Guid subscriptionId, string reason);

    private static string? Truncate(string? value, int max) => value is null || value.Length <= max ? value : value[..max];

    [LoggerMessage(EventId = 5106, Level = LogLevel.Warning, Message = "Could not notify the owner that webhook subscription {SubscriptionId} was deactivated")]
    private static partial void LogNotifyFailed(ILogger logger, Guid subscriptionId, Exception exception);

    [LoggerMessage(EventId = 5105, Level = LogLevel.Warning, Message = "Recording {Count} webhook attempts in one transaction failed; recording them one by one")]
    private static partial void LogBatchFailed(ILogger logger, int count, Exception exception);
}
