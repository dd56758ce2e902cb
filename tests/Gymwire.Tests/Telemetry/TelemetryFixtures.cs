using System.Collections;
using System.Diagnostics;
using Gymwire.Tests.Infrastructure;
using OpenTelemetry.Trace;

namespace Gymwire.Tests.Telemetry;

/// <summary>A Gymwire with the Prometheus endpoint on (on the API's port), a low trigger limit, and its spans kept in memory.</summary>
public abstract class TelemetryFixture(Store store) : GymwireFixture(store)
{
    public const int TriggerLimit = 3;

    public LockedList<Activity> Spans { get; } = new();

    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        new("Metrics:Prometheus:Enabled", "true"),
        new("RateLimiting:Triggers:PermitLimit", TriggerLimit.ToString(System.Globalization.CultureInfo.InvariantCulture)),
    ];

    // The in-memory exporter stands in for OTLP: the same instrumentation, spans kept for the test to read.
    protected override void ConfigureServices(IServiceCollection services) =>
        services.AddOpenTelemetry().WithTracing(t => t.AddInMemoryExporter(Spans));
}

/// <summary>
/// The tests that read a Prometheus scrape run with no other test class at the same time. OpenTelemetry merges the
/// instruments of same-named meters into one stream and stops exporting that stream when any of those meters is disposed
/// (open-telemetry/opentelemetry-dotnet#6412); every server this test process runs (other classes' fixtures, webhook
/// receivers) has meters named like Gymwire's, Kestrel's and HttpClient's, so one disposed mid-test would take series
/// out of the scrape. For the same reason a scraping test disposes its receivers only after the scrape.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ScrapesAlone
{
    public const string Name = "Prometheus scrapes, alone";
}

public sealed class SqliteTelemetry() : TelemetryFixture(Store.Sqlite);

public sealed class PostgresTelemetry() : TelemetryFixture(Store.Postgres);

/// <summary>A Gymwire whose Prometheus endpoint has a port of its own.</summary>
public abstract class MetricsPortFixture(Store store) : GymwireFixture(store)
{
    public int MetricsPort { get; private set; } = TestPorts.Free();

    protected override bool ChooseOtherPorts()
    {
        MetricsPort = TestPorts.Free();
        return true;
    }

    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        new("Metrics:Prometheus:Enabled", "true"),
        new("Metrics:Prometheus:Port", MetricsPort.ToString(System.Globalization.CultureInfo.InvariantCulture)),
    ];

    public HttpClient MetricsClient() => new() { BaseAddress = new Uri($"http://127.0.0.1:{MetricsPort}") };
}

public sealed class SqliteMetricsPort() : MetricsPortFixture(Store.Sqlite);

public sealed class PostgresMetricsPort() : MetricsPortFixture(Store.Postgres);

/// <summary>A list the exporter adds to while a test reads it.</summary>
public sealed class LockedList<T> : ICollection<T>
{
    private readonly List<T> _items = [];

    public List<T> Snapshot()
    {
        lock (_items)
        {
            return [.. _items];
        }
    }

    public int Count => Snapshot().Count;
    public bool IsReadOnly => false;

    public void Add(T item)
    {
        lock (_items)
        {
            _items.Add(item);
        }
    }

    public void Clear()
    {
        lock (_items)
        {
            _items.Clear();
        }
    }

    public bool Contains(T item) => Snapshot().Contains(item);
    public void CopyTo(T[] array, int arrayIndex) => Snapshot().CopyTo(array, arrayIndex);

    public bool Remove(T item)
    {
        lock (_items)
        {
            return _items.Remove(item);
        }
    }

    public IEnumerator<T> GetEnumerator() => Snapshot().GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
