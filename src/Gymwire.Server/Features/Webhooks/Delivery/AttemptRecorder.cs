using System.Threading.Channels;
using Gymwire.Features.Email;
using Gymwire.Infrastructure;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// Records finished attempts through the queue (<see cref="IDeliveryQueue.CompleteAsync"/>): the attempt row, the
/// delivery's next state (delivered, retry at, undeliverable) and the subscription's health (failing since, and the
/// endpoint's pause as <see cref="EndpointPolicy.Next"/> works it out). Attempts that finish
/// while a batch is being written are written together by the next one (group commit), so a busy worker spends one
/// transaction on many attempts; an idle one writes each at once. A caller's task completes when its attempt is
/// committed, so a delivery keeps its worker slot (and its claim) until then, and the bound on duplicates after a
/// crash (<c>Webhooks:MaxConcurrentDeliveries</c>) holds.
/// </summary>
public sealed partial class AttemptRecorder : IDisposable
{
    /// <summary>At most this many attempts in one transaction.</summary>
    public const int MaxBatch = 256;

    private readonly IDeliveryQueue _queue;
    private readonly EndpointPolicy _policy;
    private readonly OwnerNoticeQueue _notices;
    private readonly WebhookOptions _options;
    private readonly ILogger<AttemptRecorder> _logger;
    private readonly DeliveryMetrics _metrics;
    private readonly Channel<Pending> _pending = Channel.CreateUnbounded<Pending>();

    public AttemptRecorder(IDeliveryQueue queue, EndpointPolicy policy, OwnerNoticeQueue notices, IOptions<WebhookOptions> options, DeliveryMetrics metrics,
        ILogger<AttemptRecorder> logger)
    {
        (_queue, _policy, _notices, _options, _metrics, _logger) = (queue, policy, notices, options.Value, metrics, logger);
        // Each writer takes what is waiting when it is free, so an attempt's slot is freed when its own batch commits.
        // Nothing awaits the writers: each ends when Dispose completes the channel, and a failure is its records' own
        // (every record's task carries it to the attempt that waits for it).
        for (var i = 0; i < queue.RecordWriters; i++)
        {
            _ = Task.Run(WriteAsync);
        }
    }

    private sealed record Pending(AttemptRecord Record, TaskCompletionSource<AttemptOutcome?> Done);

    /// <summary>Queues the attempt and completes once it is committed (with the outcome; null if the delivery was gone or finished).</summary>
    public Task<AttemptOutcome?> RecordAsync(AttemptRecord record)
    {
        var pending = new Pending(record, new TaskCompletionSource<AttemptOutcome?>(TaskCreationOptions.RunContinuationsAsynchronously));
        if (!_pending.Writer.TryWrite(pending))
        {
            pending.Done.SetException(new ObjectDisposedException(nameof(AttemptRecorder)));
        }
        return pending.Done.Task;
    }

    public void Dispose() => _pending.Writer.TryComplete();

    /// <summary>A writer: batch after batch, for as long as the recorder lives.</summary>
    private async Task WriteAsync()
    {
        var batch = new List<Pending>(MaxBatch);
        while (await _pending.Reader.WaitToReadAsync())
        {
            batch.Clear();
            while (batch.Count < MaxBatch && _pending.Reader.TryRead(out var next))
            {
                batch.Add(next);
            }
            if (batch.Count > 0)
            {
                await WriteBatchAsync(batch);
            }
        }
    }

    private async Task WriteBatchAsync(List<Pending> batch)
    {
        try
        {
            await CommitAsync(batch);
        }
        catch (Exception e) when (batch.Count > 1)
        {
            // One bad record must not fail the others: write each on its own.
            LogBatchFailed(_logger, batch.Count, e);
            foreach (var one in batch)
            {
                try
                {
                    await CommitAsync([one]);
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
        // CommitAsync completes every record it wrote; one left pending here would hang its attempt.
        foreach (var one in batch)
        {
            one.Done.TrySetException(new InvalidOperationException("The attempt was not recorded."));
        }
    }

    private async Task CommitAsync(List<Pending> batch)
    {
        // Another writer may meet the batch's rows in another order, and then nothing of the batch is written: written
        // again, its attempts keep their slots and claims, rather than lapsing into a second send.
        // What each try decided is logged only once it is committed: a try rolled back, or a batch split after a
        // failure, decides again, possibly otherwise.
        List<Action> decisions = [];
        var recorded = await ErrorHandling.RetryConflictsAsync(
            () =>
            {
                decisions = [];
                var tried = decisions;
                return _queue.CompleteAsync([.. batch.Select(p => p.Record)], (r, d, s) => Decide(r, d, s, tried), CancellationToken.None);
            },
            reason => LogBatchConflict(_logger, batch.Count, reason));
        foreach (var log in decisions)
        {
            log();
        }
        for (var i = 0; i < batch.Count; i++)
        {
            batch[i].Done.TrySetResult(recorded.Outcomes[i]);
        }
        // Counted once committed: a batch that fails is written again one by one, and would count twice.
        for (var i = 0; i < batch.Count; i++)
        {
            var record = batch[i].Record;
            // Latency from the delivery's creation (its event's commit, give or take the dispatch lag); a redelivery's
            // or test send's 2xx is not a first delivery of a committed event.
            if (recorded.Outcomes[i]?.DeliveryStatus == DeliveryStatus.Delivered
                && record.Attempt?.Trigger is DeliveryMetrics.Triggers.Initial or DeliveryMetrics.Triggers.Retry)
            {
                _metrics.RecordDelivered(record.Finished - record.Delivery.CreatedAt);
            }
        }
        // Every delivery the batch ended: its schedule or test send failed, a 410, an inactive subscription's claimed
        // delivery (no attempt), and the queued deliveries of the subscriptions the batch deactivated.
        _metrics.RecordUndeliverable(recorded.Undeliverable);
        // After the commit and outside the batch's failure handling: a failed notification must not write the batch again.
        foreach (var subscription in recorded.Deactivated)
        {
            // Tell the owner by email (when Email is configured), queued for a background sender: this writer records
            // every gym's deliveries, and a slow or hanging mail server must not hold them up.
            _notices.WebhookDisabled(subscription.GymId, subscription.Id, subscription.Url, subscription.DisabledReason ?? "");
        }
    }

    /// <summary>
    /// Works out one finished attempt's effect: the delivery's next state (delivered, retry at, undeliverable) and
    /// its attempt row, and applies the subscription's health to the tracked subscription (the caller saves).
    /// Null when the delivery is gone or finished meanwhile; the attempt is null when nothing was sent.
    /// </summary>
    private (DeliveryOutcome Delivery, WebhookAttempt? Attempt)? Decide(AttemptRecord record, StoredDelivery delivery, WebhookSubscription subscription, List<Action> logs)
    {
        if (delivery.Status is DeliveryStatus.Delivered or DeliveryStatus.Undeliverable)
        {
            return null;
        }
        // Disabled by its owner while claimed (the disable pauses only unclaimed deliveries): paused like the others.
        var ownerDisabled = !subscription.IsActive && subscription.DisabledReason is null;
        if (record.Attempt is not { } attempt)
        {
            // Read while its webhook was off: nothing was sent, and the delivery keeps its last error. Its webhook's
            // state now decides: on again (enabled since the read), it is due now; disabled by the owner, paused with
            // the others; deactivated by Gymwire, it ends.
            return (subscription.IsActive || ownerDisabled) && !record.Delivery.IsTest
                ? (new DeliveryOutcome(delivery.Id, delivery.Status, delivery.AttemptCount, delivery.LastAttemptAt, delivery.LastStatusCode, delivery.LastError,
                    subscription.IsActive ? record.Finished : null), null)
                : (new DeliveryOutcome(delivery.Id, DeliveryStatus.Undeliverable, delivery.AttemptCount, delivery.LastAttemptAt, delivery.LastStatusCode,
                    DeliveryRows.InactiveError, null), null);
        }
        if (record.NoBody)
        {
            return DecideNoBody(record, delivery, attempt, subscription, logs);
        }
        var now = attempt.AttemptedAt;
        var finished = record.Finished;
        var succeeded = record.Succeeded;
        if (ownerDisabled && !succeeded)
        {
            return DecidePaused(record, delivery, attempt, logs);
        }
        if (record.CountsForHealth)
        {
            subscription.Health = _policy.Next(subscription.Id, subscription.Health, succeeded);
        }
        var attemptCount = delivery.AttemptCount + 1;
        if (record.Delivery.IsTest)
        {
            return DecideTest(delivery, subscription.Id, attempt, succeeded, logs);
        }
        var schedule = _options.EffectiveRetrySchedule;
        string status;
        DateTime? next = null;
        if (succeeded)
        {
            status = DeliveryStatus.Delivered;
            subscription.FailingSince = null;
            if (_logger.IsEnabled(LogLevel.Debug))
            {
                logs.Add(() => LogDelivered(_logger, delivery.Id, subscription.Id, attempt.StatusCode!.Value, attempt.DurationMs));
            }
        }
        else
        {
            subscription.FailingSince ??= now;
            if (attempt.StatusCode == StatusCodes.Status410Gone)
            {
                Deactivate(subscription, "The endpoint answered 410 Gone", finished, logs);
                status = DeliveryStatus.Undeliverable;
            }
            else if (attemptCount > schedule.Count)
            {
                status = DeliveryStatus.Undeliverable;
                logs.Add(() => LogUndeliverable(_logger, delivery.Id, subscription.Id, attemptCount, attemptCount == 1 ? "attempt" : "attempts"));
            }
            else
            {
                status = DeliveryStatus.Retrying;
                next = finished + RetryDelay(schedule[attemptCount - 1], record.RetryAfter);
                var retryAt = next.Value;
                logs.Add(() => LogRetrying(_logger, delivery.Id, subscription.Id, Answer(attempt), retryAt));
            }
            if (subscription.IsActive && finished - subscription.FailingSince >= _options.AutoDisableAfter)
            {
                Deactivate(subscription,
                    $"Every delivery attempt has failed since {GymwireJson.FormatTimestamp(subscription.FailingSince.Value)} (Webhooks:AutoDisableAfter is {_options.AutoDisableAfter})", finished, logs);
            }
        }
        return (new DeliveryOutcome(delivery.Id, status, attemptCount, now, attempt.StatusCode, attempt.Error, next), attempt);
    }

    /// <summary>
    /// A test send: tried once, and its answer shown to the owner. It is the receiver's answer to a sample, not to the
    /// webhook's events, so it changes nothing about the webhook (not failing, not deactivated by a 410, no pause).
    /// </summary>
    private (DeliveryOutcome Delivery, WebhookAttempt? Attempt) DecideTest(StoredDelivery delivery, Guid subscriptionId, WebhookAttempt attempt, bool succeeded, List<Action> logs)
    {
        var status = succeeded ? DeliveryStatus.Delivered : DeliveryStatus.Undeliverable;
        logs.Add(() => LogTestSent(_logger, delivery.Id, subscriptionId, Answer(attempt)));
        return (new DeliveryOutcome(delivery.Id, status, delivery.AttemptCount + 1, attempt.AttemptedAt, attempt.StatusCode, attempt.Error, null), attempt);
    }

    /// <summary>
    /// A failed attempt that was in flight when the owner disabled its webhook: recorded with its own error, and the
    /// delivery paused (no due time) instead of scheduled, so enabling the webhook resumes it. It changes nothing on
    /// the disabled subscription (no failure counted, no pause, no deactivation); a 410 or the end of the retry
    /// schedule still ends the delivery.
    /// </summary>
    private (DeliveryOutcome Delivery, WebhookAttempt? Attempt) DecidePaused(AttemptRecord record, StoredDelivery delivery, WebhookAttempt attempt, List<Action> logs)
    {
        var attemptCount = delivery.AttemptCount + 1;
        var ended = attempt.StatusCode == StatusCodes.Status410Gone || record.Delivery.IsTest || attemptCount > _options.EffectiveRetrySchedule.Count;
        var status = ended ? DeliveryStatus.Undeliverable : DeliveryStatus.Retrying;
        logs.Add(() => LogPausedAttempt(_logger, delivery.Id, record.Delivery.SubscriptionId, Answer(attempt), status));
        return (new DeliveryOutcome(delivery.Id, status, attemptCount, attempt.AttemptedAt, attempt.StatusCode, attempt.Error, null), attempt);
    }

    /// <summary>
    /// An attempt that had no body to send (<see cref="AttemptRecord.NoBody"/>): nothing reached the endpoint, and no
    /// retry ever could, so the delivery ends at once and the endpoint's health is left as it is (such deliveries would
    /// otherwise pause, or disable, a healthy endpoint). A probe that drew one is given up, so that the next probe goes
    /// now instead of at this one's lease end.
    /// </summary>
    private (DeliveryOutcome Delivery, WebhookAttempt? Attempt) DecideNoBody(AttemptRecord record, StoredDelivery delivery, WebhookAttempt attempt,
        WebhookSubscription subscription, List<Action> logs)
    {
        if (record.Delivery.ProbeEnd is { } end && subscription.ProbeClaimedUntil == end)
        {
            subscription.Health = subscription.Health with { ProbeClaimedUntil = null };
        }
        var attemptCount = delivery.AttemptCount + 1;
        logs.Add(() => LogNoBody(_logger, delivery.Id, record.Delivery.SubscriptionId));
        return (new DeliveryOutcome(delivery.Id, DeliveryStatus.Undeliverable, attemptCount, attempt.AttemptedAt, null, attempt.Error, null), attempt);
    }

    private void Deactivate(WebhookSubscription subscription, string reason, DateTime now, List<Action> logs)
    {
        subscription.IsActive = false;
        subscription.DisabledReason = reason;
        subscription.DisabledAt = now;
        subscription.UpdatedAt = now;
        // Gymwire's switch, not the owner's: the key that created it may switch it on again once its receiver is fixed.
        subscription.SwitchedByOwner = false;
        logs.Add(() => LogDeactivated(_logger, subscription.Id, reason));
    }

    /// <summary>An attempt's answer for the log: its status and error, whichever it has (a timeout has no status).</summary>
    private static string Answer(WebhookAttempt attempt) =>
        string.Join(", ", new[] { attempt.StatusCode?.ToString(CultureInfo.InvariantCulture), attempt.Error }.Where(p => !string.IsNullOrEmpty(p)).DefaultIfEmpty("no answer"));

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

    [LoggerMessage(EventId = 5101, Level = LogLevel.Information, Message = "Webhook delivery {DeliveryId} to subscription {SubscriptionId} failed ({Answer}); retry at {NextAttemptAt:o}")]
    private static partial void LogRetrying(ILogger logger, Guid deliveryId, Guid subscriptionId, string answer, DateTime nextAttemptAt);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId} to subscription {SubscriptionId} is undeliverable after {Attempts} {AttemptWord}")]
    private static partial void LogUndeliverable(ILogger logger, Guid deliveryId, Guid subscriptionId, int attempts, string attemptWord);

    [LoggerMessage(EventId = 5110, Level = LogLevel.Debug, Message = "Webhook test send {DeliveryId} to subscription {SubscriptionId} answered: {Answer}")]
    private static partial void LogTestSent(ILogger logger, Guid deliveryId, Guid subscriptionId, string answer);

    [LoggerMessage(EventId = 5109, Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId} to subscription {SubscriptionId} is undeliverable: its outbox event is missing, or its data is not JSON, so there is no body to send")]
    private static partial void LogNoBody(ILogger logger, Guid deliveryId, Guid subscriptionId);

    [LoggerMessage(EventId = 5107, Level = LogLevel.Information, Message = "Webhook delivery {DeliveryId} to subscription {SubscriptionId} failed ({Answer}) after its webhook was disabled: {Status}, with no due time (a retrying one resumes when the webhook is enabled)")]
    private static partial void LogPausedAttempt(ILogger logger, Guid deliveryId, Guid subscriptionId, string answer, string status);

    [LoggerMessage(EventId = 5103, Level = LogLevel.Warning, Message = "Webhook subscription {SubscriptionId} deactivated: {Reason}")]
    private static partial void LogDeactivated(ILogger logger, Guid subscriptionId, string reason);

    [LoggerMessage(EventId = 5108, Level = LogLevel.Warning, Message = "Recording {Count} webhook attempts was rolled back by a concurrent change; writing them again: {Reason}")]
    private static partial void LogBatchConflict(ILogger logger, int count, string reason);

    [LoggerMessage(EventId = 5105, Level = LogLevel.Warning, Message = "Recording {Count} webhook attempts in one transaction failed; recording them one by one")]
    private static partial void LogBatchFailed(ILogger logger, int count, Exception exception);
}
