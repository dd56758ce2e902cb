using System.Net;
using Gymwire.Features.Webhooks;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;

namespace Gymwire.Tests.Telemetry;

/// <summary><see cref="WebhookFixture"/> with the Prometheus endpoint on (on the API's port).</summary>
public abstract class ScrapedWebhookFixture(Store store) : WebhookFixture(store)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => [.. base.Settings(), new("Metrics:Prometheus:Enabled", "true")];
}

public sealed class SqliteScrapedWebhooks() : ScrapedWebhookFixture(Store.Sqlite);

public sealed class PostgresScrapedWebhooks() : ScrapedWebhookFixture(Store.Postgres);

/// <summary>What the scrape holds after deliveries to several receivers, on both stores.</summary>
public abstract class ScrapeSeriesTests(ScrapedWebhookFixture fx)
{
    [Collection(ScrapesAlone.Name)]
    public sealed class Sqlite(SqliteScrapedWebhooks f) : ScrapeSeriesTests(f), IClassFixture<SqliteScrapedWebhooks>;
    [Collection(ScrapesAlone.Name)]
    public sealed class Postgres(PostgresScrapedWebhooks f) : ScrapeSeriesTests(f), IClassFixture<PostgresScrapedWebhooks>;

    [Fact]
    public async Task Deliveries_to_several_receivers_add_no_series_per_receiver()
    {
        await using var first = await TestReceiver.StartAsync();
        await using var second = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var a = await gym.CreateWebhookAsync(first.Url("/a"), "member.joined");
        var b = await gym.CreateWebhookAsync(second.Url("/b"), "member.joined");
        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_scraped"));
        await fx.WaitForDeliveryAsync(a.Id, d => d.Status == DeliveryStatus.Delivered, "delivered to the first receiver");
        await fx.WaitForDeliveryAsync(b.Id, d => d.Status == DeliveryStatus.Delivered, "delivered to the second receiver");

        using var client = fx.Client();
        var text = "";
        await Eventually.TrueAsync(async () => (text = await client.GetStringAsync("/metrics")).Contains("http_client_request_duration_seconds_count", StringComparison.Ordinal),
            what: "HttpClient's instruments in the scrape");
        var lines = text.Split('\n').Where(l => l.StartsWith("http_client_", StringComparison.Ordinal) || l.StartsWith("dns_", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(lines);
        foreach (var label in new[] { "server_address=", "server_port=", "network_peer_address=", "dns_question_name=" })
        {
            Assert.DoesNotContain(lines, l => l.Contains(label, StringComparison.Ordinal));
        }
        // The kept tags are still there.
        Assert.Contains(lines, l => l.StartsWith("http_client_request_duration_seconds_count", StringComparison.Ordinal) && l.Contains("http_response_status_code=\"200\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Instruments_measured_per_request_that_nobody_reads_are_not_exported()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/trimmed"), "member.joined");
        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_trimmed"));
        await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "delivered");
        await (await gym.Owner().GetAsync("/api/gym/webhooks")).AssertStatusAsync(HttpStatusCode.OK);

        using var client = fx.Client();
        var text = "";
        await Eventually.TrueAsync(async () => (text = await client.GetStringAsync("/metrics")).Contains("http_client_request_duration_seconds_count", StringComparison.Ordinal),
            what: "HttpClient's request duration in the scrape");
        // What operators read stays: HTTP requests served and sent, connections, the runtime and the process.
        Assert.Contains("http_server_request_duration_seconds_count{", text);
        Assert.Contains("\nkestrel_", text);
        Assert.Contains("\ndotnet_", text);
        Assert.Contains("\nprocess_", text);
        // Measured several times per request or delivery, read by nobody (TelemetrySetup.AspNetCoreMeters, DroppedHttpClientInstruments).
        foreach (var series in new[] { "http_server_active_requests", "aspnetcore_memory_pool_", "aspnetcore_routing_", "aspnetcore_authentication_", "aspnetcore_authorization_", "http_client_open_connections", "http_client_active_requests" })
        {
            Assert.DoesNotContain("\n" + series, text);
        }
    }

    [Fact]
    public void Without_a_trace_exporter_no_tracer_provider_is_built()
    {
        // Only the Prometheus endpoint is on: metrics are collected, and no span is (no listener, so no request,
        // SQL command or HTTP call records one).
        Assert.NotNull(fx.Services.GetService<MeterProvider>());
        Assert.Null(fx.Services.GetService<TracerProvider>());
    }
}
