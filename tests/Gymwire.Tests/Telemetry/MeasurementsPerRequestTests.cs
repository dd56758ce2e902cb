using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using Gymwire.Infrastructure.Telemetry;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;

namespace Gymwire.Tests.Telemetry;

/// <summary>
/// How many measurements the exported instruments take per authenticated trigger poll, with the Prometheus endpoint on:
/// each costs CPU on every request (issue 28: metrics may cost at most 3 %). Counted with a listener of its own that
/// enables, of this server's instruments, those the exporter reads.
/// </summary>
public abstract class MeasurementsPerRequestTests(ScrapedWebhookFixture fx)
{
    public sealed class Sqlite(SqliteScrapedWebhooks f) : MeasurementsPerRequestTests(f), IClassFixture<SqliteScrapedWebhooks>;
    public sealed class Postgres(PostgresScrapedWebhooks f) : MeasurementsPerRequestTests(f), IClassFixture<PostgresScrapedWebhooks>;

    [Fact]
    public async Task An_authenticated_poll_takes_four_measurements_at_most()
    {
        var gym = await fx.CreateGymAsync();
        var key = (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "read" } })).JsonAsync()).GetProperty("key").GetString()!;
        using var client = fx.Client(key);

        var factory = fx.Services.GetRequiredService<IMeterFactory>();
        var counts = new ConcurrentDictionary<string, int>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Scope == factory && Exported(instrument))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        void Count(Instrument instrument) => counts.AddOrUpdate(instrument.Name, 1, (_, n) => n + 1);
        listener.SetMeasurementEventCallback<long>((i, _, _, _) => Count(i));
        listener.SetMeasurementEventCallback<int>((i, _, _, _) => Count(i));
        listener.SetMeasurementEventCallback<double>((i, _, _, _) => Count(i));
        listener.Start();
        // A request's duration is recorded after its response has reached the client, and after every other measurement
        // of that request: wait for it before counting starts and before it stops.
        Task RequestsEndedAsync(int count) => Eventually.TrueAsync(() => Task.FromResult(counts.GetValueOrDefault(RequestDuration) >= count), what: $"{count} requests ended");

        await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
        await RequestsEndedAsync(1);
        counts.Clear();
        const int polls = 20;
        for (var i = 0; i < polls; i++)
        {
            await (await client.GetAsync("/api/zapier/triggers?type=new_member")).AssertStatusAsync(HttpStatusCode.OK);
        }
        await RequestsEndedAsync(polls);
        listener.Dispose();
        var perPoll = counts.ToDictionary(c => c.Key, c => c.Value / (double)polls);
        var total = perPoll.Values.Sum();
        Assert.True(total <= 4, "measurements per poll: " + string.Join(", ", perPoll.Select(p => $"{p.Key} {p.Value:0.##}")));
    }

    private const string RequestDuration = "http.server.request.duration";

    // Kestrel measures connections, not requests (the polls share one kept-alive connection): another client's
    // connection closing meanwhile must not count against the poll.
    private static bool Exported(Instrument instrument) =>
        instrument.Meter.Name.StartsWith("Gymwire.", StringComparison.Ordinal)
        || (TelemetrySetup.AspNetCoreMeters.Contains(instrument.Meter.Name) && instrument.Meter.Name != "Microsoft.AspNetCore.Server.Kestrel"
            && instrument.Name != TelemetrySetup.DroppedHostingInstrument)
        || (instrument.Meter.Name == "System.Net.Http" && !TelemetrySetup.DroppedHttpClientInstruments.Contains(instrument.Name));
}
