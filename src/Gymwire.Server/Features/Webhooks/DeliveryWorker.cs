using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// Claims due deliveries and attempts them, at most <c>Webhooks:MaxConcurrentDeliveries</c> at once and at
/// most <c>Webhooks:MaxConcurrentPerEndpoint</c> per subscription, so one slow endpoint cannot take every slot.
/// An endpoint that keeps failing is paused and probed (<c>Webhooks:FailingEndpointThreshold</c>); its queued
/// deliveries, and a slow endpoint's behind its one attempt, are held out of the claims' way (<see cref="EndpointHolds"/>).
/// Sleeps until woken (<see cref="DeliverySignal"/>), until the next retry is due, or the poll interval.
/// </summary>
public sealed partial class DeliveryWorker(
    WebhookSender sender,
    DeliverySignal signal,
    EndpointHolds holds,
    IOptions<WebhookOptions> options,
    TimeProvider clock,
    ILogger<DeliveryWorker> logger) : BackgroundService
{
    private readonly WebhookOptions _options = options.Value;
    private readonly ConcurrentDictionary<Guid, int> _perEndpoint = new();
    private readonly ConcurrentDictionary<Guid, Task> _inFlight = new();
    private readonly int _claimBatch = Math.Max(1, options.Value.MaxConcurrentDeliveries / 8);
    private readonly ConcurrentDictionary<Guid, byte> _slow = new();
    private readonly ConcurrentDictionary<Guid, Failing> _failing = new();
    // A timed-out attempt counts as slow even when the timeout is shorter than SlowAttempt (its measured duration
    // starts a moment after the timeout's clock, so it can read a hair under the timeout).
    private readonly double _slowAttemptMs = Math.Min(options.Value.SlowAttempt.TotalMilliseconds, options.Value.Timeout.TotalMilliseconds - 50);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (await ClaimAndStartAsync(stoppingToken))
                {
                    continue; // A full batch: there may be more.
                }
                await WaitAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogWorkerFailed(logger, e);
                try
                {
                    // Back off until the poll interval or the next wake-up, whichever comes first.
                    using var wake = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                    await Task.WhenAny(signal.WaitAsync(wake.Token), Task.Delay(_options.PollInterval, clock, wake.Token));
                    await wake.CancelAsync();
                    stoppingToken.ThrowIfCancellationRequested();
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
        // Shutdown: in-flight attempts see the cancellation, release their claims and end.
        await Task.WhenAll(_inFlight.Values);
    }

    /// <summary>
    /// A subscription's failed attempts in a row on this node and, once they reach the threshold (its circuit is
    /// open), the current pause between probes and its end. The first success removes it.
    /// </summary>
    private sealed record Failing(int InARow, DateTime LastFailed, TimeSpan Pause, DateTime PausedUntil);

    private (Guid[] Subscriptions, Guid[] Deliveries) Skips()
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var skipped = _perEndpoint.Where(kv => kv.Value >= CapFor(kv.Key)).Select(kv => kv.Key).ToHashSet();
        foreach (var (subscription, failing) in _failing)
        {
            if (failing.PausedUntil > now)
            {
                skipped.Add(subscription);
            }
            else if (failing.LastFailed < now - StaleFailing && !_perEndpoint.ContainsKey(subscription))
            {
                // No attempt for an hour: the subscription is gone or idle; it starts afresh if it fails again.
                if (_failing.TryRemove(new KeyValuePair<Guid, Failing>(subscription, failing)))
                {
                    holds.TryRemove(subscription, out _);
                }
            }
        }
        return (skipped.ToArray(), _inFlight.Keys.ToArray());
    }

    private static readonly TimeSpan StaleFailing = TimeSpan.FromHours(1);

    /// <summary>
    /// An endpoint whose last attempt was slow (or timed out) gets one attempt in flight until one is quick again:
    /// a few hanging endpoints would otherwise hold <c>MaxConcurrentPerEndpoint</c> slots each, for the whole timeout,
    /// and every other endpoint would lose that share of the worker.
    /// </summary>
    private int CapFor(Guid subscriptionId) =>
        _slow.ContainsKey(subscriptionId) || IsOpen(subscriptionId) ? 1 : _options.MaxConcurrentPerEndpoint;

    private bool IsOpen(Guid subscriptionId) =>
        _options.FailingEndpointThreshold > 0 && _failing.TryGetValue(subscriptionId, out var failing) && failing.InARow >= _options.FailingEndpointThreshold;

    /// <summary>
    /// Counts a failed attempt; at the threshold the endpoint pauses for a second, and each failed probe after a
    /// pause doubles it (up to <c>Webhooks:FailingEndpointMaxPause</c>). Attempts that were in flight when it opened
    /// count without extending the pause. Returns the end of a pause it started or extended.
    /// </summary>
    private DateTime? Failed(Guid subscriptionId)
    {
        var threshold = _options.FailingEndpointThreshold;
        if (threshold == 0)
        {
            return null;
        }
        var now = clock.GetUtcNow().UtcDateTime;
        var failing = _failing.AddOrUpdate(subscriptionId, _ => new Failing(1, now, TimeSpan.Zero, DateTime.MinValue), (_, f) => f with { InARow = f.InARow + 1, LastFailed = now });
        if (failing.InARow < threshold || failing.PausedUntil > now)
        {
            return null;
        }
        var pause = failing.Pause == TimeSpan.Zero
            ? TimeSpan.FromSeconds(1)
            : TimeSpan.FromTicks(Math.Min(failing.Pause.Ticks * 2, _options.FailingEndpointMaxPause.Ticks));
        _failing[subscriptionId] = failing with { Pause = pause, PausedUntil = now + pause };
        if (failing.Pause == TimeSpan.Zero)
        {
            LogPaused(logger, subscriptionId, failing.InARow);
        }
        return now + pause;
    }

    /// <summary>
    /// Holds a paused endpoint's queued deliveries until <paramref name="until"/>: on opening, every one due before
    /// it; after that, the ones the previous hold set (they all have its exact time). If a move fails they stay due
    /// and this node skips them, as the pause holds either way.
    /// </summary>
    private async Task HoldAsync(Guid subscriptionId, DateTime until, CancellationToken ct)
    {
        var opening = !holds.TryGet(subscriptionId, out var held);
        // Published first, so that fan-out meanwhile gives new deliveries the new time.
        holds.Set(subscriptionId, until);
        await MoveAsync(subscriptionId, opening ? until : held, andEarlier: opening, until, ct);
    }

    private async Task MoveAsync(Guid subscriptionId, DateTime from, bool andEarlier, DateTime to, CancellationToken ct)
    {
        try
        {
            var moved = await sender.MoveQueuedAsync(subscriptionId, from, andEarlier, to, ct);
            LogHeld(logger, subscriptionId, moved, to);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            LogHoldFailed(logger, subscriptionId, e);
        }
    }

    /// <summary>
    /// A probe is starting (the endpoint is open and its pause is over): the deliveries it leaves queued are held until
    /// its claim ends, so they wait for its outcome out of the way; the outcome moves them on (a new pause, or now).
    /// </summary>
    private async Task HoldForProbeAsync(Guid subscriptionId, Task released, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        if (IsOpen(subscriptionId) && holds.TryGet(subscriptionId, out var held) && held <= now)
        {
            await released;
            await HoldAsync(subscriptionId, now + _options.EffectiveClaimLease, ct);
        }
    }

    /// <summary>
    /// A slow endpoint (one attempt in flight at a time) is starting an attempt: the deliveries queued behind it are
    /// held until its claim would end, out of the claims' way, and each of its attempts lets the next one go
    /// (<see cref="LetNextGoAsync"/>). Without this, a slow endpoint's backlog sits at the head of the due index and
    /// every claim walks past it, for as long as it grows.
    /// </summary>
    private async Task HoldForSlowAsync(Guid subscriptionId, Task released, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        if (IsOpen(subscriptionId) || !_slow.ContainsKey(subscriptionId) || holds.TryGet(subscriptionId, out var held) && held > now)
        {
            return;
        }
        var until = now + _options.EffectiveClaimLease;
        holds.Set(subscriptionId, until);
        await released;
        await MoveAsync(subscriptionId, now, andEarlier: true, until, ct);
    }

    /// <summary>
    /// A slow endpoint's attempt is over: one held delivery is due now, for its next attempt. With none left the hold
    /// ends, so new deliveries are due at once again. If the move fails, the held ones wait until the hold's end.
    /// </summary>
    private async Task LetNextGoAsync(Guid subscriptionId, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        if (!holds.TryRemove(subscriptionId, out var held) || held <= now)
        {
            return;
        }
        try
        {
            if (await sender.MoveOneQueuedAsync(subscriptionId, held, now, ct) == 1)
            {
                holds.TryAdd(subscriptionId, held);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            holds.TryAdd(subscriptionId, held);
            LogHoldFailed(logger, subscriptionId, e);
        }
    }

    /// <summary>The endpoint answered (quickly, when it was slow): the deliveries its hold kept are due now.</summary>
    private async Task ReleaseHoldAsync(Guid subscriptionId, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        if (holds.TryRemove(subscriptionId, out var held) && held > now)
        {
            await MoveAsync(subscriptionId, held, andEarlier: false, now, ct);
        }
    }

    private void Succeeded(Guid subscriptionId)
    {
        if (_failing.TryRemove(subscriptionId, out var failing) && failing.Pause > TimeSpan.Zero)
        {
            LogResumed(logger, subscriptionId);
        }
    }

    /// <summary>Claims what there is room for and starts it; true when the claim was full (more may be waiting).</summary>
    private async Task<bool> ClaimAndStartAsync(CancellationToken ct)
    {
        var free = _options.MaxConcurrentDeliveries - _inFlight.Count;
        // While busy, wait until a few slots are free rather than claiming one at a time: each claim is a write.
        if (free <= 0 || (free < _claimBatch && !_inFlight.IsEmpty))
        {
            return false;
        }
        var (skipSubscriptions, skipDeliveries) = Skips();
        var claimed = await sender.ClaimAsync(free, skipSubscriptions, skipDeliveries, ct);
        var overCap = new List<ClaimedDelivery>();
        // A hold's move waits for the over-cap claims to be given back: they are its subscription's rows too.
        var released = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        foreach (var delivery in claimed)
        {
            var count = _perEndpoint.AddOrUpdate(delivery.SubscriptionId, 1, (_, c) => c + 1);
            if (count > CapFor(delivery.SubscriptionId))
            {
                Leave(delivery.SubscriptionId);
                overCap.Add(delivery);
                continue;
            }
            var started = new TaskCompletionSource();
            _inFlight[delivery.Id] = RunAsync(delivery, started.Task, released.Task, ct);
            started.SetResult();
        }
        try
        {
            if (overCap.Count > 0)
            {
                await sender.ReleaseAsync(overCap, CancellationToken.None);
            }
        }
        finally
        {
            released.SetResult();
        }
        return claimed.Count == free && overCap.Count == 0;
    }

    private async Task RunAsync(ClaimedDelivery delivery, Task registered, Task released, CancellationToken ct)
    {
        await registered;
        await Task.Yield();
        try
        {
            var subscription = delivery.SubscriptionId;
            await HoldForProbeAsync(subscription, released, ct);
            await HoldForSlowAsync(subscription, released, ct);
            if (await sender.AttemptAsync(delivery, ct) is { Attempt: var attempt } outcome)
            {
                var slow = attempt.DurationMs >= _slowAttemptMs;
                if (slow)
                {
                    _slow[subscription] = 0;
                }
                else
                {
                    _slow.TryRemove(subscription, out _);
                }
                if (outcome.DeliveryStatus == DeliveryStatus.Delivered)
                {
                    Succeeded(subscription);
                }
                else if (Failed(subscription) is { } pausedUntil)
                {
                    await HoldAsync(subscription, pausedUntil, ct);
                }
                if (!IsOpen(subscription))
                {
                    // Not paused: a slow endpoint lets its next held delivery go, a quick one all of them.
                    await (slow ? LetNextGoAsync(subscription, ct) : ReleaseHoldAsync(subscription, ct));
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // The claim lapses after its lease and the delivery is attempted again.
            LogAttemptFailed(logger, delivery.Id, e);
        }
        finally
        {
            _inFlight.TryRemove(delivery.Id, out _);
            Leave(delivery.SubscriptionId);
            signal.Notify();
        }
    }

    private void Leave(Guid subscriptionId)
    {
        var left = _perEndpoint.AddOrUpdate(subscriptionId, 0, (_, c) => c - 1);
        if (left <= 0)
        {
            _perEndpoint.TryRemove(new KeyValuePair<Guid, int>(subscriptionId, 0));
        }
    }

    private async Task WaitAsync(CancellationToken stoppingToken)
    {
        using var wake = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var waits = new List<Task> { signal.WaitAsync(wake.Token), Task.Delay(_options.PollInterval, clock, wake.Token) };
        // A completion wakes the worker anyway while many are in flight; ask for the next due time only when it could claim.
        if (_options.MaxConcurrentDeliveries - _inFlight.Count >= _claimBatch || _inFlight.IsEmpty)
        {
            var (skipSubscriptions, skipDeliveries) = Skips();
            if (await sender.NextDueAsync(skipSubscriptions, skipDeliveries, stoppingToken) is { } due)
            {
                // Never past the poll interval (which wakes the worker anyway): a timer cannot be set years ahead.
                var wait = due - clock.GetUtcNow().UtcDateTime;
                waits.Add(Task.Delay(TimeSpan.FromTicks(Math.Clamp(wait.Ticks, 0, _options.PollInterval.Ticks)), clock, wake.Token));
            }
            // A paused endpoint's next probe.
            var now = clock.GetUtcNow().UtcDateTime;
            if (_failing.Values.Where(f => f.PausedUntil > now).Select(f => (DateTime?)f.PausedUntil).Min() is { } resume)
            {
                waits.Add(Task.Delay(TimeSpan.FromTicks(Math.Min((resume - now).Ticks, _options.PollInterval.Ticks)), clock, wake.Token));
            }
        }
        await Task.WhenAny(waits);
        await wake.CancelAsync();
        stoppingToken.ThrowIfCancellationRequested();
    }

    [LoggerMessage(EventId = 5202, Level = LogLevel.Warning, Message = "Webhook subscription {SubscriptionId} failed {Failures} attempts in a row: its deliveries are paused and it is probed one delivery at a time")]
    private static partial void LogPaused(ILogger logger, Guid subscriptionId, int failures);

    [LoggerMessage(EventId = 5203, Level = LogLevel.Information, Message = "Webhook subscription {SubscriptionId} answered a probe: its deliveries resume")]
    private static partial void LogResumed(ILogger logger, Guid subscriptionId);

    [LoggerMessage(EventId = 5204, Level = LogLevel.Debug, Message = "Webhook subscription {SubscriptionId}: {Deliveries} queued deliveries moved to {NextAttemptAt:o}")]
    private static partial void LogHeld(ILogger logger, Guid subscriptionId, int deliveries, DateTime nextAttemptAt);

    [LoggerMessage(EventId = 5205, Level = LogLevel.Warning, Message = "Could not move held webhook subscription {SubscriptionId}'s queued deliveries; they are due at the end of the hold, and skipped meanwhile")]
    private static partial void LogHoldFailed(ILogger logger, Guid subscriptionId, Exception exception);

    [LoggerMessage(EventId = 5200, Level = LogLevel.Error, Message = "Webhook delivery worker failed; retrying after the poll interval")]
    private static partial void LogWorkerFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 5201, Level = LogLevel.Error, Message = "Webhook delivery {DeliveryId} attempt failed unexpectedly; it is retried when its claim lapses")]
    private static partial void LogAttemptFailed(ILogger logger, Guid deliveryId, Exception exception);
}
