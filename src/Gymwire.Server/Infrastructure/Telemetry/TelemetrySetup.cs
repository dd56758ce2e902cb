using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Hosting;
using Gymwire.Features.Zapier;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Gymwire.Infrastructure.Telemetry;

/// <summary>
/// Metrics and traces with the OpenTelemetry SDK (docs/metrics.md). What is measured and traced is configured always;
/// a provider, and so any cost, exists only when an exporter is on: the Prometheus endpoint (<c>Metrics:Prometheus</c>)
/// or OTLP (<c>OTEL_EXPORTER_OTLP_ENDPOINT</c>, read as every OpenTelemetry SDK reads it).
/// </summary>
public static class TelemetrySetup
{
    public const string ServiceName = "gymwire";
    public const string OtlpEndpointKey = "OTEL_EXPORTER_OTLP_ENDPOINT";

    public static WebApplicationBuilder AddGymwireTelemetry(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<MetricsOptions>().BindConfiguration(MetricsOptions.Section)
            .Validate(o => o.Prometheus.Port is null or (> 0 and <= 65535), "Metrics:Prometheus:Port must be between 1 and 65535.")
            .Validate(o => o.Prometheus.Path.StartsWith('/'), "Metrics:Prometheus:Path must start with '/'.")
            .ValidateOnStart();
        // The instruments of the features without a setup method of their own.
        // A factory: its two constructors (options, or a bool with a default) are ambiguous to the container.
        services.TryAddSingleton(sp => new DeliveryMetrics(sp.GetRequiredService<IMeterFactory>(), sp.GetRequiredService<IOptions<MetricsOptions>>()));
        services.TryAddSingleton<ZapierMetrics>();

        services.ConfigureOpenTelemetryMeterProvider(metrics => metrics
            .AddMeter(GymwireInstruments.AllMeters)
            .AddMeter(AspNetCoreMeters)
            .AddHttpClientInstrumentation()
            .AddRuntimeInstrumentation()
            .AddProcessInstrumentation()
            .AddView(Trimmed));
        services.ConfigureOpenTelemetryTracerProvider(tracing => tracing
            .AddSource(GymwireInstruments.AllMeters)
            .AddAspNetCoreInstrumentation(o => o.Filter = http => !IsScrape(http))
            .AddHttpClientInstrumentation(o => o.EnrichWithHttpRequestMessage = RedactUrl)
            .AddEntityFrameworkCoreInstrumentation());

        var prometheus = builder.Configuration.GetSection(MetricsOptions.Section).Get<MetricsOptions>()?.Prometheus ?? new PrometheusOptions();
        var otlp = !string.IsNullOrWhiteSpace(builder.Configuration[OtlpEndpointKey]);
        if (!prometheus.Enabled && !otlp)
        {
            return builder;
        }
        var named = !string.IsNullOrWhiteSpace(builder.Configuration["OTEL_SERVICE_NAME"]);
        var telemetry = services.AddOpenTelemetry().ConfigureResource(r =>
        {
            if (!named)
            {
                r.AddService(ServiceName);
            }
        });
        telemetry.WithMetrics(metrics =>
        {
            if (prometheus.Enabled)
            {
                metrics.AddPrometheusExporter();
            }
            if (otlp)
            {
                metrics.AddOtlpExporter();
            }
        });
        if (otlp)
        {
            telemetry.WithTracing(tracing => tracing.AddOtlpExporter());
        }
        if (prometheus.Enabled && prometheus.Port is { } port and > 0 and <= 65535)
        {
            ListenOn(builder, port);
        }
        return builder;
    }

    /// <summary>
    /// First in the pipeline: the Prometheus endpoint when enabled. With a port of its own, that port answers the scrape
    /// and nothing else, and the API's addresses never answer it (the port a request arrived on decides, not its Host header).
    /// </summary>
    public static IApplicationBuilder UseGymwireTelemetry(this IApplicationBuilder app)
    {
        var prometheus = app.ApplicationServices.GetRequiredService<IOptions<MetricsOptions>>().Value.Prometheus;
        if (!prometheus.Enabled)
        {
            return app;
        }
        var path = new PathString(prometheus.Path);
        if (prometheus.Port is not { } port)
        {
            return app.UseOpenTelemetryPrometheusScrapingEndpoint(http => http.Request.Path == path);
        }
        app.UseOpenTelemetryPrometheusScrapingEndpoint(http => http.Connection.LocalPort == port && http.Request.Path == path);
        return app.Use((http, next) => http.Connection.LocalPort == port
            ? ApiErrors.WriteAsync(http, StatusCodes.Status404NotFound, "Not found")
            : next(http));
    }

    /// <summary>
    /// ASP.NET Core's meters that are exported: HTTP requests, connections, unhandled exceptions. (Its rate-limiting meter
    /// would stay empty: Gymwire's limits are its own middleware, measured as <c>gymwire.rate_limit.*</c>.)
    /// <c>AddAspNetCoreInstrumentation()</c> would add all its built-in meters, among them the memory pool's (several
    /// measurements per API request), routing's, authentication's and authorization's: most of the measurements an
    /// authenticated poll would make, for figures nobody runs Gymwire by.
    /// </summary>
    internal static readonly string[] AspNetCoreMeters =
        ["Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "Microsoft.AspNetCore.Diagnostics"];

    /// <summary>
    /// HttpClient's instruments measured per request but not exported: its open-connection and active-request counts
    /// take a measurement at each state change of a pooled connection, several per webhook delivery, more than everything
    /// else a delivery records; the deliveries in flight are bounded by <c>Webhooks:MaxConcurrentDeliveries</c> anyway.
    /// </summary>
    internal static readonly string[] DroppedHttpClientInstruments = ["http.client.open_connections", "http.client.active_requests"];

    /// <summary>
    /// ASP.NET Core's in-flight request count is measured twice per request (up and down); the request rate and
    /// duration, and Kestrel's connection counts, are what operators read.
    /// </summary>
    internal const string DroppedHostingInstrument = "http.server.active_requests";

    /// <summary>The tags HttpClient's instruments keep: none that names the server (see <see cref="Trimmed"/>).</summary>
    private static readonly string[] HttpClientTags =
        ["http.request.method", "http.response.status_code", "error.type", "url.scheme", "network.protocol.version"];

    /// <summary>
    /// HttpClient's and DNS's instruments tag every measurement with the server's name, port and address (DNS: the name
    /// looked up), so each webhook receiver would get series of its own, as many as anyone with a key cares to create
    /// webhooks for, and the scrape would grow with them. They are kept without those tags; per-endpoint
    /// figures are Gymwire's own instruments', with <c>Metrics:PerSubscription</c>. A dropped instrument is not
    /// enabled at all, so HttpClient skips its measurements.
    /// </summary>
    internal static MetricStreamConfiguration? Trimmed(Instrument instrument) => instrument.Meter.Name switch
    {
        "System.Net.Http" when DroppedHttpClientInstruments.Contains(instrument.Name) => MetricStreamConfiguration.Drop,
        "Microsoft.AspNetCore.Hosting" when instrument.Name == DroppedHostingInstrument => MetricStreamConfiguration.Drop,
        "System.Net.Http" => new MetricStreamConfiguration { TagKeys = HttpClientTags },
        "System.Net.NameResolution" => new MetricStreamConfiguration { TagKeys = ["error.type"] },
        _ => null,
    };

    private static bool IsScrape(HttpContext http) =>
        http.RequestServices.GetService<IOptions<MetricsOptions>>()?.Value.Prometheus is { Enabled: true } p && http.Request.Path == p.Path;

    /// <summary>
    /// Outgoing URLs (webhook endpoints above all) often carry a token in the path or the query: spans keep the origin only.
    /// A webhook request also says which delivery it is, which the span keeps.
    /// </summary>
    internal static void RedactUrl(Activity activity, HttpRequestMessage request)
    {
        if (request.RequestUri is { IsAbsoluteUri: true } uri)
        {
            activity.SetTag("url.full", uri.GetComponents(UriComponents.SchemeAndServer, UriFormat.UriEscaped) + "/");
        }
        activity.SetTag("url.query", null);
        activity.SetTag("url.path", null);
        if (request.Headers.TryGetValues("webhook-id", out var ids))
        {
            activity.SetTag("gymwire.webhook.delivery_id", ids.FirstOrDefault());
        }
    }

    /// <summary>Adds the metrics port to the addresses the server listens on, however those are configured.</summary>
    private static void ListenOn(WebApplicationBuilder builder, int port)
    {
        var url = $"http://*:{port}";
        var config = builder.Configuration;
        if (config.GetSection("Kestrel:Endpoints").GetChildren().Any())
        {
            // Kestrel's own endpoints replace the URLs: add one more of them.
            config.AddInMemoryCollection([new("Kestrel:Endpoints:GymwireMetrics:Url", url)]);
            return;
        }
        var urls = Split(config[WebHostDefaults.ServerUrlsKey]);
        if (urls.Length == 0)
        {
            urls = [.. Split(config[WebHostDefaults.HttpPortsKey]).Select(p => $"http://*:{p}"), .. Split(config[WebHostDefaults.HttpsPortsKey]).Select(p => $"https://*:{p}")];
        }
        if (urls.Length == 0)
        {
            urls = ["http://localhost:5000"];
        }
        builder.WebHost.UseUrls([.. urls, url]);
    }

    private static string[] Split(string? list) => list?.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
}
