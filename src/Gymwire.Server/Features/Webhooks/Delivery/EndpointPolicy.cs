using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>What <see cref="EndpointPolicy.Admit"/> decided for one claimed delivery.</summary>
public enum Admission
{
    /// <summary>Attempt it now; its slot is taken until <see cref="EndpointPolicy.Observe"/> or <see cref="EndpointPolicy.Release"/>.</summary>
    Go,
    /// <summary>The endpoint has as many attempts in flight as it may: give the claim back.</summary>
    AtCap,
    /// <summary>The endpoint is paused after failing: give the claim back; it is probed when the pause ends.</summary>
    Paused,
}

/// <summary>An endpoint's state after an observed attempt: how many attempts it may have in flight, and until when it is paused.</summary>
public readonly record struct EndpointDecision(int Cap, DateTime? PausedUntil);

/// <summary>
/// Decides, per endpoint (webhook subscription) on this node, how many attempts may be in flight:
/// <list type="bullet">
/// <item>at most <c>Webhooks:MaxConcurrentPerEndpoint</c>, so one endpoint cannot take every slot of the worker;</item>
/// <item>one while its last attempt was slow (<c>Webhooks:SlowAttempt</c>, or timed out), so a few hanging endpoints
/// cannot hold the worker's slots for whole timeouts;</item>
/// <item>none while it is paused (after <c>Webhooks:FailingEndpointThreshold</c> failures in a row), but for one probe
/// per pause; each failed probe doubles the pause up to <c>Webhooks:FailingEndpointMaxPause</c>, the first success
/// ends it. Its deliveries wait in the queue meanwhile.</item>
/// </list>
/// Driven by the clock alone (no HTTP, no database), and thread-safe.
/// </summary>
public sealed partial class EndpointPolicy(IOptions<WebhookOptions> options, TimeProvider clock, ILogger<EndpointPolicy> logger)
{
    /// <summary>An endpoint with no attempt for this long is forgotten (it is gone or idle): it starts afresh.</summary>
    public static readonly TimeSpan ForgetAfter = TimeSpan.FromHours(1);

    private static readonly TimeSpan FirstPause = TimeSpan.FromSeconds(1);

    private readonly WebhookOptions _options = options.Value;
    // A timed-out attempt counts as slow even when the timeout is shorter than SlowAttempt: its measured duration
    // starts a moment after the timeout's clock, so it can read a hair under the timeout.
    private readonly TimeSpan _slow = TimeSpan.FromMilliseconds(Math.Min(options.Value.SlowAttempt.TotalMilliseconds, options.Value.Timeout.TotalMilliseconds - 50));
    private readonly Dictionary<Guid, State> _endpoints = [];
    private readonly Lock _lock = new();

    private sealed class State
    {
        public int InFlight;
        public bool Slow;
        public int FailuresInARow;
        public DateTime LastObserved;
        public TimeSpan Pause;
        public DateTime PausedUntil;
    }

    /// <summary>Whether an attempt of <paramref name="endpoint"/> may start now; on <see cref="Admission.Go"/> it takes a slot.</summary>
    public Admission Admit(Guid endpoint)
    {
        lock (_lock)
        {
            var state = StateOf(endpoint);
            if (state.PausedUntil > Now)
            {
                return Admission.Paused;
            }
            if (state.InFlight >= CapOf(state))
            {
                return Admission.AtCap;
            }
            state.InFlight++;
            return Admission.Go;
        }
    }

    /// <summary>
    /// An admitted attempt's outcome: frees its slot and updates the endpoint's slowness and failure count. A failure
    /// that reaches the threshold pauses the endpoint, or doubles the pause after a failed probe; attempts that were in
    /// flight when it paused count without extending the pause. A success ends the pause.
    /// </summary>
    public EndpointDecision Observe(Guid endpoint, bool delivered, TimeSpan duration)
    {
        lock (_lock)
        {
            var state = StateOf(endpoint);
            state.InFlight = Math.Max(0, state.InFlight - 1);
            state.Slow = duration >= _slow;
            var now = Now;
            state.LastObserved = now;
            if (delivered)
            {
                if (state.Pause > TimeSpan.Zero)
                {
                    LogResumed(logger, endpoint);
                }
                (state.FailuresInARow, state.Pause, state.PausedUntil) = (0, TimeSpan.Zero, DateTime.MinValue);
            }
            else if (_options.FailingEndpointThreshold > 0)
            {
                state.FailuresInARow++;
                if (state.FailuresInARow >= _options.FailingEndpointThreshold && state.PausedUntil <= now)
                {
                    if (state.Pause == TimeSpan.Zero)
                    {
                        LogPaused(logger, endpoint, state.FailuresInARow);
                    }
                    state.Pause = state.Pause == TimeSpan.Zero ? FirstPause : TimeSpan.FromTicks(Math.Min(state.Pause.Ticks * 2, _options.FailingEndpointMaxPause.Ticks));
                    state.PausedUntil = now + state.Pause;
                }
            }
            var decision = new EndpointDecision(CapOf(state), state.PausedUntil > now ? state.PausedUntil : null);
            ForgetIfIdle(endpoint, state);
            return decision;
        }
    }

    /// <summary>Frees an admitted attempt's slot without an outcome (it was given back, or not recorded).</summary>
    public void Release(Guid endpoint)
    {
        lock (_lock)
        {
            if (_endpoints.TryGetValue(endpoint, out var state))
            {
                state.InFlight = Math.Max(0, state.InFlight - 1);
                ForgetIfIdle(endpoint, state);
            }
        }
    }

    /// <summary>The endpoints a claim should leave out: paused, or with every slot taken.</summary>
    public Guid[] Closed()
    {
        lock (_lock)
        {
            var now = Now;
            var closed = new List<Guid>();
            foreach (var (endpoint, state) in _endpoints)
            {
                if (state.PausedUntil > now || state.InFlight >= CapOf(state))
                {
                    closed.Add(endpoint);
                }
                else if (state.InFlight == 0 && state.LastObserved < now - ForgetAfter)
                {
                    _endpoints.Remove(endpoint);
                }
            }
            return [.. closed];
        }
    }

    /// <summary>When the earliest pause ends (a probe is due then), if any endpoint is paused.</summary>
    public DateTime? NextProbeAt()
    {
        lock (_lock)
        {
            var now = Now;
            return _endpoints.Values.Where(s => s.PausedUntil > now).Select(s => (DateTime?)s.PausedUntil).Min();
        }
    }

    /// <summary>How many endpoints are paused now.</summary>
    public int PausedCount()
    {
        lock (_lock)
        {
            var now = Now;
            return _endpoints.Values.Count(s => s.PausedUntil > now);
        }
    }

    private DateTime Now => clock.GetUtcNow().UtcDateTime;

    /// <summary>One attempt at a time while slow, or while failing past the threshold (a probe); otherwise the configured cap.</summary>
    private int CapOf(State state) =>
        state.Slow || (_options.FailingEndpointThreshold > 0 && state.FailuresInARow >= _options.FailingEndpointThreshold) ? 1 : _options.MaxConcurrentPerEndpoint;

    private State StateOf(Guid endpoint)
    {
        if (!_endpoints.TryGetValue(endpoint, out var state))
        {
            _endpoints[endpoint] = state = new State();
        }
        return state;
    }

    /// <summary>An endpoint with nothing in flight and nothing to remember needs no entry.</summary>
    private void ForgetIfIdle(Guid endpoint, State state)
    {
        if (state.InFlight == 0 && !state.Slow && state.FailuresInARow == 0)
        {
            _endpoints.Remove(endpoint);
        }
    }

    [LoggerMessage(EventId = 5202, Level = LogLevel.Warning, Message = "Webhook subscription {SubscriptionId} failed {Failures} attempts in a row: its deliveries are paused and it is probed one delivery at a time")]
    private static partial void LogPaused(ILogger logger, Guid subscriptionId, int failures);

    [LoggerMessage(EventId = 5203, Level = LogLevel.Information, Message = "Webhook subscription {SubscriptionId} answered a probe: its deliveries resume")]
    private static partial void LogResumed(ILogger logger, Guid subscriptionId);
}
