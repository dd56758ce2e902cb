using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using Gymwire.Features.ApiKeys;
using Gymwire.Features.Events;
using Gymwire.Features.Zapier;
using Gymwire.Infrastructure;
using Gymwire.Infrastructure.Telemetry;
using Gymwire.Tests.Infrastructure;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace Gymwire.Tests.Telemetry;

/// <summary>Gymwire's own instruments read on real request paths, the Prometheus endpoint, and the spans of a request.</summary>
public abstract class InstrumentTests(TelemetryFixture fx)
{
    [Collection(ScrapesAlone.Name)]
    public sealed class Sqlite(SqliteTelemetry f) : InstrumentTests(f), IClassFixture<SqliteTelemetry>;
    [Collection(ScrapesAlone.Name)]
    public sealed class Postgres(PostgresTelemetry f) : InstrumentTests(f), IClassFixture<PostgresTelemetry>;

    private MetricCollector<long> Collect(string meter, string instrument) =>
        new(fx.Services.GetRequiredService<IMeterFactory>(), meter, instrument);

    private async Task<(TestGym Gym, string Key, Guid KeyId)> GymWithKeyAsync()
    {
        var gym = await fx.CreateGymAsync();
        var key = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "Zapier", scopes = new[] { "read", "write" } }))
            .AssertStatusAsync(HttpStatusCode.Created);
        return (gym, key.GetProperty("key").GetString()!, key.GetProperty("id").GetGuid());
    }

    private static long Count(MetricCollector<long> collector, params (string Tag, object Value)[] tags) =>
        collector.GetMeasurementSnapshot().Where(m => tags.All(t => Equals(m.Tags.GetValueOrDefault(t.Tag), t.Value))).Sum(m => m.Value);

    [Fact]
    public async Task Trigger_polls_and_rate_limit_rejections_are_counted_by_type_status_and_policy()
    {
        using var polls = Collect(ZapierMetrics.MeterName, "gymwire.zapier.trigger.polls");
        using var rejections = Collect(RateLimitMetrics.MeterName, "gymwire.rate_limit.rejections");
        var (_, key, _) = await GymWithKeyAsync();
        using var client = fx.Client(key);

        for (var i = 0; i < TelemetryFixture.TriggerLimit - 1; i++)
        {
            await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
        }
        await (await client.GetAsync("/api/zapier/triggers?type=no_such_trigger")).AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertErrorAsync(HttpStatusCode.TooManyRequests);

        Assert.Equal(TelemetryFixture.TriggerLimit - 1, Count(polls, (ZapierMetrics.TypeTag, "new_member"), ("http.response.status_code", 200)));
        // A client-chosen type is never a tag value of its own.
        Assert.Equal(1, Count(polls, (ZapierMetrics.TypeTag, "other"), ("http.response.status_code", 400)));
        Assert.Equal(1, Count(rejections, (RateLimitMetrics.PolicyTag, RateLimitPolicies.Triggers)));
        Assert.Equal(0, Count(rejections, (RateLimitMetrics.PolicyTag, RateLimitPolicies.Actions)));
    }

    [Fact]
    public async Task Actions_and_the_events_they_write_are_counted()
    {
        using var actions = Collect(ZapierMetrics.MeterName, "gymwire.zapier.actions");
        using var events = Collect(EventMetrics.MeterName, "gymwire.events.written");
        var (_, key, _) = await GymWithKeyAsync();
        using var client = fx.Client(key);

        await (await client.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Ana" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await client.PostJsonAsync("/api/zapier/actions?type=create_lead", new { last_name = "No first name" })).AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await client.PostJsonAsync("/api/zapier/actions?type=log_attendance", new { user_id = "user_nobody" })).AssertErrorAsync(HttpStatusCode.NotFound);

        Assert.Equal(1, Count(actions, (ZapierMetrics.TypeTag, "create_lead"), ("http.response.status_code", 201)));
        Assert.Equal(1, Count(actions, (ZapierMetrics.TypeTag, "create_lead"), ("http.response.status_code", 400)));
        Assert.Equal(1, Count(actions, (ZapierMetrics.TypeTag, "log_attendance"), ("http.response.status_code", 404)));
        // Only the lead committed an event; the refused actions wrote none.
        Assert.True(Count(events, (EventMetrics.TypeTag, EventCatalog.LeadCreated)) >= 1);
        Assert.Equal(0, Count(events, (EventMetrics.TypeTag, EventCatalog.AttendanceCheckedIn)));
    }

    [Fact]
    public async Task Api_key_authentications_are_counted_by_outcome()
    {
        using var authentications = Collect(ApiKeyMetrics.MeterName, "gymwire.api_key.authentications");
        var (gym, key, keyId) = await GymWithKeyAsync();

        using (var good = fx.Client(key))
        {
            await (await good.GetAsync("/api/me")).AssertStatusAsync(HttpStatusCode.OK);
        }
        using (var malformed = fx.Client("cs_not-a-key"))
        {
            await (await malformed.GetAsync("/api/me")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        }
        await (await gym.Owner().DeleteAsync($"/api/gym/api-keys/{keyId}")).AssertStatusAsync(HttpStatusCode.OK);
        using (var revoked = fx.Client(key))
        {
            await (await revoked.GetAsync("/api/me")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        }

        const string outcome = GymwireInstruments.OutcomeTag;
        Assert.True(Count(authentications, (outcome, ApiKeyMetrics.Outcomes.Success)) >= 1);
        Assert.True(Count(authentications, (outcome, ApiKeyMetrics.Outcomes.Malformed)) >= 1);
        Assert.True(Count(authentications, (outcome, ApiKeyMetrics.Outcomes.Revoked)) >= 1);
    }

    [Fact]
    public async Task The_prometheus_endpoint_serves_gymwire_http_runtime_and_process_metrics_in_text_format()
    {
        var (_, key, _) = await GymWithKeyAsync();
        using var client = fx.Client(key);
        await (await client.GetAsync("/api/zapier/triggers?type=new_payment")).AssertStatusAsync(HttpStatusCode.OK);

        using var scraper = fx.Client();
        using var response = await scraper.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("# TYPE gymwire_zapier_trigger_polls_total counter", text);
        Assert.Contains("gymwire_zapier_trigger_polls_total{", text);
        Assert.Contains("gymwire_api_key_authentications_total{", text);
        Assert.Contains("http_server_request_duration_seconds_bucket{", text);
        Assert.Contains("\ndotnet_", text);
        Assert.Contains("\nprocess_", text);
    }

    [Fact]
    public async Task A_create_lead_request_is_traced_with_its_database_spans()
    {
        var (_, key, _) = await GymWithKeyAsync();
        using var client = fx.Client(key);
        // EF Core caches whether its diagnostic listener is enabled for a second (LoggingCacheTime), and pooled contexts
        // keep that cache: a context made before the tracer provider started may send no database spans for up to a
        // second. So the traced request is repeated, each time in a new trace, until one carries its database spans.
        var deadline = Stopwatch.StartNew();
        Activity? server = null;
        List<Activity> spans = [];
        List<Activity> database = [];
        while (database.Count == 0 && deadline.Elapsed < TimeSpan.FromSeconds(15))
        {
            // The request carries this trace (HttpClient propagates the current activity), so its spans can be told apart.
            var traceId = ActivityTraceId.CreateRandom();
            using (new Activity("test").SetParentId(traceId, ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded).Start())
            {
                await (await client.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Traced" })).AssertStatusAsync(HttpStatusCode.Created);
            }
            // The server span ends just after the response is written: wait (bounded) for the exporter to see it.
            server = null;
            while (server is null && deadline.Elapsed < TimeSpan.FromSeconds(15))
            {
                server = fx.Spans.Snapshot().FirstOrDefault(a => a.TraceId == traceId && a.Kind == ActivityKind.Server);
                if (server is null)
                {
                    await Task.Delay(20);
                }
            }
            spans = fx.Spans.Snapshot().Where(a => a.TraceId == traceId).ToList();
            database = spans.Where(a => a.Source.Name.Contains("EntityFrameworkCore", StringComparison.Ordinal)).ToList();
        }
        Assert.True(server is not null, "spans seen: " + string.Join(", ", fx.Spans.Snapshot().Take(30).Select(a => $"{a.Source.Name}/{a.Kind}/{a.DisplayName}/{a.TraceId}")));
        Assert.Equal("/api/zapier/actions", server.GetTagItem("http.route"));
        Assert.Equal(201, server.GetTagItem("http.response.status_code"));
        Assert.NotEmpty(database);
        Assert.All(database, a => Assert.Equal(ActivityKind.Client, a.Kind));
        // Every span of the trace hangs off the request's span.
        var ids = spans.Select(a => a.SpanId).ToHashSet();
        Assert.All(database, a => Assert.Contains(a.ParentSpanId, ids));
    }
}

/// <summary>The Prometheus endpoint is absent unless configured.</summary>
public abstract class MetricsOffTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : MetricsOffTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : MetricsOffTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task Metrics_is_not_served_by_default()
    {
        using var client = fx.Client();
        using var response = await client.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }
}

/// <summary>With a port of its own, the endpoint answers there only, and that port serves nothing else.</summary>
public abstract class MetricsPortTests(MetricsPortFixture fx)
{
    [Collection(ScrapesAlone.Name)]
    public sealed class Sqlite(SqliteMetricsPort f) : MetricsPortTests(f), IClassFixture<SqliteMetricsPort>;
    [Collection(ScrapesAlone.Name)]
    public sealed class Postgres(PostgresMetricsPort f) : MetricsPortTests(f), IClassFixture<PostgresMetricsPort>;

    [Fact]
    public async Task Metrics_are_served_on_their_own_port_and_not_with_the_api()
    {
        using var metrics = fx.MetricsClient();
        using (var scrape = await metrics.GetAsync("/metrics"))
        {
            Assert.Equal(HttpStatusCode.OK, scrape.StatusCode);
            Assert.Contains("# TYPE ", await scrape.Content.ReadAsStringAsync());
        }
        using (var api = await metrics.GetAsync("/healthz"))
        {
            Assert.Equal(HttpStatusCode.NotFound, api.StatusCode);
        }

        using var client = fx.Client();
        await (await client.GetAsync("/healthz")).AssertStatusAsync(HttpStatusCode.OK);
        // The Host header names the metrics port: the port the request arrived on decides.
        using var spoofed = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        spoofed.Headers.Host = $"127.0.0.1:{fx.MetricsPort}";
        using var refused = await client.SendAsync(spoofed);
        Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
    }
}
