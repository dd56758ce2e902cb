using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using Gymwire.Features.Events;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using OpenTelemetry.Trace;

namespace Gymwire.Tests.Telemetry;

/// <summary><see cref="WebhookFixture"/> with per-subscription attempt tags (so a test reads its own series) and spans kept in memory.</summary>
public abstract class DeliveryTelemetryFixture(Store store) : WebhookFixture(store)
{
    public LockedList<Activity> Spans { get; } = new();

    protected override IEnumerable<KeyValuePair<string, string>> Settings() => [.. base.Settings(), new("Metrics:PerSubscription", "true")];

    protected override void ConfigureServices(IServiceCollection services) =>
        services.AddOpenTelemetry().WithTracing(t => t.AddInMemoryExporter(Spans));
}

public sealed class SqliteDeliveryTelemetry() : DeliveryTelemetryFixture(Store.Sqlite);

public sealed class PostgresDeliveryTelemetry() : DeliveryTelemetryFixture(Store.Postgres);

/// <summary>A delivery's life as the engine's instruments and spans tell it, on both stores.</summary>
public abstract class DeliveryInstrumentationTests(DeliveryTelemetryFixture fx)
{
    public sealed class Sqlite(SqliteDeliveryTelemetry f) : DeliveryInstrumentationTests(f), IClassFixture<SqliteDeliveryTelemetry>;
    public sealed class Postgres(PostgresDeliveryTelemetry f) : DeliveryInstrumentationTests(f), IClassFixture<PostgresDeliveryTelemetry>;

    private MetricCollector<T> Collect<T>(string instrument) where T : struct =>
        new(fx.Services.GetRequiredService<IMeterFactory>(), DeliveryMetrics.MeterName, instrument);

    private static List<(string Outcome, string Trigger)> Of<T>(MetricCollector<T> collector, Guid subscription) where T : struct =>
        [.. collector.GetMeasurementSnapshot()
            .Where(m => m.Tags.TryGetValue(DeliveryMetrics.SubscriptionTag, out var s) && (string?)s == subscription.ToString())
            .Select(m => ((string)m.Tags[DeliveryMetrics.OutcomeTag]!, (string)m.Tags[DeliveryMetrics.TriggerTag]!))];

    [Fact]
    public async Task A_2xx_attempt_and_a_5xx_then_2xx_retry_are_counted_timed_and_their_latency_recorded()
    {
        using var attempts = Collect<long>("gymwire.webhook.attempts");
        using var durations = Collect<double>("gymwire.webhook.attempt.duration");
        using var latency = Collect<double>("gymwire.webhook.delivery.latency");
        using var created = Collect<long>("gymwire.webhook.deliveries.created");
        using var lag = Collect<double>("gymwire.webhook.dispatcher.lag");
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/flaky", n => n == 1 ? new Reply(503, "busy") : new Reply(200));
        var gym = await fx.CreateGymAsync();
        var ok = await gym.CreateWebhookAsync(receiver.Url("/ok"), "member.joined");
        var flaky = await gym.CreateWebhookAsync(receiver.Url("/flaky"), "member.joined");

        await gym.AddMemberAsync("user_metrics");
        await fx.WaitForDeliveryAsync(ok.Id, d => d.Status == DeliveryStatus.Delivered, "delivered");
        await fx.WaitForDeliveryAsync(flaky.Id, d => d.AttemptCount == 1, "first attempt recorded");
        fx.AdvanceAndWake(TimeSpan.FromMinutes(5));
        await fx.WaitForDeliveryAsync(flaky.Id, d => d.Status == DeliveryStatus.Delivered, "delivered on retry");

        Assert.Equal([("2xx", "initial")], Of(attempts, ok.Id));
        Assert.Equal([("5xx", "initial"), ("2xx", "retry")], Of(attempts, flaky.Id));
        Assert.Equal([("2xx", "initial")], Of(durations, ok.Id));
        Assert.All(durations.GetMeasurementSnapshot(), m => Assert.InRange(m.Value, 0, 2));
        // Latency is recorded after the commit the test waited for: from creation to the first 2xx, on the fake clock.
        await Eventually.TrueAsync(() => Task.FromResult(latency.GetMeasurementSnapshot().Count >= 2), what: "two latencies");
        var latencies = latency.GetMeasurementSnapshot().Select(m => m.Value).ToList();
        Assert.Contains(latencies, v => v < 60);
        Assert.Contains(latencies, v => v >= 300);
        Assert.True(created.GetMeasurementSnapshot().Where(m => (string?)m.Tags[DeliveryMetrics.TriggerTag] == "initial").Sum(m => m.Value) >= 2);
        Assert.NotEmpty(lag.GetMeasurementSnapshot());
    }

    [Fact]
    public async Task A_delivery_is_counted_undeliverable_when_its_schedule_ends()
    {
        using var undeliverable = Collect<long>("gymwire.webhook.deliveries.undeliverable");
        using var attempts = Collect<long>("gymwire.webhook.attempts");
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/down", new Reply(500, "down"));
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/down"), "member.joined");
        await gym.AddMemberAsync("user_down");

        var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.AttemptCount == 1, "first attempt recorded");
        foreach (var (step, count) in new[] { (TimeSpan.FromMinutes(5), 2), (TimeSpan.FromMinutes(30), 3), (TimeSpan.FromHours(2), 4) })
        {
            Assert.Equal(0, undeliverable.GetMeasurementSnapshot().Sum(m => m.Value));
            fx.AdvanceAndWake(step);
            await fx.WaitForDeliveryAsync(hook.Id, d => d.AttemptCount == count, $"attempt {count} recorded");
        }
        await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Undeliverable, "undeliverable");
        await Eventually.TrueAsync(() => Task.FromResult(undeliverable.GetMeasurementSnapshot().Sum(m => m.Value) == 1), what: "one undeliverable");
        Assert.Equal([("5xx", "initial"), ("5xx", "retry"), ("5xx", "retry"), ("5xx", "retry")], Of(attempts, hook.Id));
        Assert.Equal(delivery.Id, (await fx.DeliveriesAsync(hook.Id)).Single().Id);
    }

    [Fact]
    public async Task The_queue_gauge_reports_due_deliveries_and_how_long_the_oldest_has_waited()
    {
        using var depth = Collect<long>("gymwire.webhook.queue.depth");
        using var oldest = Collect<double>("gymwire.webhook.queue.oldest_age");
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/held"), "member.joined");
        await gym.AddMemberAsync("user_held");
        var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "delivered");

        // Due for ten minutes but held by another node's claim: due, and not claimable here, so it stays in the queue.
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.Id == delivery.Id).ExecuteUpdateAsync(u => u
            .SetProperty(d => d.Status, DeliveryStatus.Pending)
            .SetProperty(d => d.NextAttemptAt, now.AddMinutes(-10))
            .SetProperty(d => d.LockedUntil, now.AddHours(1))));
        fx.AdvanceAndWake(DeliveryGauges.Interval);

        await Eventually.TrueAsync(() =>
        {
            depth.RecordObservableInstruments();
            oldest.RecordObservableInstruments();
            return Task.FromResult(depth.LastMeasurement?.Value >= 1 && oldest.LastMeasurement?.Value >= 600);
        }, what: "the gauges report the due delivery");
        await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.Id == delivery.Id).ExecuteUpdateAsync(u => u
            .SetProperty(d => d.Status, DeliveryStatus.Delivered).SetProperty(d => d.NextAttemptAt, (DateTime?)null).SetProperty(d => d.LockedUntil, (DateTime?)null)));
    }

    [Fact]
    public async Task A_lead_created_through_the_API_is_delivered_under_an_attempt_span_that_holds_the_HTTP_call()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/leads?token=secret-in-query"), "lead.created");
        using (var owner = gym.Owner())
        {
            await (await owner.PostJsonAsync("/api/gym/leads", new { first_name = "John", last_name = "Doe", source = "zapier" })).AssertStatusAsync(HttpStatusCode.Created);
        }
        var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "delivered");

        Activity? span = null;
        await Eventually.TrueAsync(() => Task.FromResult((span = fx.Spans.Snapshot().FirstOrDefault(a => a.Source.Name == DeliveryMetrics.MeterName
            && (string?)a.GetTagItem(DeliveryMetrics.DeliveryTag) == delivery.Id.ToString())) is not null), what: "the attempt span");
        Assert.Equal(hook.Id.ToString(), span!.GetTagItem(DeliveryMetrics.SubscriptionTag));
        Assert.Equal("initial", span.GetTagItem(DeliveryMetrics.TriggerTag));
        Assert.Equal("2xx", span.GetTagItem(DeliveryMetrics.OutcomeTag));
        Assert.DoesNotContain(span.TagObjects, t => t.Value?.ToString()?.Contains("secret-in-query", StringComparison.Ordinal) == true);
        await Eventually.TrueAsync(() => Task.FromResult(fx.Spans.Snapshot().Any(a => a.Kind == ActivityKind.Client && a.ParentSpanId == span.SpanId)),
            what: "the HTTP client span under the attempt");
        var http = fx.Spans.Snapshot().First(a => a.Kind == ActivityKind.Client && a.ParentSpanId == span.SpanId);
        Assert.Equal(span.TraceId, http.TraceId);
    }

    [Fact]
    public async Task The_attempt_span_links_to_the_traced_create_lead_request_that_wrote_its_event()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/leads"), "lead.created");
        string key;
        using (var owner = gym.Owner())
        {
            key = (await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "zapier", scopes = new[] { "read", "write" } }))
                .AssertStatusAsync(HttpStatusCode.Created)).GetProperty("key").GetString()!;
        }

        // The caller's trace (sampled, with a tracestate): the request continues it, so the event keeps its trace id.
        using var caller = new Activity("zapier caller");
        caller.SetIdFormat(ActivityIdFormat.W3C);
        caller.ActivityTraceFlags = ActivityTraceFlags.Recorded;
        caller.TraceStateString = "zapier=t61rcWkgMzE";
        caller.Start();
        Assert.True(caller.Recorded);
        using (var zapier = fx.Client(key))
        {
            await (await zapier.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Traced", source = "zapier" })).AssertStatusAsync(HttpStatusCode.Created);
        }
        caller.Stop();
        Activity.Current = null;
        var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "delivered");

        var stored = await fx.WithDbAsync(db => db.OutboxEvents.AsNoTracking().Where(e => e.Id == delivery.EventId).Select(e => e.TraceContext).SingleAsync());
        Assert.NotNull(stored);
        // The flags are the sampled bit, and .NET 10's random-trace-id bit when the caller's id was random.
        Assert.Matches($"^00-{caller.TraceId}-[0-9a-f]{{16}}-0[13] zapier=t61rcWkgMzE$", stored);
        var span = await AttemptSpanAsync(delivery.Id);
        var link = Assert.Single(span.Links);
        Assert.Equal(caller.TraceId, link.Context.TraceId);
        Assert.Equal("zapier=t61rcWkgMzE", link.Context.TraceState);
        Assert.True(link.Context.IsRemote);
        // A link, not a parent: the attempt is the root of a trace of its own.
        Assert.NotEqual(caller.TraceId, span.TraceId);
        Assert.Equal(default, span.ParentSpanId);
    }

    [Fact]
    public async Task An_event_written_outside_a_trace_stores_no_context_and_its_attempt_span_has_no_link()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/untraced"), "lead.created");

        // As background work writes one: no activity around the write.
        Activity.Current = null;
        await fx.WithDbAsync(db =>
        {
            db.AddEvent(gym.GymId, EventCatalog.LeadCreated, new { lead_id = Guid.NewGuid(), first_name = "Untraced" }, fx.Clock.GetUtcNow().UtcDateTime);
            return db.SaveChangesAsync();
        });
        var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "delivered");

        Assert.Null(await fx.WithDbAsync(db => db.OutboxEvents.AsNoTracking().Where(e => e.Id == delivery.EventId).Select(e => e.TraceContext).SingleAsync()));
        var span = await AttemptSpanAsync(delivery.Id);
        Assert.Empty(span.Links);
        Assert.Equal(default, span.ParentSpanId);
    }

    private async Task<Activity> AttemptSpanAsync(Guid deliveryId)
    {
        Activity? span = null;
        await Eventually.TrueAsync(() => Task.FromResult((span = fx.Spans.Snapshot().FirstOrDefault(a => a.Source.Name == DeliveryMetrics.MeterName
            && (string?)a.GetTagItem(DeliveryMetrics.DeliveryTag) == deliveryId.ToString())) is not null), what: "the attempt span");
        return span!;
    }
}
