using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Reliability;

/// <summary>
/// R1 (ingest): writes keep arriving while the server is killed with SIGKILL; after a restart every write
/// that was answered 2xx exists with its event, nothing is half-written, and the database passes its
/// integrity check.
/// </summary>
public abstract class CrashTests(GymwireFixture fx)
{
    public sealed class Sqlite(UnlimitedSqlite f) : CrashTests(f), IClassFixture<UnlimitedSqlite>;
    public sealed class Postgres(UnlimitedPostgres f) : CrashTests(f), IClassFixture<UnlimitedPostgres>;

    private static readonly KeyValuePair<string, string>[] Unlimited =
    [
        new("RateLimiting:Enabled", "false"),
    ];

    [Fact]
    public async Task Every_acknowledged_write_survives_a_kill_during_ingest_with_its_event()
    {
        var gym = await fx.CreateGymAsync();
        var key = (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "read", "write" } })).JsonAsync()).GetProperty("key").GetString()!;
        var acknowledged = new ConcurrentBag<Guid>();

        var node = await GymwireProcess.StartAsync(fx.Store, fx.ConnectionString, Unlimited);
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            using var client = node.Client(key);
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                try
                {
                    var response = await client.PostAsJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = $"W{w}-{i}" });
                    if (response.StatusCode == HttpStatusCode.Created)
                    {
                        acknowledged.Add((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid());
                    }
                }
                catch (HttpRequestException)
                {
                    return; // the server is gone
                }
                catch (TaskCanceledException)
                {
                    return;
                }
            }
        })).ToList();

        // Kill once a good number of writes are in flight and acknowledged.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (acknowledged.Count < 300 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }
        await node.KillAsync();
        await stop.CancelAsync();
        await Task.WhenAll(writers);
        Assert.True(acknowledged.Count >= 300, $"only {acknowledged.Count} writes before the deadline");

        await using var restarted = await GymwireProcess.StartAsync(fx.Store, fx.ConnectionString, Unlimited);
        var leads = await fx.WithDbAsync(db => db.Leads.Where(l => l.GymId == gym.GymId).Select(l => l.Id).ToListAsync());
        var events = await fx.WithDbAsync(db => db.OutboxEvents.Where(e => e.GymId == gym.GymId && e.Type == "lead.created").Select(e => e.Data).ToListAsync());
        var eventLeadIds = events.Select(d => JsonDocument.Parse(d).RootElement.GetProperty("lead_id").GetGuid()).ToHashSet();

        Assert.Empty(acknowledged.Except(leads));            // every 2xx exists
        Assert.Equal(leads.Count, eventLeadIds.Count);        // no lead without its event, no event without its lead
        Assert.True(eventLeadIds.SetEquals(leads));
        await Integrity.AssertAsync(fx);

        // And the restarted node serves them.
        using var client = restarted.Client(key);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/gym/leads")).StatusCode);
    }
}
