using System.Net;
using System.Text;
using Gymwire.Client;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;

namespace Gymwire.Tests.Client;

/// <summary>The client manages webhooks, and its verifier accepts Gymwire's real deliveries and rejects tampered ones.</summary>
public abstract class ClientWebhookTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteWebhooks f) : ClientWebhookTests(f), IClassFixture<SqliteWebhooks>;
    public sealed class Postgres(PostgresWebhooks f) : ClientWebhookTests(f), IClassFixture<PostgresWebhooks>;

    [Fact]
    public async Task Verifier_accepts_real_deliveries_and_rejects_tampered_ones()
    {
        var gym = await fx.CreateGymAsync();
        await using var receiver = await TestReceiver.StartAsync();
        var client = new GymwireClient(fx.Client(), gym.OwnerToken);
        var hook = await client.CreateWebhookAsync(new CreateWebhook(receiver.Url("/hook"), ["lead.created"]));
        Assert.StartsWith("whsec_", hook.Secret, StringComparison.Ordinal);
        Assert.Equal(hook.Id, Assert.Single(await client.ListWebhooksAsync()).Id);

        await client.CreateLeadAsync(new CreateLead("Verified"));
        var delivery = Assert.Single(await receiver.WaitForAsync("/hook", 1));
        var headers = delivery.Headers.Select(h => new KeyValuePair<string, string>(h.Key, h.Value)).ToList();
        // Deliveries are stamped with the server's (fake) clock; the verifier's tolerance is judged against it.
        var verifier = new WebhookVerifier(hook.Secret, clock: fx.Clock);
        Assert.True(verifier.Verify(headers, delivery.Body));
        Assert.True(verifier.VerifyCombatScore(delivery.Header("X-CombatScore-Signature"), delivery.Body));
        Assert.True(verifier.VerifyStandard(delivery.Header("webhook-id"), delivery.Header("webhook-timestamp"), delivery.Header("webhook-signature"), delivery.Body));

        var tampered = Encoding.UTF8.GetBytes(delivery.BodyText.Replace("Verified", "Tampered", StringComparison.Ordinal));
        Assert.False(verifier.Verify(headers, tampered));
        Assert.False(verifier.VerifyCombatScore(delivery.Header("X-CombatScore-Signature"), tampered));
        Assert.False(new WebhookVerifier("whsec_" + Convert.ToBase64String(new byte[32]), clock: fx.Clock).Verify(headers, delivery.Body));

        var updated = await client.UpdateWebhookAsync(hook.Id, new UpdateWebhook(IsActive: false));
        Assert.False(updated.IsActive);
        await client.DeleteWebhookAsync(hook.Id);
        var missing = await Assert.ThrowsAsync<GymwireApiException>(() => client.UpdateWebhookAsync(Guid.NewGuid().ToString(), new UpdateWebhook(IsActive: true)));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Reads_whether_the_owner_switched_a_webhook_off()
    {
        var gym = await fx.CreateGymAsync();
        var owner = new GymwireClient(fx.Client(), gym.OwnerToken);
        var key = new GymwireClient(fx.Client(), (await owner.CreateApiKeyAsync(new CreateApiKey("hooks", ["read", "write"]))).Key);
        var hook = await key.CreateWebhookAsync(new CreateWebhook("https://receiver.example.com/hook"));
        Assert.False(hook.SwitchedOffByOwner);

        // The key's own switch-off is not the owner's: the key may switch the webhook on again.
        Assert.False((await key.UpdateWebhookAsync(hook.Id, new UpdateWebhook(IsActive: false))).SwitchedOffByOwner);
        Assert.True((await key.UpdateWebhookAsync(hook.Id, new UpdateWebhook(IsActive: true))).IsActive);

        var off = await owner.UpdateWebhookAsync(hook.Id, new UpdateWebhook(IsActive: false));
        Assert.True(off.SwitchedOffByOwner);
        Assert.True(Assert.Single(await key.ListWebhooksAsync()).SwitchedOffByOwner);
        var refused = await Assert.ThrowsAsync<GymwireApiException>(() => key.UpdateWebhookAsync(hook.Id, new UpdateWebhook(IsActive: true)));
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);

        var on = await owner.UpdateWebhookAsync(hook.Id, new UpdateWebhook(IsActive: true));
        Assert.True(on.IsActive);
        Assert.False(on.SwitchedOffByOwner);
    }

    [Fact]
    public async Task Reads_gymwires_own_webhook_fields()
    {
        var gym = await fx.CreateGymAsync();
        var owner = new GymwireClient(fx.Client(), gym.OwnerToken);
        var apiKey = await owner.CreateApiKeyAsync(new CreateApiKey("hooks", ["read", "write"]));
        var key = new GymwireClient(fx.Client(), apiKey.Key);

        // Made by the key: api_key_id names it; on, so nothing says when or why it went off.
        var keyHook = await key.CreateWebhookAsync(new CreateWebhook("https://receiver.example.com/by-key"));
        Assert.Equal(apiKey.Id, keyHook.ApiKeyId);
        Assert.Null(keyHook.DisabledReason);
        Assert.Null(keyHook.DisabledAt);
        Assert.Null(keyHook.Description);

        // Made by the owner, with a description.
        var created = await owner.CreateWebhookAsync(new CreateWebhook("https://receiver.example.com/by-owner") { Description = "Mailchimp sync" });
        Assert.Equal("Mailchimp sync", created.Description);
        var ownerHookId = created.Id;
        var ownerHook = Assert.Single(await owner.ListWebhooksAsync(), h => h.Id == ownerHookId);
        Assert.Null(ownerHook.ApiKeyId);
        Assert.Equal("Mailchimp sync", ownerHook.Description);

        // An update without a description leaves it; one with a description changes it; an empty one removes it.
        Assert.Equal("Mailchimp sync", (await owner.UpdateWebhookAsync(ownerHookId, new UpdateWebhook(Events: ["member.created"]))).Description);
        Assert.Equal("Mailchimp", (await owner.UpdateWebhookAsync(ownerHookId, new UpdateWebhook { Description = "Mailchimp" })).Description);
        Assert.Null((await owner.UpdateWebhookAsync(ownerHookId, new UpdateWebhook { Description = "" })).Description);
        Assert.Equal("Mailchimp sync", (await owner.UpdateWebhookAsync(ownerHookId, new UpdateWebhook { Description = "Mailchimp sync" })).Description);

        // Switched off by the owner: when, but no reason of Gymwire's.
        var off = await owner.UpdateWebhookAsync(ownerHookId, new UpdateWebhook(IsActive: false));
        Assert.Equal(fx.Clock.GetUtcNow().UtcDateTime, off.DisabledAt!.Value.UtcDateTime, TimeSpan.FromMilliseconds(1));
        Assert.Null(off.DisabledReason);
        Assert.Equal("Mailchimp sync", off.Description);

        // Switched off by Gymwire when its key is revoked: the reason says so.
        await owner.RevokeApiKeyAsync(apiKey.Id);
        var revoked = Assert.Single(await owner.ListWebhooksAsync(), h => h.Id == keyHook.Id);
        Assert.False(revoked.IsActive);
        Assert.Contains("'hooks'", revoked.DisabledReason, StringComparison.Ordinal);
        Assert.Contains("revoked", revoked.DisabledReason, StringComparison.Ordinal);
        Assert.Equal(fx.Clock.GetUtcNow().UtcDateTime, revoked.DisabledAt!.Value.UtcDateTime, TimeSpan.FromMilliseconds(1));
        Assert.Equal(apiKey.Id, revoked.ApiKeyId);
    }
}
