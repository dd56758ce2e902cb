using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>What <see cref="EndpointPolicy.Admit"/> decided for one claimed delivery.</summary>
public enum Admission
{
    /// <summary>Attempt it now; its slot is taken until <see cref="EndpointPolicy.Observe"/> or <see cref="EndpointPolicy.Release"/>.</summary>
    Go,
    /// <summary>
    /// The endpoint is failing and its pause has ended: attempt it only if this node wins its probe
    /// (<see cref="IDeliveryQueue.ClaimProbeAsync"/>), which one node at a time does. The slot is taken; release it if the probe is lost.
    /// </summary>
    Probe,
    /// <summary>The endpoint has as many attempts in flight on this node as it may: give the claim back.</summary>
    AtCap,
    /// <summary>The endpoint is paused after failing, or another node is probing it: give the claim back.</summary>
    Paused,
}

/// <summary>
/// A subscription's health for the whole cluster, stored with it (<see cref="WebhookSubscription.Health"/>): its
/// failures in a row, its pause and the probe a node holds. <see cref="Healthy"/> (all empty) is stored as nothing to
/// write, so a healthy endpoint's successes change no row.
/// </summary>
public readonly record struct EndpointHealth(int ConsecutiveFailures, DateTime? PausedUntil, TimeSpan? PauseLength, DateTime? ProbeClaimedUntil)
{
    public static EndpointHealth Healthy => default;
}

/// <summary>
/// Decides how many attempts an endpoint (webhook subscription) may have in flight:
/// <list type="bullet">
/// <item>at most <c>Webhooks:MaxConcurrentPerEndpoint</c> on this node, so one endpoint cannot take every slot of the worker;</item>
/// <item>one on this node while its last attempt here was slow (<c>Webhooks:SlowAttempt</c>, or timed out), so a few
/// hanging endpoints cannot hold the worker's slots for whole timeouts;</item>
/// <item>none in the cluster while it is paused (after <c>Webhooks:FailingEndpointThreshold</c> failures in a row), but
/// for one probe per pause; each failed probe doubles the pause up to <c>Webhooks:FailingEndpointMaxPause</c>, the first
/// success ends it. Its deliveries wait in the queue meanwhile, due at the pause's end (<see cref="IDeliveryQueue.CompleteAsync"/>).</item>
/// </list>
/// The caps are this node's, in memory. The pause is the subscription's <see cref="EndpointHealth"/>: this class works
/// out its next value (<see cref="Next"/>), the attempt recorder stores it, and every node's claim leaves paused
/// endpoints out. Driven by the clock alone (no HTTP, no database), and thread-safe.
/// </summary>
public sealed partial class EndpointPolicy(IOptions<WebhookOptions> options, TimeProvider clock, ILogger<EndpointPolicy> logger)
{
    /// <summary>An endpoint with no attempt for this long is forgotten by this node (it is gone or idle): it starts afresh here.</summary>
    public static readonly TimeSpan ForgetAfter = TimeSpan.FromHours(1);

    private static readonly TimeSpan FirstPause = TimeSpan.FromSeconds(1);

    private readonly WebhookOptions _options = options.Value;
    // A timed-out attempt counts as slow even when the timeout is shorter than SlowAttempt: its measured duration
    // starts a moment after the timeout's clock, so it can read a hair under the timeout.
    private readonly TimeSpan _slow = TimeSpan.FromMilliseconds(Math.Min(options.Value.SlowAttempt.TotalMilliseconds, options.Value.Timeout.TotalMilliseconds - 50));
    private readonly Dictionary<Guid, State> _endpoints = [];
    private readonly Lock _lock = new();

    /// <summary>What this node keeps of an endpoint: its own attempts, and the pause it last saw (to wake when it ends).</summary>
    private sealed class State
    {
        public int InFlight;
        public bool Slow;
        public bool Failing;
        public DateTime LastObserved;
        public DateTime PausedUntil;
    }

    /// <summary>
    /// Whether an attempt of <paramref name="endpoint"/>, whose stored health is <paramref name="health"/>, may start
    /// now; on <see cref="Admission.Go"/> and <see cref="Admission.Probe"/> it takes a slot.
    /// </summary>
    public Admission Admit(Guid endpoint, EndpointHealth health)
    {
        lock (_lock)
        {
            var now = Now;
            var failing = IsFailing(health);
            if (health.PausedUntil > now || (failing && health.ProbeClaimedUntil > now))
            {
                return Admission.Paused;
            }
            var state = StateOf(endpoint);
            state.Failing = failing;
            if (state.InFlight >= CapOf(state))
            {
                return Admission.AtCap;
            }
            state.InFlight++;
            return failing ? Admission.Probe : Admission.Go;
        }
    }

    /// <summary>
    /// The endpoint's health after a worker's attempt: a success ends the failures and the pause; a failure counts, and
    /// one that reaches the threshold pauses the endpoint, or doubles the pause after a failed probe. Failures of
    /// attempts that were in flight when it paused count without extending the pause. Pure: the caller stores it.
    /// </summary>
    public EndpointHealth Next(Guid endpoint, EndpointHealth health, bool delivered)
    {
        var threshold = _options.FailingEndpointThreshold;
        if (delivered || threshold == 0)
        {
            if (delivered && health.PauseLength is not null)
            {
                LogResumed(logger, endpoint);
            }
            return EndpointHealth.Healthy;
        }
        var now = Now;
        var failures = Math.Min(health.ConsecutiveFailures + 1, threshold);
        if (failures < threshold || health.PausedUntil > now)
        {
            return health with { ConsecutiveFailures = failures };
        }
        if (health.PauseLength is null)
        {
            LogPaused(logger, endpoint, failures);
        }
        var pause = health.PauseLength is { } previous ? TimeSpan.FromTicks(Math.Min(previous.Ticks * 2, _options.FailingEndpointMaxPause.Ticks)) : FirstPause;
        // A new pause ends the probe: the next one goes when this pause does.
        return new EndpointHealth(failures, now + pause, pause, ProbeClaimedUntil: null);
    }

    /// <summary>
    /// An admitted attempt's end, with its endpoint's stored health after it: frees its slot and updates the endpoint's
    /// slowness on this node from the attempt's <paramref name="duration"/> (null for an attempt that sent nothing,
    /// which leaves it as it is). Returns how many attempts the endpoint may now have in flight here.
    /// </summary>
    public int Observe(Guid endpoint, EndpointHealth health, TimeSpan? duration)
    {
        lock (_lock)
        {
            var state = StateOf(endpoint);
            state.InFlight = Math.Max(0, state.InFlight - 1);
            if (duration is { } measured)
            {
                state.Slow = measured >= _slow;
            }
            state.Failing = IsFailing(health);
            state.LastObserved = Now;
            state.PausedUntil = health.PausedUntil ?? DateTime.MinValue;
            var cap = CapOf(state);
            ForgetIfIdle(endpoint, state);
            return cap;
        }
    }

    /// <summary>Frees an admitted attempt's slot without an outcome (it was given back, its probe lost, or not recorded).</summary>
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

    /// <summary>
    /// The endpoints this node's claim should leave out: those with every slot here taken. (Paused endpoints are left
    /// out by the claim itself, from their stored health, on every node.)
    /// </summary>
    public Guid[] AtCapacity()
    {
        lock (_lock)
        {
            var now = Now;
            var closed = new List<Guid>();
            foreach (var (endpoint, state) in _endpoints)
            {
                if (state.InFlight >= CapOf(state))
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

    /// <summary>
    /// When the earliest pause this node has seen ends (a probe is due then), if any: the worker wakes then. Another
    /// node's pauses are found by the poll (<c>Webhooks:PollInterval</c>).
    /// </summary>
    public DateTime? NextProbeAt()
    {
        lock (_lock)
        {
            var now = Now;
            return _endpoints.Values.Where(s => s.PausedUntil > now).Select(s => (DateTime?)s.PausedUntil).Min();
        }
    }

    private DateTime Now => clock.GetUtcNow().UtcDateTime;

    /// <summary>The endpoint failed <c>Webhooks:FailingEndpointThreshold</c> times in a row: its next attempt is a probe.</summary>
    public bool IsFailing(EndpointHealth health) => _options.FailingEndpointThreshold > 0 && health.ConsecutiveFailures >= _options.FailingEndpointThreshold;

    /// <summary>One attempt at a time while slow, or while failing past the threshold (a probe); otherwise the configured cap.</summary>
    private int CapOf(State state) => state.Slow || state.Failing ? 1 : _options.MaxConcurrentPerEndpoint;

    private State StateOf(Guid endpoint)
    {
        if (!_endpoints.TryGetValue(endpoint, out var state))
        {
            _endpoints[endpoint] = state = new State();
        }
        return state;
    }

    /// <summary>An endpoint with nothing in flight and nothing to remember needs no entry: its health is stored.</summary>
    private void ForgetIfIdle(Guid endpoint, State state)
    {
        if (state.InFlight == 0 && !state.Slow && state.PausedUntil <= Now)
        {
            _endpoints.Remove(endpoint);
        }
    }

    [LoggerMessage(EventId = 5202, Level = LogLevel.Warning, Message = "Webhook subscription {SubscriptionId} failed {Failures} attempts in a row: its deliveries are paused and it is probed one delivery at a time")]
    private static partial void LogPaused(ILogger logger, Guid subscriptionId, int failures);

    [LoggerMessage(EventId = 5203, Level = LogLevel.Information, Message = "Webhook subscription {SubscriptionId} answered a probe: its deliveries resume")]
    private static partial void LogResumed(ILogger logger, Guid subscriptionId);
}
