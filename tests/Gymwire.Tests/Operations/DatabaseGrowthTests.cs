using System.Net;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Xunit.Abstractions;

namespace Gymwire.Tests.Operations;

/// <summary>
/// How much the database grows per write and per delivered webhook: N leads
/// created with no subscription (a lead row and its outbox event), then N more with one subscription whose receiver
/// answers 200 (adding a delivery and its attempt). The difference is one delivered delivery with one attempt.
/// The bounds only catch a regression of several times; the printed figures are the measurement.
/// </summary>
public abstract class DatabaseGrowthTests(GymwireFixture fx, ITestOutputHelper output)
{
    public sealed class Sqlite(SqliteGrowth f, ITestOutputHelper o) : DatabaseGrowthTests(f, o), IClassFixture<SqliteGrowth>;
    public sealed class Postgres(PostgresGrowth f, ITestOutputHelper o) : DatabaseGrowthTests(f, o), IClassFixture<PostgresGrowth>;

    private const int N = 1000;

    [Fact]
    public async Task Growth_per_lead_and_per_delivered_delivery()
    {
        var gym = await fx.CreateGymAsync();
        await CreateLeadsAsync(gym, 50); // warm-up: the first pages of each table and index
        var start = await UsedBytesAsync();
        await CreateLeadsAsync(gym, N);
        var afterLeads = await UsedBytesAsync();

        await using var receiver = await TestReceiver.StartAsync();
        await gym.CreateWebhookAsync(receiver.Url("/hook"), "lead.created");
        await CreateLeadsAsync(gym, 50);
        await Eventually.TrueAsync(() => Task.FromResult(receiver.Requests.Count >= 50), TimeSpan.FromSeconds(60), "the warm-up deliveries");
        var beforeDeliveries = await UsedBytesAsync();
        await CreateLeadsAsync(gym, N);
        await Eventually.TrueAsync(() => Task.FromResult(receiver.Requests.Count >= N + 50), TimeSpan.FromSeconds(120), "the deliveries");
        await Eventually.TrueAsync(async () => await fx.WithDbAsync(db => db.WebhookAttempts.CountAsync()) >= N + 50, TimeSpan.FromSeconds(60), "the attempts recorded");
        var afterDeliveries = await UsedBytesAsync();

        var perLead = (afterLeads - start) / (double)N;
        var perDeliveredLead = (afterDeliveries - beforeDeliveries) / (double)N;
        output.WriteLine($"{fx.Store}: {perLead:F0} B per lead with its event; {perDeliveredLead:F0} B per lead delivered to one webhook; " +
                         $"{perDeliveredLead - perLead:F0} B per delivered delivery with one attempt (N = {N})");
        Assert.InRange(perLead, 50, 4096);
        Assert.InRange(perDeliveredLead - perLead, 50, 8192);
    }

    private async Task CreateLeadsAsync(TestGym gym, int count)
    {
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
        {
            using var owner = gym.Owner();
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                await (await owner.PostJsonAsync("/api/gym/leads", new { first_name = $"Lead {i}", last_name = "Growth", email = $"lead{i}@example.com", source = "website" }))
                    .AssertStatusAsync(HttpStatusCode.Created);
            }
        }));
    }

    /// <summary>SQLite: pages in use (free pages left out); PostgreSQL: every table's size with its indexes and TOAST.</summary>
    private async Task<long> UsedBytesAsync()
    {
        if (fx.Store == Store.Postgres)
        {
            return await fx.WithDbAsync(db => db.Database.SqlQueryRaw<long>(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS \"Value\" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " +
                "WHERE n.nspname = 'public' AND c.relkind = 'r'").SingleAsync());
        }
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder(fx.ConnectionString) { Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        long Pragma(string name)
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"PRAGMA {name};";
            return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }
        return (Pragma("page_count") - Pragma("freelist_count")) * Pragma("page_size");
    }
}

public sealed class SqliteGrowth() : WebhookFixture(Store.Sqlite)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => [.. base.Settings(), new("RateLimiting:Enabled", "false")];
}

public sealed class PostgresGrowth() : WebhookFixture(Store.Postgres)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => [.. base.Settings(), new("RateLimiting:Enabled", "false")];
}
