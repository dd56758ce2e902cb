namespace Gymwire.Infrastructure.Telemetry;

/// <summary>The <c>Metrics</c> configuration section (docs/configuration.md, "Metrics and traces").</summary>
public sealed class MetricsOptions
{
    public const string Section = "Metrics";

    public PrometheusOptions Prometheus { get; set; } = new();

    /// <summary>
    /// Tags webhook attempts with their subscription id, for failure rates per endpoint: one series per webhook, so off
    /// by default (a server with many gyms has many webhooks).
    /// </summary>
    public bool PerSubscription { get; set; }
}

public sealed class PrometheusOptions
{
    /// <summary>Serves the Prometheus scrape endpoint. Off by default: metrics can tell a lot about a deployment.</summary>
    public bool Enabled { get; set; }

    /// <summary>Where the endpoint answers.</summary>
    public string Path { get; set; } = "/metrics";

    /// <summary>
    /// A port of its own (listening on every interface): the endpoint then answers only there and the API never does,
    /// so a firewall can keep the port private. Unset: the endpoint answers on the API's addresses.
    /// </summary>
    public int? Port { get; set; }
}
