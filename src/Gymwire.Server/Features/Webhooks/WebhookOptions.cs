using System.Net;

namespace Gymwire.Features.Webhooks;

/// <summary>The <c>Webhooks</c> configuration section.</summary>
public sealed class WebhookOptions
{
    public const string Section = "Webhooks";

    public static readonly TimeSpan[] DefaultRetrySchedule = [TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(30), TimeSpan.FromHours(2)];

    /// <summary>Allow <c>http://</c> webhook URLs (local development only).</summary>
    public bool AllowHttp { get; set; }

    /// <summary>CIDRs that deliveries may reach even though they are private or reserved, e.g. <c>127.0.0.0/8</c>.</summary>
    public List<string> AllowedNetworks { get; set; } = [];

    /// <summary>Per-attempt timeout: connect, send and receive the response headers and excerpt.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Delays before each retry after a failed attempt. Null means the default (5 min, 30 min, 2 h); the
    /// configuration binder appends to a pre-filled list, hence the null default. Empty means no retries: a failed
    /// attempt makes the delivery undeliverable at once (the contract's own behaviour: docs/webhooks.md, "Answering, retries and failures").
    /// </summary>
    public List<TimeSpan>? RetrySchedule { get; set; }

    /// <summary>Random extra delay added to each retry, as a fraction of the delay (0 to 0.5).</summary>
    public double RetryJitter { get; set; } = 0.1;

    /// <summary>A receiver's <c>Retry-After</c> replaces the scheduled delay, clamped to at least this…</summary>
    public TimeSpan MinRetryAfter { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>…and at most this.</summary>
    public TimeSpan MaxRetryAfter { get; set; } = TimeSpan.FromHours(24);

    /// <summary>After a secret rotation, how long the previous secret keeps signing alongside the new one.</summary>
    public TimeSpan SecretRotationOverlap { get; set; } = TimeSpan.FromHours(24);

    /// <summary>A subscription whose every attempt has failed for this long is deactivated.</summary>
    public TimeSpan AutoDisableAfter { get; set; } = TimeSpan.FromDays(5);

    /// <summary>Finished deliveries (delivered or undeliverable) and their attempts are deleted this long after they were created.</summary>
    public TimeSpan DeliveryRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>The shortest <see cref="DeliveryRetention"/>: the automation tile looks back this far for a delivered event.</summary>
    public static readonly TimeSpan MinDeliveryRetention = ApiKeys.ApiKeyConnections.RecentUse;

    /// <summary>
    /// Deliveries in flight at once on this node (sending, or sent and waiting to be recorded). An attempt in flight
    /// costs a socket and a few KiB; more of them means bigger claims and group commits. It is also the most a crash
    /// can send twice.
    /// </summary>
    public int MaxConcurrentDeliveries { get; set; } = 256;

    /// <summary>Deliveries in flight at once to one subscription on this node, so one slow endpoint cannot take every slot.</summary>
    public int MaxConcurrentPerEndpoint { get; set; } = 8;

    /// <summary>An attempt that takes at least this long (a timeout included) limits its endpoint to one attempt in flight until one is quicker.</summary>
    public TimeSpan SlowAttempt { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// After this many failed attempts in a row to one subscription, its deliveries pause (its circuit opens): one
    /// second at first, doubling with every failed probe up to <see cref="FailingEndpointMaxPause"/>, then one
    /// delivery at a time probes it; the first success resumes it at full rate. Paused deliveries are not failed, they
    /// wait in the queue; an endpoint that is down gets a probe now and then instead of every event's attempt. The
    /// count, the pause and the probe are stored with the subscription, so they hold for the whole cluster. 0 turns this off.
    /// </summary>
    public int FailingEndpointThreshold { get; set; } = 5;

    /// <summary>The longest pause between probes of a failing endpoint.</summary>
    public TimeSpan FailingEndpointMaxPause { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Run the dispatcher (outbox → deliveries) on this node.</summary>
    public bool DispatcherEnabled { get; set; } = true;

    /// <summary>Run the delivery worker on this node.</summary>
    public bool WorkerEnabled { get; set; } = true;

    /// <summary>Fallback polling interval, for work written by other nodes (local writes wake the workers at once).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);

    public IReadOnlyList<TimeSpan> EffectiveRetrySchedule => (IReadOnlyList<TimeSpan>?)RetrySchedule ?? DefaultRetrySchedule;

    /// <summary>
    /// How long a claim lasts: a worker that dies mid-attempt releases its deliveries when this expires, and they are
    /// sent again (at least once). Default <c>Timeout * 2 + 30 s</c>; it must exceed <see cref="Timeout"/> so that a
    /// live attempt is never claimed twice.
    /// </summary>
    public TimeSpan? ClaimLease { get; set; }

    public TimeSpan EffectiveClaimLease => ClaimLease ?? Timeout * 2 + TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a fan-out waits at most for the worker to send what it handed over before inserting the rows (not a
    /// setting: tests lengthen it). Real time, as the sends' CPU is; a worker busy elsewhere only delays the commit.
    /// </summary>
    internal TimeSpan HandOverSendsWait { get; set; } = TimeSpan.FromMilliseconds(20);

    internal IReadOnlyList<IPNetwork> ParsedAllowedNetworks => AllowedNetworks.Select(IPNetwork.Parse).ToList();
}

internal sealed class WebhookOptionsValidator : IValidateOptions<WebhookOptions>
{
    public ValidateOptionsResult Validate(string? name, WebhookOptions o)
    {
        var errors = new List<string>();
        if (o.Timeout < TimeSpan.FromMilliseconds(100) || o.Timeout > TimeSpan.FromSeconds(30))
        {
            errors.Add("Webhooks:Timeout must be between 00:00:00.1 and 00:00:30.");
        }
        foreach (var (delay, i) in o.EffectiveRetrySchedule.Select((d, i) => (d, i)))
        {
            if (delay < TimeSpan.FromSeconds(1) || delay > TimeSpan.FromDays(7))
            {
                errors.Add($"Webhooks:RetrySchedule:{i} must be between 00:00:01 and 7.00:00:00.");
            }
        }
        if (o.EffectiveRetrySchedule.Count > 20)
        {
            errors.Add("Webhooks:RetrySchedule may have at most 20 entries.");
        }
        if (o.RetryJitter is < 0 or > 0.5 || double.IsNaN(o.RetryJitter))
        {
            errors.Add("Webhooks:RetryJitter must be between 0 and 0.5.");
        }
        if (o.MinRetryAfter < TimeSpan.Zero || o.MaxRetryAfter < o.MinRetryAfter || o.MaxRetryAfter > TimeSpan.FromDays(7))
        {
            errors.Add("Webhooks:MinRetryAfter and Webhooks:MaxRetryAfter must satisfy 0 <= MinRetryAfter <= MaxRetryAfter <= 7.00:00:00.");
        }
        if (o.SecretRotationOverlap < TimeSpan.Zero || o.SecretRotationOverlap > TimeSpan.FromDays(30))
        {
            errors.Add("Webhooks:SecretRotationOverlap must be between 00:00:00 and 30.00:00:00.");
        }
        if (o.AutoDisableAfter < TimeSpan.FromHours(1) || o.AutoDisableAfter > TimeSpan.FromDays(365))
        {
            errors.Add("Webhooks:AutoDisableAfter must be between 01:00:00 and 365.00:00:00.");
        }
        // The dashboard reads the last 30 days of deliveries (the automation tile's "in use", the 7-day health figures):
        // a shorter retention would delete what they count.
        if (o.DeliveryRetention < WebhookOptions.MinDeliveryRetention || o.DeliveryRetention > TimeSpan.FromDays(3650))
        {
            errors.Add("Webhooks:DeliveryRetention must be between 30.00:00:00 and 3650.00:00:00: the dashboard shows the last 30 days of deliveries.");
        }
        if (o.ClaimLease is { } lease && (lease < o.Timeout + TimeSpan.FromSeconds(5) || lease > TimeSpan.FromHours(1)))
        {
            errors.Add("Webhooks:ClaimLease must be at least Webhooks:Timeout + 5 seconds and at most 01:00:00.");
        }
        if (o.MaxConcurrentDeliveries is < 1 or > 4096)
        {
            errors.Add("Webhooks:MaxConcurrentDeliveries must be between 1 and 4096.");
        }
        if (o.MaxConcurrentPerEndpoint < 1 || o.MaxConcurrentPerEndpoint > o.MaxConcurrentDeliveries)
        {
            errors.Add("Webhooks:MaxConcurrentPerEndpoint must be between 1 and Webhooks:MaxConcurrentDeliveries.");
        }
        if (o.SlowAttempt < TimeSpan.FromMilliseconds(100) || o.SlowAttempt > TimeSpan.FromSeconds(30))
        {
            errors.Add("Webhooks:SlowAttempt must be between 00:00:00.1 and 00:00:30.");
        }
        if (o.FailingEndpointThreshold is < 0 or > 1000)
        {
            errors.Add("Webhooks:FailingEndpointThreshold must be between 0 (off) and 1000.");
        }
        if (o.FailingEndpointMaxPause < TimeSpan.FromSeconds(1) || o.FailingEndpointMaxPause > TimeSpan.FromHours(1))
        {
            errors.Add("Webhooks:FailingEndpointMaxPause must be between 00:00:01 and 01:00:00.");
        }
        if (o.PollInterval < TimeSpan.FromMilliseconds(100) || o.PollInterval > TimeSpan.FromMinutes(10))
        {
            errors.Add("Webhooks:PollInterval must be between 00:00:00.1 and 00:10:00.");
        }
        for (var i = 0; i < o.AllowedNetworks.Count; i++)
        {
            if (!IPNetwork.TryParse(o.AllowedNetworks[i], out _))
            {
                errors.Add($"Webhooks:AllowedNetworks:{i} ('{o.AllowedNetworks[i]}') is not a CIDR such as 127.0.0.0/8 or fd00::/8.");
            }
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
