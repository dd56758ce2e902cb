using System.Collections.Concurrent;
using Gymwire.Infrastructure;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// Delivers due deliveries, at most <c>Webhooks:MaxConcurrentDeliveries</c> at once on this node (<see cref="DeliverySlots"/>).
/// Each goes claim (<see cref="IDeliveryQueue"/>, or the dispatcher's fan-out handed over) → admit
/// (<see cref="EndpointPolicy"/>; a failing endpoint's probe is won in the queue first) → attempt (<see cref="Attempt"/>)
/// → record (<see cref="AttemptRecorder"/>) → observe (<see cref="EndpointPolicy"/>). Between claims it sleeps until
/// woken (<see cref="DeliverySignal"/>), until the next delivery or probe is due, or for the poll interval. On stop it
/// claims nothing more and lets the attempts already out finish and be recorded, for up to <see cref="DrainOf"/>.
/// </summary>
public sealed partial class DeliveryWorker(
    IDeliveryQueue queue,
    EndpointPolicy policy,
    Attempt attempt,
    AttemptRecorder recorder,
    DeliverySlots slots,
    DeliverySignal signal,
    IOptions<WebhookOptions> options,
    TimeProvider clock,
    IOptions<HostOptions> hostOptions,
    IHostApplicationLifetime lifetime,
    ILogger<DeliveryWorker> logger) : BackgroundService
{
    private readonly WebhookOptions _options = options.Value;
    private readonly TimeSpan _drain = DrainOf(hostOptions.Value.ShutdownTimeout);
    // Cancels the attempts still out when the drain ends (or the worker is disposed unstopped); the stopping token only
    // stops claiming.
    private readonly CancellationTokenSource _abandon = new();
    private DateTimeOffset? _stopBegan;
    private readonly ConcurrentDictionary<Guid, Task> _inFlight = new();
    // Every attempt until it ends, for shutdown to wait for: a fan-out rolled back and run again can hand over a delivery
    // whose first attempt is still out, and _inFlight then holds only the second.
    private readonly ConcurrentDictionary<Task, bool> _running = new();

    /// <summary>
    /// How long after the host begins to stop the attempts in flight may still finish: two thirds of the host's shutdown
    /// timeout, so that the last third is left for the attempts cancelled then to give their claims back and for the
    /// services stopped after the worker (dispatcher, e-mail) to end before the host stops waiting.
    /// </summary>
    public static TimeSpan DrainOf(TimeSpan shutdownTimeout) =>
        shutdownTimeout == Timeout.InfiniteTimeSpan ? Timeout.InfiniteTimeSpan
        : shutdownTimeout <= TimeSpan.Zero ? TimeSpan.Zero
        : shutdownTimeout * 2 / 3;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        // The drain counts from the host's stop, not the worker's: the web server stops first, within the same timeout.
        using var stopping = lifetime.ApplicationStopping.Register(() => _stopBegan ??= clock.GetUtcNow());
        await ReleaseLeftoverClaimsAsync(stoppingToken);
        // Only now may the dispatcher hand over claims: the release above would have let go of them.
        slots.Open();
        var conflicts = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                while (slots.TryTakeHandedOver(out var handedOver))
                {
                    await StartAsync(handedOver, stoppingToken);
                }
                if (!await ClaimAndStartAsync(stoppingToken))
                {
                    await WaitAsync(stoppingToken);
                }
                conflicts = 0;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (ErrorHandling.IsConcurrencyConflict(e) && ++conflicts < ErrorHandling.ConflictTries)
            {
                // PostgreSQL rolled a claim back to break a deadlock with another writer: nothing was claimed or lost,
                // and the loop runs again at once.
                LogWorkerConflict(logger, e.GetBaseException().Message);
            }
            catch (Exception e)
            {
                conflicts = 0;
                LogWorkerFailed(logger, e);
                try
                {
                    await WaitAsync(stoppingToken, askQueue: false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
        // Shutdown: claims handed over and not started are given back; attempts in flight finish and are recorded, so
        // that their receivers do not get them again from another node or the next start.
        slots.Close();
        while (slots.TryTakeHandedOver(out var handedOver))
        {
            await GiveBackAsync(handedOver);
            slots.Return(handedOver.Count);
        }
        await DrainAsync();
    }

    /// <summary>
    /// Waits for the attempts in flight until the drain ends; those still out then are cancelled, give their claims
    /// back and end.
    /// </summary>
    private async Task DrainAsync()
    {
        var all = Task.WhenAll(_running.Keys);
        if (!all.IsCompleted)
        {
            var left = _drain == Timeout.InfiniteTimeSpan ? _drain
                : TimeSpan.FromTicks(Math.Max(0, ((_stopBegan ?? clock.GetUtcNow()) + _drain - clock.GetUtcNow()).Ticks));
            using var timer = new CancellationTokenSource();
            var drained = Task.Delay(left, clock, timer.Token);
            LogDraining(logger, _running.Count, left);
            await Task.WhenAny(all, drained);
            await timer.CancelAsync();
            if (!all.IsCompleted)
            {
                LogDrainEnded(logger, _running.Count);
                await _abandon.CancelAsync();
            }
        }
        await Task.WhenAll(_running.Keys);
    }

    public override void Dispose()
    {
        _abandon.Cancel();
        _abandon.Dispose();
        base.Dispose();
    }

    /// <summary>
    /// Gives claims back unattempted, once those handed over are committed (a fan-out rolled back left none to give
    /// back). If that fails, they come due when their lease ends.
    /// </summary>
    private async Task GiveBackAsync(IReadOnlyCollection<ClaimedDelivery> claimed)
    {
        // Set aside: the fan-out that handed them over need not wait for them (and cannot commit while it does).
        foreach (var delivery in claimed)
        {
            delivery.MarkStarted();
        }
        try
        {
            claimed = await CommittedAsync(claimed);
            if (claimed.Count == 0)
            {
                return;
            }
            await ErrorHandling.RetryConflictsAsync(async () =>
            {
                await queue.ReleaseAsync(claimed, CancellationToken.None);
                return true;
            }, reason => LogWorkerConflict(logger, reason));
        }
        catch (Exception e)
        {
            LogWorkerFailed(logger, e);
        }
    }

    /// <summary>The deliveries whose rows are committed: all but those handed over by a fan-out that was not.</summary>
    private static async Task<IReadOnlyCollection<ClaimedDelivery>> CommittedAsync(IReadOnlyCollection<ClaimedDelivery> claimed)
    {
        foreach (var fanOut in claimed.Select(d => d.Committed).OfType<Task<bool>>().Distinct())
        {
            await fanOut;
        }
        return [.. claimed.Where(d => d.Committed is null || d.Committed.Result)];
    }

    /// <summary>
    /// Before the first claim: claims a killed process left are given back where the queue can tell they are
    /// (<see cref="IDeliveryQueue.ReleaseLeftoverClaimsAsync"/>), so they are sent now rather than when their lease ends.
    /// If that fails, they still come due at the lease's end.
    /// </summary>
    private async Task ReleaseLeftoverClaimsAsync(CancellationToken ct)
    {
        try
        {
            if (await queue.ReleaseLeftoverClaimsAsync(ct) is > 0 and var released)
            {
                LogReleasedLeftoverClaims(logger, released);
            }
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            LogWorkerFailed(logger, e);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Claims what there is room for, then admits and starts each; true when the claim was full (more may be waiting).</summary>
    private async Task<bool> ClaimAndStartAsync(CancellationToken ct)
    {
        // The slots are taken before the claim: taken after it, the dispatcher's hand-overs meanwhile left claims with
        // no slot, claimed and given back for nothing.
        var taken = slots.Take(int.MaxValue);
        if (taken == 0)
        {
            return false;
        }
        IReadOnlyList<ClaimedDelivery> claimed;
        try
        {
            claimed = await queue.ClaimAsync(taken, policy.AtCapacity(), [.. _inFlight.Keys], ct);
        }
        catch
        {
            // Nothing was claimed (a commit whose answer was lost leaves claims that lapse with their lease).
            slots.Return(taken);
            throw;
        }
        slots.Return(taken - claimed.Count);
        var started = await StartAsync(claimed, ct);
        return claimed.Count == taken && started == claimed.Count;
    }

    /// <summary>
    /// Admits and starts claimed deliveries, each holding a slot; those refused (their endpoint at its cap, paused, or
    /// probed by another node) are given back, with their slots. Returns how many started.
    /// </summary>
    private async Task<int> StartAsync(IReadOnlyList<ClaimedDelivery> claimed, CancellationToken ct)
    {
        var refused = new List<ClaimedDelivery>();
        // A failing endpoint's probe, tried once per claim: the end of the probe this node won, or null when it lost it.
        Dictionary<Guid, DateTime?>? probes = null;
        TaskCompletionSource? afterRelease = null;
        var next = 0;
        try
        {
            for (; next < claimed.Count; next++)
            {
                var delivery = claimed[next];
                if (probes is not null && probes.TryGetValue(delivery.SubscriptionId, out var probeEnd))
                {
                    // Its other deliveries wait for the probe's outcome, due when the probe ends, as its queued ones do.
                    refused.Add(probeEnd is { } end ? delivery with { DueAt = end } : delivery);
                    continue;
                }
                var admission = policy.Admit(delivery.SubscriptionId, delivery.Health);
                if (admission == Admission.Probe)
                {
                    (probes ??= [])[delivery.SubscriptionId] = probeEnd = await ClaimProbeAsync(delivery.SubscriptionId, ct);
                    if (probeEnd is not null)
                    {
                        // A probe starts once the claims given back are: its record moves the endpoint's waiting deliveries
                        // on (to its next pause's end, or now), and must find these among them.
                        afterRelease ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                        Start(delivery with { ProbeEnd = probeEnd }, afterRelease.Task);
                        continue;
                    }
                }
                if (admission != Admission.Go)
                {
                    refused.Add(delivery);
                    continue;
                }
                Start(delivery, Task.CompletedTask);
            }
        }
        catch
        {
            // A probe's claim failed (the database, or shutdown): the claims not started yet go back with the refused ones.
            refused.AddRange(claimed.Skip(next));
            throw;
        }
        finally
        {
            try
            {
                if (refused.Count > 0)
                {
                    await GiveBackAsync(refused);
                    slots.Return(refused.Count);
                }
            }
            finally
            {
                // Probes started above wait for this, whatever happened since.
                afterRelease?.SetResult();
            }
        }
        return claimed.Count - refused.Count;
    }

    /// <summary>
    /// The probe's end if this node probes the failing endpoint (one node in the cluster does); if not (another node
    /// probes it, or it paused or recovered meanwhile), null, and the slot <see cref="EndpointPolicy.Admit"/> took is freed.
    /// </summary>
    private async Task<DateTime?> ClaimProbeAsync(Guid subscriptionId, CancellationToken ct)
    {
        DateTime? won = null;
        try
        {
            won = await queue.ClaimProbeAsync(subscriptionId, ct);
            return won;
        }
        finally
        {
            if (won is null)
            {
                policy.Release(subscriptionId);
            }
        }
    }

    /// <summary>Starts an admitted delivery's attempt once <paramref name="after"/> completes, registered in flight.</summary>
    private void Start(ClaimedDelivery delivery, Task after)
    {
        if (!after.IsCompleted)
        {
            // A probe waits for its fellow claims to be given back, which waits for their fan-out's commit.
            delivery.MarkStarted();
        }
        // The attempt waits until it is registered, since its end removes it. A fan-out rolled back and run again can hand
        // over a delivery whose first attempt is still out: each attempt removes only its own entry.
        var registered = new TaskCompletionSource<Task>(TaskCreationOptions.RunContinuationsAsynchronously);
        var task = DeliverAsync(delivery, after, registered.Task, _abandon.Token);
        _inFlight[delivery.Id] = task;
        _running[task] = true;
        registered.SetResult(task);
    }

    /// <summary>
    /// One delivery's attempt, from its admission to its endpoint's next state: attempt, record, observe. It starts when
    /// <paramref name="after"/> (a probe's fellow claims are given back) and <paramref name="registered"/> (it is in flight) complete.
    /// </summary>
    private async Task DeliverAsync(ClaimedDelivery delivery, Task after, Task<Task> registered, CancellationToken ct)
    {
        await after;
        var self = await registered;
        await Task.Yield();
        var observed = false;
        try
        {
            if (delivery.Committed is { IsCompleted: true, Result: false })
            {
                // Its fan-out was rolled back before the attempt began: nothing to send or record.
                LogFanOutRolledBack(logger, delivery.Id);
                return;
            }
            // The send's first wait is usually for the response (a pooled connection takes the request at once): the
            // fan-out that handed the delivery over may insert now.
            var sending = attempt.SendAsync(delivery, ct);
            delivery.MarkStarted();
            var record = await sending;
            if (delivery.Committed is { } committed && !await committed)
            {
                // Its fan-out was rolled back after the send: there is no row to record it in, and the event is fanned
                // out again, so the delivery is sent again under the same webhook-id.
                LogFanOutRolledBack(logger, delivery.Id);
            }
            else if (await recorder.RecordAsync(record) is { } outcome)
            {
                // An attempt with no body sent nothing, so it says nothing of the endpoint's speed.
                policy.Observe(delivery.SubscriptionId, outcome.Health, record.NoBody ? null : TimeSpan.FromMilliseconds(outcome.Attempt.DurationMs));
                observed = true;
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Still out when the shutdown's drain ended: the attempt is abandoned unrecorded, and another worker or the
            // next start makes it again.
            await GiveBackAsync([delivery]);
        }
        catch (Exception e)
        {
            // The claim lapses after its lease and the delivery is attempted again.
            LogAttemptFailed(logger, delivery.Id, e);
        }
        finally
        {
            delivery.MarkStarted();
            if (!observed)
            {
                policy.Release(delivery.SubscriptionId);
            }
            _inFlight.TryRemove(KeyValuePair.Create(delivery.Id, self));
            _running.TryRemove(self, out _);
            slots.Return(1);
            signal.Notify();
        }
    }

    /// <summary>
    /// Sleeps until woken, until the poll interval has passed, and (when <paramref name="askQueue"/> and it could
    /// claim) until the next delivery or probe is due. Never past the poll interval: a timer cannot be set years ahead.
    /// </summary>
    private async Task WaitAsync(CancellationToken stoppingToken, bool askQueue = true)
    {
        using var wake = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var waits = new List<Task> { signal.WaitAsync(wake.Token), Task.Delay(_options.PollInterval, clock, wake.Token) };
        // With every slot taken a completion wakes the worker anyway: ask for the next due time only when it could claim.
        if (askQueue && slots.Free > 0)
        {
            var next = await queue.NextDueAsync(policy.AtCapacity(), [.. _inFlight.Keys], stoppingToken);
            foreach (var due in new[] { next, policy.NextProbeAt() })
            {
                if (due is { } at)
                {
                    var wait = at - clock.GetUtcNow().UtcDateTime;
                    waits.Add(Task.Delay(TimeSpan.FromTicks(Math.Clamp(wait.Ticks, 0, _options.PollInterval.Ticks)), clock, wake.Token));
                }
            }
        }
        await Task.WhenAny(waits);
        await wake.CancelAsync();
        stoppingToken.ThrowIfCancellationRequested();
    }

    [LoggerMessage(EventId = 5200, Level = LogLevel.Error, Message = "Webhook delivery worker failed; retrying after the poll interval")]
    private static partial void LogWorkerFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 5204, Level = LogLevel.Warning, Message = "A webhook delivery worker's write was rolled back by a concurrent change; running it again: {Reason}")]
    private static partial void LogWorkerConflict(ILogger logger, string reason);

    [LoggerMessage(EventId = 5210, Level = LogLevel.Warning, Message = "Released {Count} claimed deliveries left by a previous process (killed before recording them); they are sent again now")]
    private static partial void LogReleasedLeftoverClaims(ILogger logger, int count);

    [LoggerMessage(EventId = 5211, Level = LogLevel.Debug, Message = "Webhook delivery {DeliveryId} is dropped: its fan-out was rolled back, and it is sent again when the event is fanned out again")]
    private static partial void LogFanOutRolledBack(ILogger logger, Guid deliveryId);

    [LoggerMessage(EventId = 5212, Level = LogLevel.Information, Message = "Stopping: waiting up to {Drain} for {Count} webhook attempts in flight to finish")]
    private static partial void LogDraining(ILogger logger, int count, TimeSpan drain);

    [LoggerMessage(EventId = 5213, Level = LogLevel.Warning, Message = "Stopping: {Count} webhook attempts still in flight are cancelled and sent again later (the shutdown's drain ended)")]
    private static partial void LogDrainEnded(ILogger logger, int count);

    [LoggerMessage(EventId = 5201, Level = LogLevel.Error, Message = "Webhook delivery {DeliveryId} attempt failed unexpectedly; it is retried when its claim lapses")]
    private static partial void LogAttemptFailed(ILogger logger, Guid deliveryId, Exception exception);
}
