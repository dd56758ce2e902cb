using Gymwire.Features.Webhooks;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using System.Diagnostics.Metrics;

namespace Gymwire.Tests.Telemetry;

/// <summary>The delivery engine's instruments, read with MetricCollector (the engine calls these methods).</summary>
public sealed class DeliveryMetricsTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private IMeterFactory Meters => _services.GetRequiredService<IMeterFactory>();

    public void Dispose() => _services.Dispose();

    private MetricCollector<T> Collect<T>(string instrument) where T : struct =>
        new(Meters, DeliveryMetrics.MeterName, instrument);

    [Fact]
    public void Attempts_are_counted_by_outcome_and_trigger_with_their_duration()
    {
        var metrics = new DeliveryMetrics(Meters);
        using var attempts = Collect<long>("gymwire.webhook.attempts");
        using var durations = Collect<double>("gymwire.webhook.attempt.duration");

        metrics.RecordAttempt(DeliveryMetrics.Outcomes.OfStatus(204), DeliveryMetrics.Triggers.Initial, TimeSpan.FromMilliseconds(40));
        metrics.RecordAttempt(DeliveryMetrics.Outcomes.OfStatus(503), DeliveryMetrics.Triggers.Retry, TimeSpan.FromSeconds(2));
        metrics.RecordAttempt(DeliveryMetrics.Outcomes.Timeout, DeliveryMetrics.Triggers.Redeliver, TimeSpan.FromSeconds(10));
        metrics.RecordAttempt(DeliveryMetrics.Outcomes.EgressRefused, DeliveryMetrics.Triggers.Test, TimeSpan.Zero);
        metrics.RecordAttempt(DeliveryMetrics.Outcomes.ConnectionError, "made-up", TimeSpan.FromMilliseconds(1));

        var seen = attempts.GetMeasurementSnapshot()
            .Select(m => (Outcome: (string)m.Tags[DeliveryMetrics.OutcomeTag]!, Trigger: (string)m.Tags[DeliveryMetrics.TriggerTag]!, m.Value)).ToList();
        Assert.Equal([("2xx", "initial", 1L), ("5xx", "retry", 1L), ("timeout", "redeliver", 1L), ("egress_refused", "test", 1L), ("connection_error", "other", 1L)], seen);
        Assert.Equal([0.04, 2, 10, 0, 0.001], durations.GetMeasurementSnapshot().Select(m => Math.Round(m.Value, 3)));
        Assert.Equal("4xx", DeliveryMetrics.Outcomes.OfStatus(410));
        Assert.Equal("other_status", DeliveryMetrics.Outcomes.OfStatus(302));
    }

    [Fact]
    public void Attempts_carry_the_subscription_only_when_asked_to()
    {
        var subscription = Guid.NewGuid();
        using var attempts = Collect<long>("gymwire.webhook.attempts");
        new DeliveryMetrics(Meters).RecordAttempt("2xx", "initial", TimeSpan.Zero, subscription);
        new DeliveryMetrics(Meters, perSubscription: true).RecordAttempt("4xx", "retry", TimeSpan.Zero, subscription);

        var measurements = attempts.GetMeasurementSnapshot();
        Assert.False(measurements[0].Tags.ContainsKey(DeliveryMetrics.SubscriptionTag));
        Assert.Equal(subscription.ToString(), measurements[1].Tags[DeliveryMetrics.SubscriptionTag]);
    }

    [Fact]
    public void Deliveries_created_delivered_undeliverable_and_dispatch_lag_are_recorded()
    {
        var metrics = new DeliveryMetrics(Meters);
        using var created = Collect<long>("gymwire.webhook.deliveries.created");
        using var latency = Collect<double>("gymwire.webhook.delivery.latency");
        using var undeliverable = Collect<long>("gymwire.webhook.deliveries.undeliverable");
        using var lag = Collect<double>("gymwire.webhook.dispatcher.lag");

        metrics.RecordDeliveriesCreated(3);
        metrics.RecordDeliveriesCreated(0);
        metrics.RecordDeliveriesCreated(1, DeliveryMetrics.Triggers.Test);
        metrics.RecordDelivered(TimeSpan.FromMilliseconds(250));
        metrics.RecordDelivered(TimeSpan.FromSeconds(-1));
        metrics.RecordUndeliverable();
        metrics.RecordDispatchLag(TimeSpan.FromMilliseconds(15));

        Assert.Equal([(3L, "initial"), (1L, "test")], created.GetMeasurementSnapshot().Select(m => (m.Value, (string)m.Tags[DeliveryMetrics.TriggerTag]!)));
        Assert.Equal([0.25, 0], latency.GetMeasurementSnapshot().Select(m => m.Value));
        Assert.Equal(1, undeliverable.GetMeasurementSnapshot().Sum(m => m.Value));
        Assert.Equal(0.015, lag.LastMeasurement!.Value, 6);
    }

    [Fact]
    public void The_gauges_report_the_last_snapshot_and_nothing_before_the_first()
    {
        var metrics = new DeliveryMetrics(Meters);
        using var depth = Collect<long>("gymwire.webhook.queue.depth");
        using var oldest = Collect<double>("gymwire.webhook.queue.oldest_age");
        using var paused = Collect<long>("gymwire.webhook.endpoints.paused");
        using var failing = Collect<long>("gymwire.webhook.endpoints.failing");

        depth.RecordObservableInstruments();
        Assert.Empty(depth.GetMeasurementSnapshot());

        metrics.ReportQueue(12, TimeSpan.FromSeconds(90));
        metrics.ReportQueue(7, TimeSpan.FromSeconds(30));
        metrics.ReportEndpoints(paused: 2, failing: 5);
        depth.RecordObservableInstruments();
        oldest.RecordObservableInstruments();
        paused.RecordObservableInstruments();
        failing.RecordObservableInstruments();

        Assert.Equal(7, depth.LastMeasurement!.Value);
        Assert.Equal(30, oldest.LastMeasurement!.Value);
        Assert.Equal(2, paused.LastMeasurement!.Value);
        Assert.Equal(5, failing.LastMeasurement!.Value);
    }
}
