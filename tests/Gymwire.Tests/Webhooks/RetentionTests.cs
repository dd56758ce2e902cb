using Gymwire.Data;
using Gymwire.Features.Gyms;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// The retention clean-up (<see cref="WebhookRetention"/>): what it keeps that a concurrent or earlier write made
/// live again, the ended owner sessions it deletes, and when it first runs.
/// </summary>
public abstract class RetentionTests(WebhookFixture fx)
{
    public sealed class Sqlite(SqliteWebhooks f) : RetentionTests(f), IClassFixture<SqliteWebhooks>;
    public sealed class Postgres(PostgresWebhooks f) : RetentionTests(f), IClassFixture<PostgresWebhooks>;

    private WebhookRetention Retention => fx.Services.GetServices<IHostedService>().OfType<WebhookRetention>().Single();
    private TimeSpan Kept => fx.Services.GetRequiredService<IOptions<WebhookOptions>>().Value.DeliveryRetention;

    private async Task<Guid> AddDeliveryAsync(TestGym gym, Guid hookId, DateTime created, string status, bool test = false, DateTime? due = null)
    {
        var id = Guid.CreateVersion7(created);
        await fx.WithDbAsync(async db =>
        {
            db.WebhookDeliveries.Add(new WebhookDelivery
            {
                Id = id, GymId = gym.GymId, SubscriptionId = hookId, Event = "member.joined", Payload = "{}", IsTest = test,
                Status = status, CreatedAt = created, AttemptCount = 1, LastAttemptAt = created, NextAttemptAt = due,
            });
            return await db.SaveChangesAsync();
        });
        return id;
    }

    private Task<List<string>> StatusOfAsync(Guid id) =>
        fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.Id == id).Select(d => d.Status).ToListAsync());

    [Fact]
    public async Task A_delivery_redelivered_while_the_purge_waits_for_its_row_is_kept_pending()
    {
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync("http://127.0.0.1:9/redelivered-during-purge", "member.joined");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var id = await AddDeliveryAsync(gym, hook.Id, now - Kept - TimeSpan.FromMinutes(5), DeliveryStatus.Delivered);

        await using var scope = fx.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        await using var tx = await db.Database.BeginTransactionAsync();
        // The redelivery's UPDATE (DeliveryQueue.RedeliverAsync), committed while the purge's DELETE waits for the row.
        await db.WebhookDeliveries.Where(d => d.Id == id).ExecuteUpdateAsync(u => u
            .SetProperty(d => d.Status, DeliveryStatus.Pending).SetProperty(d => d.AttemptCount, 0).SetProperty(d => d.NextAttemptAt, now + TimeSpan.FromDays(1)));
        var purge = Task.Run(() => Retention.PurgeAsync(CancellationToken.None));
        if (fx.Store == Store.Postgres)
        {
            await fx.WaitForLockWaitAsync("DELETE FROM webhook_deliveries", purge);
        }
        else
        {
            // SQLite has no view of a waiting writer: the pause lets the purge read before the commit, so a purge that
            // chose its ids in one statement and deleted them in another would delete the redelivered row here too.
            await Task.Delay(200);
            Assert.False(purge.IsCompleted, "the open write transaction holds the purge's DELETE back");
        }
        await tx.CommitAsync();
        await purge;

        Assert.Equal([DeliveryStatus.Pending], await StatusOfAsync(id));
    }

    [Fact]
    public async Task A_redelivered_test_send_still_queued_is_kept_past_retention_and_a_never_due_one_is_deleted()
    {
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync("http://127.0.0.1:9/queued-test-send", "member.joined");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var old = now - Kept - TimeSpan.FromMinutes(5);
        // Redelivered: pending and due later (its endpoint paused), so the worker will send it.
        var queued = await AddDeliveryAsync(gym, hook.Id, old, DeliveryStatus.Pending, test: true, due: now + TimeSpan.FromDays(1));
        // Left pending by a server stopped mid-send: never due, so nothing would ever finish it.
        var stranded = await AddDeliveryAsync(gym, hook.Id, old, DeliveryStatus.Pending, test: true);
        var finished = await AddDeliveryAsync(gym, hook.Id, old, DeliveryStatus.Undeliverable, test: true);

        await Retention.PurgeAsync(CancellationToken.None);

        Assert.Equal([DeliveryStatus.Pending], await StatusOfAsync(queued));
        Assert.Empty(await StatusOfAsync(stranded));
        Assert.Empty(await StatusOfAsync(finished));
    }

    [Fact]
    public async Task Owner_sessions_expired_or_revoked_more_than_a_day_ago_are_deleted_and_others_kept()
    {
        var gym = await fx.CreateGymAsync();
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var ids = new Dictionary<string, Guid>();
        await fx.WithDbAsync(async db =>
        {
            var owner = await db.Users.SingleAsync(u => u.GymId == gym.GymId);
            void Add(string name, DateTime created, TimeSpan lifetime, DateTime? revoked = null)
            {
                var session = OwnerSessions.Add(db, owner, Guid.NewGuid().ToString("N"), created, lifetime);
                session.RevokedAt = revoked;
                ids[name] = session.Id;
            }
            Add("expired two days ago", now - TimeSpan.FromDays(9), TimeSpan.FromDays(7));
            Add("expired twelve hours ago", now - TimeSpan.FromDays(7.5), TimeSpan.FromDays(7));
            Add("revoked two days ago", now - TimeSpan.FromDays(3), TimeSpan.FromDays(7), revoked: now - TimeSpan.FromDays(2));
            Add("revoked twelve hours ago", now - TimeSpan.FromDays(3), TimeSpan.FromDays(7), revoked: now - TimeSpan.FromHours(12));
            Add("live", now - TimeSpan.FromDays(3), TimeSpan.FromDays(7));
            return await db.SaveChangesAsync();
        });

        Assert.True(await Retention.PurgeOwnerSessionsAsync(CancellationToken.None) >= 2);

        var left = await fx.WithDbAsync(db => db.OwnerSessions.Where(s => ids.Values.Contains(s.Id)).Select(s => s.Id).ToListAsync());
        Assert.Equal(["expired twelve hours ago", "live", "revoked twelve hours ago"], ids.Where(i => left.Contains(i.Value)).Select(i => i.Key).Order());
        // The login the fixture made for the gym still works.
        using var client = gym.Owner();
        await (await client.GetAsync("/api/me")).AssertStatusAsync(System.Net.HttpStatusCode.OK);
    }

    [Fact]
    public async Task The_first_purge_runs_a_minute_after_start()
    {
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync("http://127.0.0.1:9/first-purge", "member.joined");
        // A node of its own: its clock starts now and moves only here.
        var clock = new FakeTimeProvider(fx.Clock.GetUtcNow());
        var now = clock.GetUtcNow().UtcDateTime;
        var old = await AddDeliveryAsync(gym, hook.Id, now - Kept - TimeSpan.FromMinutes(1), DeliveryStatus.Delivered);
        var retention = new WebhookRetention(fx.Services.GetRequiredService<IServiceScopeFactory>(),
            fx.Services.GetRequiredService<IOptions<WebhookOptions>>(), clock, NullLogger<WebhookRetention>.Instance);
        await retention.StartAsync(CancellationToken.None);
        try
        {
            // ExecuteAsync starts on the thread pool, so its first delay may begin a moment after StartAsync returns: the
            // clock moves a second at a time to two minutes, far short of the hour between later runs, then stays.
            for (var second = 0; second < 120; second++)
            {
                clock.Advance(TimeSpan.FromSeconds(1));
                await Task.Delay(10);
            }
            await Eventually.TrueAsync(async () => (await StatusOfAsync(old)).Count == 0, what: "a purge within two minutes of the start");
        }
        finally
        {
            await retention.StopAsync(CancellationToken.None);
        }
    }
}

public sealed class DeliveryRetentionSettingTests
{
    [Fact]
    public void A_delivery_retention_shorter_than_the_dashboards_30_days_is_refused_naming_the_setting()
    {
        var validator = new WebhookOptionsValidator();
        var result = validator.Validate(null, new WebhookOptions { DeliveryRetention = TimeSpan.FromDays(29) });
        Assert.True(result.Failed);
        Assert.Contains("Webhooks:DeliveryRetention must be between 30.00:00:00 and 3650.00:00:00", result.FailureMessage, StringComparison.Ordinal);
        Assert.True(validator.Validate(null, new WebhookOptions { DeliveryRetention = TimeSpan.FromDays(30) }).Succeeded);
    }
}
