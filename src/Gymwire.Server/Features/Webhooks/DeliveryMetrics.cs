using System.Diagnostics;
using System.Diagnostics.Metrics;
using Gymwire.Infrastructure.Telemetry;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// The delivery engine's instruments (meter <c>Gymwire.Webhooks</c>) and its activity source. The engine calls the
/// <c>Record…</c> methods where things happen; the gauges read the last values <see cref="DeliveryGauges"/>
/// <c>Report…</c>ed, so a scrape never queries the database.
/// </summary>
public sealed class DeliveryMetrics
{
    public const string MeterName = "Gymwire.Webhooks";

    /// <summary>The histograms' names, for readers in process (a <c>MeterListener</c>, as the bench's).</summary>
    public const string AttemptDurationName = "gymwire.webhook.attempt.duration";
    public const string DispatchLagName = "gymwire.webhook.dispatcher.lag";
    public const string OutcomeTag = GymwireInstruments.OutcomeTag;
    public const string TriggerTag = "gymwire.webhook.trigger";
    public const string SubscriptionTag = "gymwire.webhook.subscription_id";
    public const string DeliveryTag = "gymwire.webhook.delivery_id";

    /// <summary>Spans of the delivery engine (one per attempt), under the same name as the meter.</summary>
    public static readonly ActivitySource ActivitySource = new(MeterName);

    /// <summary>An attempt's outcome: the receiver's status class, or why there was no status.</summary>
    public static class Outcomes
    {
        public const string Success = "2xx";
        public const string ClientError = "4xx";
        public const string ServerError = "5xx";
        /// <summary>1xx and 3xx (redirects are not followed): neither delivered nor a 4xx/5xx.</summary>
        public const string OtherStatus = "other_status";
        public const string Timeout = "timeout";
        public const string ConnectionError = "connection_error";
        /// <summary>The egress guard refused the address (private network, not allowed).</summary>
        public const string EgressRefused = "egress_refused";
        /// <summary>Nothing was sent: the delivery's outbox event is gone, or its data is not JSON (a hand edit).</summary>
        public const string NoBody = "no_body";

        /// <summary>The outcome of an HTTP status code.</summary>
        public static string OfStatus(int status) => status switch
        {
            >= 200 and < 300 => Success,
            >= 400 and < 500 => ClientError,
            >= 500 and < 600 => ServerError,
            _ => OtherStatus,
        };
    }

    /// <summary>Why an attempt was made (the attempt row's <c>trigger</c>).</summary>
    public static class Triggers
    {
        public const string Initial = "initial";
        public const string Retry = "retry";
        public const string Redeliver = "redeliver";
        public const string Test = "test";

        public static readonly string[] All = [Initial, Retry, Redeliver, Test];
    }

    private readonly Counter<long> _created;
    private readonly Counter<long> _attempts;
    private readonly Histogram<double> _attemptDuration;
    private readonly Histogram<double> _latency;
    private readonly Counter<long> _undeliverable;
    private readonly Histogram<double> _dispatchLag;
    private readonly ObservableGauge<long> _depth;
    private readonly ObservableGauge<double> _oldestAge;
    private readonly ObservableGauge<long> _paused;
    private readonly ObservableGauge<long> _failing;

    // Replaced whole (immutable records), so a reader always sees one consistent snapshot without a lock.
    private volatile QueueSnapshot? _queue;
    private volatile EndpointSnapshot? _endpoints;

    private readonly bool _perSubscription;

    public DeliveryMetrics(IMeterFactory meters, IOptions<MetricsOptions> options) : this(meters, options.Value.PerSubscription)
    {
    }

    public DeliveryMetrics(IMeterFactory meters, bool perSubscription = false)
    {
        _perSubscription = perSubscription;
        var meter = meters.Create(MeterName);
        _created = meter.CreateCounter<long>("gymwire.webhook.deliveries.created", "{delivery}",
            "Deliveries created (one per event and matching subscription, and per test or redelivery).");
        _attempts = meter.CreateCounter<long>("gymwire.webhook.attempts", "{attempt}",
            "HTTP attempts to deliver a webhook, by outcome (2xx, 4xx, 5xx, other_status, timeout, connection_error, egress_refused, no_body) and trigger (initial, retry, redeliver, test).");
        _attemptDuration = meter.CreateHistogram(AttemptDurationName, "s",
            "Duration of one delivery attempt, from sending the request to the end of reading the response excerpt.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
        _latency = meter.CreateHistogram("gymwire.webhook.delivery.latency", "s",
            "Time from the event's commit to its successful delivery (first 2xx).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400] });
        _undeliverable = meter.CreateCounter<long>("gymwire.webhook.deliveries.undeliverable", "{delivery}",
            "Deliveries ended without success: every scheduled attempt failed, a test send failed, the endpoint answered 410, or the subscription was deactivated (410, failing too long, its API key revoked) or deleted with the delivery queued.");
        _dispatchLag = meter.CreateHistogram(DispatchLagName, "s",
            "Time from an event's commit to the dispatcher creating its deliveries.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] });
        _depth = meter.CreateObservableGauge("gymwire.webhook.queue.depth", () => Observe(_queue, q => q.Due), "{delivery}",
            "Deliveries due now (pending, or retrying with next_attempt_at passed), as last read (every 5 s while metrics are collected).");
        _oldestAge = meter.CreateObservableGauge("gymwire.webhook.queue.oldest_age", () => Observe(_queue, q => q.OldestDueAge.TotalSeconds), "s",
            "How long the oldest due delivery has been due, as last read (every 5 s while metrics are collected).");
        _paused = meter.CreateObservableGauge("gymwire.webhook.endpoints.paused", () => Observe(_endpoints, e => e.Paused), "{endpoint}",
            "Endpoints whose deliveries are held (paused after repeated failures).");
        _failing = meter.CreateObservableGauge("gymwire.webhook.endpoints.failing", () => Observe(_endpoints, e => e.Failing), "{endpoint}",
            "Endpoints whose latest attempt failed but are not paused.");
    }

    /// <summary>Whether anyone listens to the queue and endpoint gauges: <see cref="DeliveryGauges"/> reads the queue for them only then.</summary>
    public bool GaugesEnabled => _depth.Enabled || _oldestAge.Enabled || _paused.Enabled || _failing.Enabled;

    /// <summary>Whether anyone listens to the attempt instruments (so the engine skips working out what to record).</summary>
    public bool AttemptsEnabled => _attempts.Enabled || _attemptDuration.Enabled;

    /// <summary><paramref name="count"/> deliveries were created (by the dispatcher's fan-out, a test send or a redelivery).</summary>
    public void RecordDeliveriesCreated(long count, string trigger = Triggers.Initial)
    {
        if (count > 0 && _created.Enabled)
        {
            _created.Add(count, new KeyValuePair<string, object?>(TriggerTag, Known(trigger)));
        }
    }

    /// <summary>
    /// One attempt ended: its outcome (<see cref="Outcomes"/>), trigger (<see cref="Triggers"/>) and duration. The
    /// subscription becomes a tag only with <c>Metrics:PerSubscription</c> (one series per webhook: opt in).
    /// </summary>
    public void RecordAttempt(string outcome, string trigger, TimeSpan duration, Guid? subscriptionId = null)
    {
        if (!AttemptsEnabled)
        {
            return;
        }
        var tags = new TagList { { OutcomeTag, outcome }, { TriggerTag, Known(trigger) } };
        if (_perSubscription && subscriptionId is { } id)
        {
            tags.Add(SubscriptionTag, id.ToString());
        }
        _attempts.Add(1, tags);
        _attemptDuration.Record(duration.TotalSeconds, tags);
    }

    /// <summary>A delivery succeeded: <paramref name="sinceCommit"/> is the time from its event's commit to this 2xx.</summary>
    public void RecordDelivered(TimeSpan sinceCommit)
    {
        if (_latency.Enabled)
        {
            _latency.Record(Math.Max(0, sinceCommit.TotalSeconds));
        }
    }

    /// <summary><paramref name="count"/> deliveries ended without success (undeliverable, or deleted unsent with their subscription).</summary>
    public void RecordUndeliverable(long count = 1)
    {
        if (count > 0 && _undeliverable.Enabled)
        {
            _undeliverable.Add(count);
        }
    }

    /// <summary>The dispatcher fanned out an event <paramref name="sinceCommit"/> after it committed.</summary>
    public void RecordDispatchLag(TimeSpan sinceCommit) => _dispatchLag.Record(Math.Max(0, sinceCommit.TotalSeconds));

    /// <summary>The due queue as last read: how many deliveries are due, and for how long the oldest has been.</summary>
    public void ReportQueue(long due, TimeSpan oldestDueAge) =>
        _queue = new QueueSnapshot(due, oldestDueAge < TimeSpan.Zero ? TimeSpan.Zero : oldestDueAge);

    /// <summary>How many endpoints are paused and how many failing (not paused), as last counted.</summary>
    public void ReportEndpoints(long paused, long failing) => _endpoints = new EndpointSnapshot(paused, failing);

    // A gauge nobody has reported yet has no value (rather than a misleading zero).
    private static IEnumerable<Measurement<T>> Observe<TSnapshot, T>(TSnapshot? snapshot, Func<TSnapshot, T> read)
        where TSnapshot : class where T : struct =>
        snapshot is null ? [] : [new Measurement<T>(read(snapshot))];

    private static string Known(string trigger) => Triggers.All.Contains(trigger) ? trigger : "other";

    private sealed record QueueSnapshot(long Due, TimeSpan OldestDueAge);

    private sealed record EndpointSnapshot(long Paused, long Failing);
}
