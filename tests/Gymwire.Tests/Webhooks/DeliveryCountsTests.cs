using System.Net;
using System.Text.RegularExpressions;
using Gymwire.Features.Events;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Dashboard;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// The health panel's roll-up (<c>webhook_delivery_counts</c>, kept by triggers) says what the delivery rows say, after
/// every kind of write: fan-out and test sends (which it leaves out), attempts that fail and succeed, retry-all-failed, bulk status changes,
/// retention's deletes and a deleted subscription's cascade.
/// </summary>
public abstract partial class DeliveryCountsTests(WebhookFixture fx)
{
    public sealed class Sqlite(SqliteWebhooks f) : DeliveryCountsTests(f), IClassFixture<SqliteWebhooks>;
    public sealed class Postgres(PostgresWebhooks f) : DeliveryCountsTests(f), IClassFixture<PostgresWebhooks>;

    private static DateTime QuarterHour(DateTime t) => new(t.Ticks - t.Ticks % TimeSpan.FromMinutes(15).Ticks, DateTimeKind.Utc);

    /// <summary>
    /// The roll-up, summed over slots, equals the rows of events' deliveries (test sends are not counted) grouped by
    /// subscription and quarter hour (empty groups absent).
    /// </summary>
    private async Task AssertCountsMatchRowsAsync(Guid gymId, string when)
    {
        var rows = await fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().Where(d => d.GymId == gymId && !d.IsTest)
            .Select(d => new { d.SubscriptionId, d.CreatedAt, d.Status }).ToListAsync());
        var expected = rows.GroupBy(d => (d.SubscriptionId, Bucket: QuarterHour(d.CreatedAt)))
            .Select(g => $"{g.Key.SubscriptionId} {g.Key.Bucket:O} {g.Count(d => d.Status == DeliveryStatus.Delivered)}/{g.Count(d => d.Status == DeliveryStatus.Retrying)}/{g.Count(d => d.Status == DeliveryStatus.Undeliverable)}/{g.Count(d => d.Status == DeliveryStatus.Pending)}")
            .Order().ToList();
        var counts = await fx.WithDbAsync(db => db.DeliveryCounts.AsNoTracking().Where(c => c.GymId == gymId).ToListAsync());
        var actual = counts.GroupBy(c => (c.SubscriptionId, Bucket: DateTime.SpecifyKind(c.Bucket, DateTimeKind.Utc)))
            .Select(g => (g.Key, D: g.Sum(c => c.Delivered), R: g.Sum(c => c.Retrying), U: g.Sum(c => c.Undeliverable), P: g.Sum(c => c.Pending)))
            .Where(g => g.D != 0 || g.R != 0 || g.U != 0 || g.P != 0)
            .Select(g => $"{g.Key.SubscriptionId} {g.Key.Bucket:O} {g.D}/{g.R}/{g.U}/{g.P}")
            .Order().ToList();
        Assert.True(expected.SequenceEqual(actual), $"{when}:\nrows:   {string.Join("\n        ", expected)}\ncounts: {string.Join("\n        ", actual)}");
    }

    [Fact]
    public async Task The_roll_up_equals_the_delivery_rows_after_every_kind_of_write()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var down = true;
        receiver.On("/counts", _ => down ? new Reply(503, "down") : new Reply(200, "ok"));
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/counts"), "member.joined");
        var other = await gym.CreateWebhookAsync("http://127.0.0.1:9/counts-other", "member.joined");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var retention = fx.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<WebhookOptions>>().Value.DeliveryRetention;

        // Old and recent history, inserted as rows (the triggers count them), spread over quarter hours and days.
        await fx.WithDbAsync(db =>
        {
            var statuses = new[] { DeliveryStatus.Delivered, DeliveryStatus.Retrying, DeliveryStatus.Undeliverable, DeliveryStatus.Delivered };
            for (var i = 0; i < 40; i++)
            {
                var created = (i < 10 ? now - retention - TimeSpan.FromHours(2) : now) - TimeSpan.FromMinutes(i * 37);
                var status = i < 10 ? (i % 2 == 0 ? DeliveryStatus.Delivered : DeliveryStatus.Undeliverable) : statuses[i % 4];
                db.WebhookDeliveries.Add(new WebhookDelivery
                {
                    Id = Guid.CreateVersion7(created), GymId = gym.GymId, SubscriptionId = i % 3 == 0 ? other.Id : hook.Id, Event = "member.joined", Payload = "{}",
                    Status = status, CreatedAt = created, AttemptCount = 1, LastAttemptAt = created,
                    NextAttemptAt = status == DeliveryStatus.Retrying ? now + TimeSpan.FromDays(1) : null,
                });
            }
            return db.SaveChangesAsync();
        });
        await AssertCountsMatchRowsAsync(gym.GymId, "after inserting history");

        // Events fanned out to both webhooks (the dispatcher's bulk insert), and their first attempts failed (the recorder).
        await fx.WithDbAsync(db =>
        {
            for (var i = 0; i < 3; i++)
            {
                db.AddEvent(gym.GymId, EventCatalog.MemberJoined, new { user_id = $"user_{i}" }, now);
            }
            return db.SaveChangesAsync();
        });
        fx.Services.GetRequiredService<OutboxSignal>().Notify();
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hook.Id)).Concat(await fx.DeliveriesAsync(other.Id))
            .Count(d => d.EventId is not null && d.AttemptCount == 1 && d.Status == DeliveryStatus.Retrying) == 6, what: "the events' first attempts recorded");
        await AssertCountsMatchRowsAsync(gym.GymId, "after fan-out and failed first attempts");

        // Test sends against a failing endpoint: each is created pending and ends undeliverable.
        using var owner = gym.Owner();
        for (var i = 0; i < 2; i++)
        {
            await (await owner.PostJsonAsync($"/api/gym/webhooks/{hook.Id}/test", new { })).AssertStatusAsync(HttpStatusCode.OK);
        }
        await AssertCountsMatchRowsAsync(gym.GymId, "after failed test sends");

        // Retry all failed: undeliverable and retrying ones become pending, then delivered by the worker.
        down = false;
        var since = (now - TimeSpan.FromDays(2)).ToString("O");
        var retried = (await (await owner.PostJsonAsync($"/api/gym/webhooks/{hook.Id}/retry-failed", new { since })).AssertStatusAsync(HttpStatusCode.Accepted)).GetProperty("retried").GetInt32();
        Assert.True(retried >= 2, $"{retried} retried");
        await Eventually.TrueAsync(async () => (await fx.DeliveriesAsync(hook.Id)).Where(d => d.CreatedAt >= now - TimeSpan.FromDays(2))
            .All(d => d.Status == DeliveryStatus.Delivered), what: "the retried deliveries delivered");
        await AssertCountsMatchRowsAsync(gym.GymId, "after retry-all-failed was delivered");

        // A bulk status change in one statement (as when a webhook is deactivated with deliveries queued).
        await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.SubscriptionId == other.Id && d.Status == DeliveryStatus.Retrying)
            .ExecuteUpdateAsync(u => u.SetProperty(d => d.Status, DeliveryStatus.Undeliverable)));
        await AssertCountsMatchRowsAsync(gym.GymId, "after a bulk status change");

        // Retention deletes the old finished deliveries: their quarter hours leave the roll-up.
        var purged = await fx.Services.GetServices<IHostedService>().OfType<WebhookRetention>().Single().PurgeAsync(CancellationToken.None);
        Assert.True(purged >= 10, $"{purged} purged");
        await AssertCountsMatchRowsAsync(gym.GymId, "after retention");

        // The page shows the rows' figures for the last 7 days, test sends left out.
        var week = (await fx.DeliveriesAsync(hook.Id)).Where(d => d.CreatedAt >= now - TimeSpan.FromDays(5) && !d.IsTest).ToList();
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var page = await browser.GetPageAsync($"/settings/webhooks/{hook.Id}");
        var weekPanel = page[page.IndexOf("-week\"", StringComparison.Ordinal)..];
        Assert.Equal(week.Count(d => d.Status == DeliveryStatus.Delivered).ToString("#,0", System.Globalization.CultureInfo.InvariantCulture), Stat(weekPanel, "delivered"));
        Assert.Equal(week.Count(d => d.Status == DeliveryStatus.Undeliverable).ToString(System.Globalization.CultureInfo.InvariantCulture), Stat(weekPanel, "undeliverable"));

        // A deleted subscription's deliveries go by cascade, and their counts with them.
        await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == other.Id).ExecuteDeleteAsync());
        await AssertCountsMatchRowsAsync(gym.GymId, "after deleting a subscription");
        Assert.Equal(0, await fx.WithDbAsync(db => db.DeliveryCounts.Where(c => c.SubscriptionId == other.Id)
            .SumAsync(c => c.Delivered + c.Retrying + c.Undeliverable + c.Pending)));
    }

    /// <summary>
    /// One statement over thousands of one webhook's deliveries in one quarter hour (an outage's failures: a retry-all,
    /// retention's cleanup) keeps the roll-up exact. On PostgreSQL the counts are kept by statement triggers: row
    /// triggers updated one count row once per delivery in one transaction, in time growing with the square of the rows
    /// (20,000 rows took 9 s, and a bench's cleanup of a larger backlog ran past a 5-minute timeout).
    /// </summary>
    [Fact]
    public async Task A_statement_over_thousands_of_deliveries_of_one_webhook_keeps_the_roll_up_exact()
    {
        const int Count = 5_000;
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync("http://127.0.0.1:9/counts-bulk", "member.joined");
        var created = QuarterHour(fx.Clock.GetUtcNow().UtcDateTime) - TimeSpan.FromHours(1);
        await fx.WithDbAsync(db =>
        {
            db.ChangeTracker.AutoDetectChangesEnabled = false;
            for (var i = 0; i < Count; i++)
            {
                // Undeliverable, so the worker leaves them alone.
                db.WebhookDeliveries.Add(new WebhookDelivery
                {
                    Id = Guid.CreateVersion7(created), GymId = gym.GymId, SubscriptionId = hook.Id, Event = "member.joined", Payload = "{}",
                    Status = DeliveryStatus.Undeliverable, CreatedAt = created + TimeSpan.FromMilliseconds(i), AttemptCount = 4, LastAttemptAt = created,
                });
            }
            return db.SaveChangesAsync();
        });
        await AssertCountsMatchRowsAsync(gym.GymId, "after inserting them");

        var later = fx.Clock.GetUtcNow().UtcDateTime + TimeSpan.FromDays(1);
        Assert.Equal(Count, await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.SubscriptionId == hook.Id)
            .ExecuteUpdateAsync(u => u.SetProperty(d => d.Status, DeliveryStatus.Retrying).SetProperty(d => d.NextAttemptAt, later))));
        await AssertCountsMatchRowsAsync(gym.GymId, "after one update of all of them");
        Assert.Equal(Count, await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.SubscriptionId == hook.Id)
            .ExecuteUpdateAsync(u => u.SetProperty(d => d.NextAttemptAt, later.AddHours(1)))));
        await AssertCountsMatchRowsAsync(gym.GymId, "after an update that changes no status");

        Assert.Equal(Count, await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.SubscriptionId == hook.Id).ExecuteDeleteAsync()));
        await AssertCountsMatchRowsAsync(gym.GymId, "after one delete of all of them");
        Assert.False(await fx.WithDbAsync(db => db.DeliveryCounts.AnyAsync(c => c.SubscriptionId == hook.Id)));

        if (fx.Store == Store.Postgres)
        {
            // Bit 0 of tgtype is FOR EACH ROW.
            var rowTriggers = await fx.WithDbAsync(db => db.Database.SqlQueryRaw<string>(
                "SELECT tgname::text AS \"Value\" FROM pg_trigger WHERE tgrelid = 'webhook_deliveries'::regclass AND NOT tgisinternal AND tgtype & 1 = 1").ToListAsync());
            Assert.Empty(rowTriggers);
            // Linear whatever its cached plan: it joins nothing (joining the old rows to the new, a plan made for a
            // small statement made a large one quadratic).
            var updated = await fx.WithDbAsync(db => db.Database.SqlQueryRaw<string>(
                "SELECT prosrc AS \"Value\" FROM pg_proc WHERE proname = 'webhook_delivery_counts_updated'").SingleAsync());
            Assert.DoesNotContain("JOIN", updated, StringComparison.OrdinalIgnoreCase);
        }
    }

    private static string Stat(string html, string name) => StatPattern(name).Match(html) is { Success: true } m ? m.Groups[1].Value : "(none)";

    private static Regex StatPattern(string name) => new($"data-stat=\"{name}\">([^<]*)<", RegexOptions.CultureInvariant);
}
