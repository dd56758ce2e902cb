using System.Net;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// The Getting Started step creates a webhook with an API key: webhook management accepts an owner session or
/// a key with both `read` and `write`; a read-only key cannot create, change or delete subscriptions, and a write-only
/// key cannot create or change one (a webhook would give it the events it may not read), only disable its own.
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

    [Fact]
    public async Task A_write_only_key_cannot_create_or_manage_a_webhook_but_can_disable_its_own()
    {
        var gym = await fx.CreateGymAsync();
        var created = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { scopes = new[] { "write" } })).AssertStatusAsync(HttpStatusCode.Created);
        using var key = fx.Client(created.GetProperty("key").GetString()!);
        var message = await (await key.PostJsonAsync("/api/gym/webhooks", new { url = "https://example.com/hook", events = Array.Empty<string>() })).AssertErrorAsync(HttpStatusCode.Forbidden);
        Assert.Contains("'read'", message, StringComparison.Ordinal);
        Assert.Equal(0, await fx.WithDbAsync(db => db.WebhookSubscriptions.CountAsync(s => s.GymId == gym.GymId)));

        // One it created while management needed only `write`.
        var hook = await gym.CreateWebhookAsync("https://example.com/earlier");
        var keyId = created.GetProperty("id").GetGuid();
        await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hook.Id).ExecuteUpdateAsync(u => u.SetProperty(s => s.ApiKeyId, keyId)));
        await (await key.PatchJsonAsync($"/api/gym/webhooks/{hook.Id}", new { events = new[] { "member.joined" } })).AssertErrorAsync(HttpStatusCode.Forbidden);
        await (await key.PostAsync($"/api/gym/webhooks/{hook.Id}/rotate-secret", null)).AssertErrorAsync(HttpStatusCode.Forbidden);
        await (await key.PostJsonAsync($"/api/gym/webhooks/{hook.Id}/test", new { })).AssertErrorAsync(HttpStatusCode.Forbidden);
        Assert.Empty(await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hook.Id).Select(s => s.Events).SingleAsync()));
        await (await key.DeleteAsync($"/api/gym/webhooks/{hook.Id}")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.False(await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hook.Id).Select(s => s.IsActive).SingleAsync()));
    }
}
