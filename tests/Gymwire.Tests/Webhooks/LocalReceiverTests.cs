using System.Net;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// What a developer meets when pointing a webhook at a receiver on their own machine with the default settings: each
/// refusal names the setting that lets it through (docs/webhooks.md and the README show them).
/// </summary>
public abstract class LocalReceiverTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteEgress f) : LocalReceiverTests(f), IClassFixture<SqliteEgress>;
    public sealed class Postgres(PostgresEgress f) : LocalReceiverTests(f), IClassFixture<PostgresEgress>;

    [Theory]
    [InlineData("https://127.0.0.1:8000/hook")]
    [InlineData("https://localhost:8000/hook")]
    [InlineData("https://[::1]:8000/hook")]
    public async Task A_loopback_url_is_refused_with_a_message_naming_Webhooks_AllowedNetworks(string url)
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var message = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url })).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains("loopback", message, StringComparison.Ordinal);
        Assert.Contains("Webhooks:AllowedNetworks", message, StringComparison.Ordinal);
        Assert.Contains("127.0.0.0/8", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_plain_http_url_is_refused_with_a_message_naming_Webhooks_AllowHttp()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var message = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url = "http://127.0.0.1:8000/hook" })).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains("Webhooks:AllowHttp", message, StringComparison.Ordinal);
    }

    /// <summary>The owner cannot change the server's settings: the dashboard says what the server accepts instead.</summary>
    [Fact]
    public async Task On_the_dashboard_a_plain_http_url_is_refused_without_naming_a_server_setting()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new Gymwire.Tests.Dashboard.DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var page = await (await browser.SubmitAsync("/settings/webhooks/new", ("Input.Url", "http://hooks.example.com/plain"))).Content.ReadAsStringAsync();
        Assert.Contains("This server accepts only https:// endpoints.", page, StringComparison.Ordinal);
        Assert.DoesNotContain("AllowHttp", page, StringComparison.Ordinal);
    }
}

/// <summary><see cref="WebhookFixture"/> with an empty retry schedule: the contract's "not retried automatically" (docs/webhooks.md).</summary>
public abstract class NoRetryFixture(Store store) : WebhookFixture(store)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => [.. base.Settings(), new("Webhooks:RetrySchedule", "")];
}

public sealed class SqliteNoRetry() : NoRetryFixture(Store.Sqlite);

public sealed class PostgresNoRetry() : NoRetryFixture(Store.Postgres);

/// <summary>An empty <c>Webhooks:RetrySchedule</c> turns retries off; redelivery by the owner still works.</summary>
public abstract class NoRetryTests(NoRetryFixture fx)
{
    public sealed class Sqlite(SqliteNoRetry f) : NoRetryTests(f), IClassFixture<SqliteNoRetry>;
    public sealed class Postgres(PostgresNoRetry f) : NoRetryTests(f), IClassFixture<PostgresNoRetry>;

    [Fact]
    public async Task A_failed_delivery_is_undeliverable_at_once_and_never_retried()
    {
        Assert.Empty(fx.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<WebhookOptions>>().Value.EffectiveRetrySchedule);
        await using var receiver = await TestReceiver.StartAsync();
        receiver.On("/down", new Reply(500, "down"));
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/down"), "member.joined");
        await gym.AddMemberAsync("user_noretry");

        await receiver.WaitForAsync("/down", 1);
        var delivery = await fx.WaitForDeliveryAsync(hook.Id, d => d.AttemptCount == 1, "the attempt recorded");
        Assert.Equal(DeliveryStatus.Undeliverable, delivery.Status);
        Assert.Null(delivery.NextAttemptAt);

        // Hours later nothing has been sent again: a later event's delivery goes out, the failed one stays put.
        fx.AdvanceAndWake(TimeSpan.FromHours(3));
        await gym.CreateWebhookAsync(receiver.Url("/up"), "member.joined");
        await gym.AddMemberAsync("user_noretry_later");
        await receiver.WaitForAsync("/up", 1);
        // The later event's two deliveries go in parallel: wait for the failing endpoint's too.
        await receiver.WaitForAsync("/down", 2);
        await fx.WaitForDeliveryAsync(hook.Id, d => d.Id != delivery.Id && d.AttemptCount == 1, "the later event's attempt recorded");
        Assert.Equal(2, receiver.At("/down").Count); // the first event's attempt and the later event's, none again
        Assert.Equal(1, (await fx.DeliveriesAsync(hook.Id)).Single(d => d.Id == delivery.Id).AttemptCount);

        // The owner can still send it again by hand.
        receiver.On("/down", new Reply(200));
        using var owner = gym.Owner();
        await (await owner.PostAsync($"/api/gym/webhooks/{hook.Id}/deliveries/{delivery.Id}/redeliver", null)).AssertStatusAsync(HttpStatusCode.Accepted);
        await fx.WaitForDeliveryAsync(hook.Id, d => d.Status == DeliveryStatus.Delivered, "redelivered");
    }
}
