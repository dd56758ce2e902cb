using System.Net;
using System.Text.RegularExpressions;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Gymwire.Tests.Dashboard;

/// <summary>Activity keeps events for good but deliveries only <c>Webhooks:DeliveryRetention</c>: it says which is which.</summary>
public abstract partial class ActivityRetentionTests(WebhookFixture fx)
{
    public sealed class Sqlite(SqliteWebhooks f) : ActivityRetentionTests(f), IClassFixture<SqliteWebhooks>;
    public sealed class Postgres(PostgresWebhooks f) : ActivityRetentionTests(f), IClassFixture<PostgresWebhooks>;

    [Fact]
    public async Task An_event_whose_deliveries_retention_deleted_says_they_are_not_kept_and_one_without_deliveries_says_none()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Early Member", user_id = "user_early" })).AssertStatusAsync(HttpStatusCode.Created);
        // Dispatched before the webhook exists, so it has no deliveries.
        await Eventually.TrueAsync(() => fx.WithDbAsync(db => db.OutboxEvents.AnyAsync(e => e.GymId == gym.GymId && e.DispatchedAt != null)),
            what: "the first event dispatched");
        var hook = await gym.CreateWebhookAsync(receiver.Url("/activity-retention"), "member.joined");
        await (await owner.PostJsonAsync("/api/gym/members", new { name = "Aged Member", user_id = "user_aged" })).AssertStatusAsync(HttpStatusCode.Created);
        var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "delivered");

        // The event and its delivery as they are once a retention period has passed: the purge deletes the delivery.
        var retention = fx.Services.GetRequiredService<IOptions<WebhookOptions>>().Value.DeliveryRetention;
        var old = fx.Clock.GetUtcNow().UtcDateTime - retention - TimeSpan.FromHours(1);
        await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.Id == delivery.Id).ExecuteUpdateAsync(u => u.SetProperty(d => d.CreatedAt, old)));
        await fx.WithDbAsync(db => db.OutboxEvents.Where(e => e.Id == delivery.EventId)
            .ExecuteUpdateAsync(u => u.SetProperty(e => e.OccurredAt, old).SetProperty(e => e.DispatchedAt, old)));
        await fx.Services.GetServices<IHostedService>().OfType<WebhookRetention>().Single().PurgeAsync(CancellationToken.None);
        Assert.False(await fx.WithDbAsync(db => db.WebhookDeliveries.AnyAsync(d => d.Id == delivery.Id)));

        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var html = await browser.GetPageAsync("/activity");
        var aged = Row(html, "Aged Member");
        Assert.True(aged.Contains(">Not kept after 30 days<", StringComparison.Ordinal), aged);
        var early = Row(html, "Early Member");
        Assert.True(early.Contains(">None<", StringComparison.Ordinal), early);
    }

    private static string Row(string html, string name)
    {
        var at = html.IndexOf(name, StringComparison.Ordinal);
        Assert.True(at >= 0, $"no row for {name}");
        return Whitespace().Replace(html[at..html.IndexOf("</tr>", at, StringComparison.Ordinal)], " ");
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
