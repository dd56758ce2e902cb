using System.Diagnostics.Metrics;
using System.Net;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace Gymwire.Tests.Telemetry;

/// <summary>
/// <c>gymwire.webhook.deliveries.undeliverable</c> counts every delivery that ends without success, wherever it ends, on
/// both stores (a schedule that runs out: <see cref="DeliveryInstrumentationTests"/>). Each test ends every delivery it
/// makes, so the next one's count starts clean.
/// </summary>
public abstract class UndeliverableCountTests(DeliveryTelemetryFixture fx)
{
    public sealed class Sqlite(SqliteDeliveryTelemetry f) : UndeliverableCountTests(f), IClassFixture<SqliteDeliveryTelemetry>;
    public sealed class Postgres(PostgresDeliveryTelemetry f) : UndeliverableCountTests(f), IClassFixture<PostgresDeliveryTelemetry>;

    private MetricCollector<long> Undeliverable() =>
        new(fx.Services.GetRequiredService<IMeterFactory>(), DeliveryMetrics.MeterName, "gymwire.webhook.deliveries.undeliverable");

    private static long Sum(MetricCollector<long> collector) => collector.GetMeasurementSnapshot().Sum(m => m.Value);

    private static async Task CountReachesAsync(MetricCollector<long> collector, long expected)
    {
        await Eventually.TrueAsync(() => Task.FromResult(Sum(collector) >= expected), what: $"{expected} undeliverable counted");
        Assert.Equal(expected, Sum(collector));
    }

    /// <summary>Queues retries of the subscription due in an hour (no worker touches them before then), and delivered ones.</summary>
    private Task<List<Guid>> QueueAsync(TestGym gym, Guid subscriptionId, int retrying, int delivered = 0) => fx.WithDbAsync(async db =>
    {
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var rows = Enumerable.Range(0, retrying + delivered).Select(i => new WebhookDelivery
        {
            Id = Guid.CreateVersion7(), GymId = gym.GymId, SubscriptionId = subscriptionId, Event = "member.joined",
            Payload = WebhookPayloads.Build(Guid.NewGuid(), "member.joined", gym.GymId, "{}", now),
            Status = i < retrying ? DeliveryStatus.Retrying : DeliveryStatus.Delivered, AttemptCount = 1, CreatedAt = now,
            NextAttemptAt = i < retrying ? now.AddHours(1) : null, LastStatusCode = i < retrying ? 503 : 200,
        }).ToList();
        db.WebhookDeliveries.AddRange(rows);
        await db.SaveChangesAsync();
        return rows.Select(r => r.Id).ToList();
    });

    private async Task<Dictionary<string, int>> StatusesAsync(Guid subscriptionId) =>
        (await fx.DeliveriesAsync(subscriptionId)).GroupBy(d => d.Status).ToDictionary(g => g.Key, g => g.Count());

    [Fact]
    public async Task A_410_counts_its_delivery_and_the_queued_ones_its_deactivation_ends()
    {
        using var undeliverable = Undeliverable();
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/gone", new Reply(410, "gone"));
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/gone"), "member.joined");
        await QueueAsync(gym, hook.Id, retrying: 3, delivered: 1);

        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_gone"));
        await fx.WaitForDeliveryAsync(hook.Id, d => d.LastStatusCode == 410, "the 410 recorded");

        await CountReachesAsync(undeliverable, 4);
        Assert.Equal(new Dictionary<string, int> { [DeliveryStatus.Undeliverable] = 4, [DeliveryStatus.Delivered] = 1 }, await StatusesAsync(hook.Id));
        Assert.Single(receiver.At("/gone"));
    }

    [Fact]
    public async Task Revoking_a_key_counts_the_queued_deliveries_of_the_webhooks_it_created()
    {
        using var undeliverable = Undeliverable();
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var key = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "zapier", scopes = new[] { "read", "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        Guid hookId;
        using (var zapier = fx.Client(key.GetProperty("key").GetString()))
        {
            hookId = (await (await zapier.PostJsonAsync("/api/gym/webhooks", new { url = receiver.Url("/zapier"), events = new[] { "member.joined" } }))
                .AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid();
        }
        await QueueAsync(gym, hookId, retrying: 2, delivered: 1);

        await (await owner.DeleteAsync($"/api/gym/api-keys/{key.GetProperty("id").GetGuid()}")).AssertStatusAsync(HttpStatusCode.OK);

        Assert.Equal(2, Sum(undeliverable));
        Assert.Equal(new Dictionary<string, int> { [DeliveryStatus.Undeliverable] = 2, [DeliveryStatus.Delivered] = 1 }, await StatusesAsync(hookId));
        Assert.Empty(receiver.Requests);
    }

    [Fact]
    public async Task Deleting_a_webhook_counts_its_queued_deliveries_and_pausing_it_counts_none()
    {
        using var undeliverable = Undeliverable();
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/deleted"), "member.joined");
        await QueueAsync(gym, hook.Id, retrying: 2, delivered: 1);

        // The owner's disable pauses the queued deliveries: none has ended.
        using (var owner = gym.Owner())
        {
            await (await owner.DeleteAsync($"/api/gym/webhooks/{hook.Id}")).AssertStatusAsync(HttpStatusCode.OK);
        }
        Assert.Equal(0, Sum(undeliverable));

        // Deleting it (the dashboard's delete) ends them unsent, paused as they are.
        await using (var scope = fx.Services.CreateAsyncScope())
        {
            var deleted = await scope.ServiceProvider.GetRequiredService<WebhookService>().DeleteAsync(WebhookAccess.Owner(gym.GymId), hook.Id, CancellationToken.None);
            Assert.NotNull(deleted.Value);
        }
        Assert.Equal(2, Sum(undeliverable));
        Assert.Empty(await fx.DeliveriesAsync(hook.Id));
        Assert.Empty(receiver.Requests);
    }

    [Fact]
    public async Task A_failed_test_send_and_a_delivery_claimed_after_Gymwire_deactivated_its_webhook_are_counted()
    {
        using var undeliverable = Undeliverable();
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/down", new Reply(500, "down"));
        var gym = await fx.CreateGymAsync();
        var down = await gym.CreateWebhookAsync(receiver.Url("/down"), "member.joined");
        var disabled = await gym.CreateWebhookAsync(receiver.Url("/disabled"), "member.joined");
        using var owner = gym.Owner();

        var test = await (await owner.PostJsonAsync($"/api/gym/webhooks/{down.Id}/test", new { })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(DeliveryStatus.Undeliverable, test.GetProperty("status").GetString());
        await CountReachesAsync(undeliverable, 1);

        // A retry still queued when another node deactivated the webhook (a 410, failing too long) ends without an
        // attempt when it is claimed. An owner's disable pauses it instead (DeliveryPipelineTests), which counts nothing.
        var id = Assert.Single(await QueueAsync(gym, disabled.Id, retrying: 1));
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == disabled.Id)
            .ExecuteUpdateAsync(u => u.SetProperty(s => s.IsActive, false).SetProperty(s => s.DisabledReason, "The endpoint answered 410 Gone").SetProperty(s => s.DisabledAt, now)));
        await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.Id == id).ExecuteUpdateAsync(u => u.SetProperty(d => d.NextAttemptAt, now)));
        fx.WakeWorker();
        var ended = await fx.WaitForDeliveryAsync(disabled.Id, d => d.Status == DeliveryStatus.Undeliverable, "ended as inactive");

        Assert.Equal(DeliveryRows.InactiveError, ended.LastError);
        await CountReachesAsync(undeliverable, 2);
        Assert.Empty(receiver.At("/disabled"));
    }
}
