using Gymwire.Features.Events;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Reliability;

/// <summary>
/// R3: endpoints that never answer, trickle a byte a second, return 1 GiB, redirect to the metadata address,
/// or answer 410 share the workers with a healthy endpoint. Each is cut off or handled as the Webhooks issue
/// says, and the healthy endpoint still gets every event while they misbehave (bounded per-endpoint concurrency).
/// </summary>
public abstract class HostileReceiverTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteWebhooks f) : HostileReceiverTests(f), IClassFixture<SqliteWebhooks>;
    public sealed class Postgres(PostgresWebhooks f) : HostileReceiverTests(f), IClassFixture<PostgresWebhooks>;

    [Fact]
    public async Task Hostile_endpoints_are_cut_off_and_do_not_starve_a_healthy_one()
    {
        const int events = 120;
        var gym = await fx.CreateGymAsync();
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/hang", new Reply { Hang = true });
        receiver.On("/trickle", new Reply { Trickle = true });
        receiver.On("/huge", new Reply { StreamBytes = 1L << 30 });
        receiver.On("/redirect", new Reply(302) { Location = "http://169.254.169.254/latest/meta-data/" });
        receiver.On("/gone", new Reply(410));
        var hooks = new Dictionary<string, CreatedHook>();
        foreach (var path in new[] { "/hang", "/trickle", "/huge", "/redirect", "/gone", "/healthy" })
        {
            hooks[path] = await gym.CreateWebhookAsync(receiver.Url(path));
        }

        await fx.WithDbAsync(async db =>
        {
            var now = fx.Clock.GetUtcNow().UtcDateTime;
            for (var i = 0; i < events; i++)
            {
                db.AddEvent(gym.GymId, EventCatalog.LeadCreated, new { lead_id = Guid.NewGuid(), first_name = $"L{i}", last_name = (string?)null, source = "r3" }, now);
            }
            return await db.SaveChangesAsync();
        });

        // The healthy endpoint gets everything while the others hold their (capped) slots.
        await receiver.WaitForAsync("/healthy", events, TimeSpan.FromSeconds(90));

        // 410: the subscription is deactivated after its first answer, so it saw one request only... or a few in flight.
        await Eventually.TrueAsync(async () => !await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hooks["/gone"].Id).Select(s => s.IsActive).FirstAsync()),
            TimeSpan.FromSeconds(30), "410 deactivates the subscription");
        Assert.True(receiver.At("/gone").Count <= 8, $"{receiver.At("/gone").Count} requests to a 410 endpoint");

        // 302 to an internal address: a failed attempt, and the target is never contacted (it is not followed).
        var redirected = await fx.WithDbAsync(db => db.WebhookAttempts.Where(a => a.GymId == gym.GymId && a.StatusCode == 302).CountAsync());
        Assert.True(redirected > 0);
        Assert.Equal(0, await fx.WithDbAsync(db => db.WebhookDeliveries.CountAsync(d => d.SubscriptionId == hooks["/redirect"].Id && d.Status == "delivered")));

        // 1 GiB: what Gymwire read and stored stops at 64 KiB; the receiver was cut off long before 1 GiB.
        await Eventually.TrueAsync(async () => await fx.WithDbAsync(db => db.WebhookAttempts.AnyAsync(a => a.GymId == gym.GymId && a.ResponseBodyTruncated)),
            TimeSpan.FromSeconds(60), "a truncated attempt for the 1 GiB endpoint");
        var longest = await fx.WithDbAsync(db => db.WebhookAttempts.Where(a => a.GymId == gym.GymId && a.ResponseBody != null).MaxAsync(a => a.ResponseBody!.Length));
        Assert.True(longest <= 64 * 1024, $"stored a {longest}-character body excerpt");
        Assert.True(receiver.BytesStreamed < 1L << 30, "the 1 GiB body was read to the end");

        // Never-answering and trickling endpoints fail by the 2 s timeout instead of holding a slot forever.
        foreach (var path in new[] { "/hang", "/trickle" })
        {
            var subscription = hooks[path].Id;
            await Eventually.TrueAsync(async () => await fx.WithDbAsync(db => db.WebhookAttempts.AnyAsync(a => a.GymId == gym.GymId && a.Error != null && a.DurationMs < 10_000 &&
                    db.WebhookDeliveries.Any(d => d.Id == a.DeliveryId && d.SubscriptionId == subscription))),
                TimeSpan.FromSeconds(60), $"a timed-out attempt for {path}");
        }
    }
}
