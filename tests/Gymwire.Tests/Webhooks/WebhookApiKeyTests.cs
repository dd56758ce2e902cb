using System.Net;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// The Getting Started step creates a webhook with an API key: webhook management accepts an owner session or
/// a key with `write` (reading needs `read`); a read-only key cannot create, change or delete subscriptions.
/// </summary>
public abstract class WebhookApiKeyTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteWebhooks f) : WebhookApiKeyTests(f), IClassFixture<SqliteWebhooks>;
    public sealed class Postgres(PostgresWebhooks f) : WebhookApiKeyTests(f), IClassFixture<PostgresWebhooks>;

    private async Task<string> KeyAsync(TestGym gym, params string[] scopes) =>
        (await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes })).JsonAsync()).GetProperty("key").GetString()!;

    [Fact]
    public async Task A_write_key_creates_a_webhook_exactly_as_getting_started_shows()
    {
        var gym = await fx.CreateGymAsync();
        await using var receiver = await TestReceiver.StartAsync();
        using var key = fx.Client(await KeyAsync(gym, "read", "write"));
        var created = await (await key.PostRawAsync("/api/gym/webhooks",
            $$"""{"url":"{{receiver.Url("/webhooks/combatscore")}}","events":["member.joined","payment.received"]}""")).AssertStatusAsync(HttpStatusCode.Created);
        Assert.StartsWith("whsec_", created.GetProperty("secret").GetString(), StringComparison.Ordinal);
        var list = await (await key.GetAsync("/api/gym/webhooks")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(["member.joined", "payment.received"], Assert.Single(list.GetProperty("webhooks").EnumerateArray()).GetProperty("events").EnumerateArray().Select(e => e.GetString()));

        await (await gym.Owner().PostJsonAsync("/api/gym/members", new { name = "New", user_id = "user_new" })).AssertStatusAsync(HttpStatusCode.Created);
        var delivered = Assert.Single(await receiver.WaitForAsync("/webhooks/combatscore", 1));
        Assert.Equal("member.joined", delivered.Header("X-CombatScore-Event"));
    }

    [Fact]
    public async Task A_read_only_key_lists_but_cannot_manage_webhooks()
    {
        var gym = await fx.CreateGymAsync();
        using var key = fx.Client(await KeyAsync(gym, "read"));
        await (await key.GetAsync("/api/gym/webhooks")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Contains("'write'", await (await key.PostJsonAsync("/api/gym/webhooks", new { url = "https://example.com/hook" })).AssertErrorAsync(HttpStatusCode.Forbidden), StringComparison.Ordinal);
        Assert.Empty((await (await gym.Owner().GetAsync("/api/gym/webhooks")).JsonAsync()).GetProperty("webhooks").EnumerateArray());
    }
}
