using System.Net;
using System.Text.Json;
using Gymwire.Features.Webhooks;
using Gymwire.Tests.Dashboard;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// Issue #25: a subscription created with an API key belongs to that key. The key sees and manages only its own
/// (the owner's and other keys' are 404 for it, URLs, payloads and receivers' responses included), the owner sees and
/// manages all, and revoking a key, or its expiry, deactivates the subscriptions it created with a reason the owner sees.
/// </summary>
public abstract class WebhookOwnershipTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteWebhooks f) : WebhookOwnershipTests(f), IClassFixture<SqliteWebhooks>;
    public sealed class Postgres(PostgresWebhooks f) : WebhookOwnershipTests(f), IClassFixture<PostgresWebhooks>;

    private static async Task<(Guid Id, string Key)> KeyAsync(TestGym gym, string name, params string[] scopes)
    {
        var created = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name, scopes })).AssertStatusAsync(HttpStatusCode.Created);
        return (created.GetProperty("id").GetGuid(), created.GetProperty("key").GetString()!);
    }

    private static async Task<Guid> CreateWithAsync(HttpClient client, string url, params string[] events) =>
        (await (await client.PostJsonAsync("/api/gym/webhooks", new { url, events })).AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid();

    /// <summary>Every webhook of the gym, as its owner lists them, by id.</summary>
    private static async Task<Dictionary<Guid, JsonElement>> HooksAsync(HttpClient owner) =>
        (await (await owner.GetAsync("/api/gym/webhooks")).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("webhooks").EnumerateArray()
            .ToDictionary(w => w.GetProperty("id").GetGuid());

    private static async Task<List<Guid>> ListAsync(HttpClient client) =>
        (await (await client.GetAsync("/api/gym/webhooks")).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("webhooks").EnumerateArray().Select(w => w.GetProperty("id").GetGuid()).ToList();

    /// <summary>The owner's webhook with one delivered event, so it has a payload and a receiver's response to protect.</summary>
    private async Task<(Guid Hook, Guid Delivery, string Url)> OwnersDeliveredHookAsync(TestGym gym, TestReceiver receiver)
    {
        var url = receiver.Url("/owner-secret-hook");
        receiver.On("/owner-secret-hook", new Reply(200, "receiver-private-answer"));
        var hook = await CreateWithAsync(gym.Owner(), url, "member.joined");
        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_private"));
        var delivery = await fx.WaitForDeliveryAsync(hook, d => d.Status == DeliveryStatus.Delivered, "the owner's delivery");
        return (hook, delivery.Id, url);
    }

    private static void AssertNothingOf(string body, string url)
    {
        Assert.DoesNotContain(url, body, StringComparison.Ordinal);
        Assert.DoesNotContain("user_private", body, StringComparison.Ordinal);
        Assert.DoesNotContain("receiver-private-answer", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_write_key_gets_404_on_the_owners_webhook_and_lists_only_its_own()
    {
        var gym = await fx.CreateGymAsync();
        await using var receiver = await TestReceiver.StartAsync();
        var (ownerHook, ownerDelivery, ownerUrl) = await OwnersDeliveredHookAsync(gym, receiver);
        var (zapierId, zapierKey) = await KeyAsync(gym, "Zapier", "read", "write");
        var (_, otherKey) = await KeyAsync(gym, "Other", "read", "write");
        using var zapier = fx.Client(zapierKey);
        using var other = fx.Client(otherKey);
        var zapierHook = await CreateWithAsync(zapier, "https://hooks.zapier.example/abc", "lead.created");

        Assert.Equal([zapierHook], await ListAsync(zapier));
        Assert.Empty(await ListAsync(other));
        var listed = await (await zapier.GetAsync("/api/gym/webhooks")).Content.ReadAsStringAsync();
        AssertNothingOf(listed, ownerUrl);

        // Every call on the owner's webhook (and on another key's) is not found, and changes nothing.
        var before = await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == ownerHook));
        foreach (var (client, hook, delivery) in new[] { (zapier, ownerHook, ownerDelivery), (other, zapierHook, Guid.NewGuid()) })
        {
            var responses = new[]
            {
                await client.GetAsync($"/api/gym/webhooks/{hook}"),
                await client.PatchJsonAsync($"/api/gym/webhooks/{hook}", new { url = "https://attacker.example/steal" }),
                await client.PostAsync($"/api/gym/webhooks/{hook}/rotate-secret", null),
                await client.DeleteAsync($"/api/gym/webhooks/{hook}"),
                await client.GetAsync($"/api/gym/webhooks/{hook}/deliveries"),
                await client.GetAsync($"/api/gym/webhooks/{hook}/deliveries/{delivery}"),
                await client.PostAsync($"/api/gym/webhooks/{hook}/deliveries/{delivery}/redeliver", null),
                await client.PostJsonAsync($"/api/gym/webhooks/{hook}/test", new { }),
            };
            foreach (var response in responses)
            {
                var error = await response.AssertErrorAsync(HttpStatusCode.NotFound);
                AssertNothingOf(error, ownerUrl);
            }
        }
        var after = await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == ownerHook));
        Assert.Equal((before.Url, before.SecretProtected, before.IsActive), (after.Url, after.SecretProtected, after.IsActive));
        Assert.Single(receiver.At("/owner-secret-hook"));
        Assert.Single(await fx.DeliveriesAsync(ownerHook));

        // The key manages its own.
        await (await zapier.PatchJsonAsync($"/api/gym/webhooks/{zapierHook}", new { events = new[] { "lead.created", "member.joined" } })).AssertStatusAsync(HttpStatusCode.OK);
        await (await zapier.PostAsync($"/api/gym/webhooks/{zapierHook}/rotate-secret", null)).AssertStatusAsync(HttpStatusCode.OK);
        await (await zapier.GetAsync($"/api/gym/webhooks/{zapierHook}/deliveries")).AssertStatusAsync(HttpStatusCode.OK);

        // The owner sees and manages all, and sees which key created which.
        using var owner = gym.Owner();
        var all = (await (await owner.GetAsync("/api/gym/webhooks")).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("webhooks").EnumerateArray()
            .ToDictionary(w => w.GetProperty("id").GetGuid());
        Assert.Equal(2, all.Count);
        Assert.Equal(JsonValueKind.Null, all[ownerHook].GetProperty("api_key_id").ValueKind);
        Assert.Equal(zapierId, all[zapierHook].GetProperty("api_key_id").GetGuid());
        await (await owner.GetAsync($"/api/gym/webhooks/{zapierHook}/deliveries")).AssertStatusAsync(HttpStatusCode.OK);
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{zapierHook}", new { url = "https://hooks.zapier.example/owner-moved" })).AssertStatusAsync(HttpStatusCode.OK);
        await (await owner.PostAsync($"/api/gym/webhooks/{zapierHook}/rotate-secret", null)).AssertStatusAsync(HttpStatusCode.OK);
        var detail = await (await owner.GetAsync($"/api/gym/webhooks/{ownerHook}/deliveries/{ownerDelivery}")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Contains("receiver-private-answer", detail.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_read_key_lists_only_its_keys_own_subscriptions_and_none_of_the_owners_urls_payloads_or_responses()
    {
        var gym = await fx.CreateGymAsync();
        await using var receiver = await TestReceiver.StartAsync();
        var (ownerHook, ownerDelivery, ownerUrl) = await OwnersDeliveredHookAsync(gym, receiver);
        var (_, readKey) = await KeyAsync(gym, "Reporting", "read");
        using var reader = fx.Client(readKey);

        var list = await (await reader.GetAsync("/api/gym/webhooks")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Empty(list.GetProperty("webhooks").EnumerateArray());
        foreach (var path in new[] { $"/api/gym/webhooks/{ownerHook}", $"/api/gym/webhooks/{ownerHook}/deliveries", $"/api/gym/webhooks/{ownerHook}/deliveries/{ownerDelivery}" })
        {
            AssertNothingOf(await (await reader.GetAsync(path)).AssertErrorAsync(HttpStatusCode.NotFound), ownerUrl);
        }
        // The catalog is not anyone's: a read key still reads it.
        await (await reader.GetAsync("/api/gym/webhooks/events")).AssertStatusAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Revoking_a_key_deactivates_the_subscriptions_it_created_with_a_reason_the_owner_sees()
    {
        var gym = await fx.CreateGymAsync();
        await using var receiver = await TestReceiver.StartAsync();
        var (keyId, key) = await KeyAsync(gym, "Zapier Production", "read", "write");
        var (_, otherKey) = await KeyAsync(gym, "Make", "read", "write");
        using var zapier = fx.Client(key);
        var keyHook = await CreateWithAsync(zapier, receiver.Url("/zapier"), "member.joined");
        var otherHook = await CreateWithAsync(fx.Client(otherKey), receiver.Url("/make"), "member.joined");
        var ownerHook = await CreateWithAsync(gym.Owner(), receiver.Url("/owner"), "member.joined");
        // A delivery of the key's webhook still queued (its receiver fails) when the key is revoked.
        receiver.On("/zapier", new Reply(500, "down"));
        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_before"));
        await fx.WaitForDeliveryAsync(keyHook, d => d.Status == DeliveryStatus.Retrying, "the key's delivery retrying");

        using var owner = gym.Owner();
        await (await owner.DeleteAsync($"/api/gym/api-keys/{keyId}")).AssertStatusAsync(HttpStatusCode.OK);

        var hooks = await HooksAsync(owner);
        Assert.False(hooks[keyHook].GetProperty("is_active").GetBoolean());
        var reason = hooks[keyHook].GetProperty("disabled_reason").GetString()!;
        Assert.Contains("'Zapier Production'", reason, StringComparison.Ordinal);
        Assert.Contains("revoked", reason, StringComparison.Ordinal);
        Assert.Equal(fx.Clock.GetUtcNow().UtcDateTime, hooks[keyHook].GetProperty("disabled_at").GetDateTime());
        Assert.True(hooks[otherHook].GetProperty("is_active").GetBoolean());
        Assert.True(hooks[ownerHook].GetProperty("is_active").GetBoolean());
        // Its queued delivery ended with it.
        Assert.Equal(DeliveryStatus.Undeliverable, Assert.Single(await fx.DeliveriesAsync(keyHook)).Status);

        // New events go to the others only.
        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_after"));
        await receiver.WaitForAsync("/owner", 2);
        await receiver.WaitForAsync("/make", 2);
        // The new event's fan-out committed (it can lag its first sends): none for the deactivated webhook in it.
        await fx.WaitForDeliveriesAsync(ownerHook, 2, _ => true, "the new event's deliveries committed");
        Assert.Single(await fx.DeliveriesAsync(keyHook));

        // The dashboard shows the reason and who created the webhook.
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var page = System.Net.WebUtility.HtmlDecode(await browser.GetPageAsync($"/settings/webhooks/{keyHook}"));
        Assert.Contains(reason, page, StringComparison.Ordinal);
        Assert.Contains("API key Zapier Production", page, StringComparison.Ordinal);
        Assert.Contains("Disabled by Gymwire", await browser.GetPageAsync("/settings/webhooks"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_keys_expiry_deactivates_the_subscriptions_it_created_and_leaves_one_the_owner_switched_back_on()
    {
        var gym = await fx.CreateGymAsync();
        await using var receiver = await TestReceiver.StartAsync();
        // Its expiry comes before the failing delivery's first retry (5 minutes), which so stays queued.
        var expiresAt = fx.Clock.GetUtcNow().UtcDateTime.AddSeconds(2);
        var created = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "Trial", scopes = new[] { "read", "write" }, expires_at = expiresAt }))
            .AssertStatusAsync(HttpStatusCode.Created);
        using var trial = fx.Client(created.GetProperty("key").GetString()!);
        var keyHook = await CreateWithAsync(trial, receiver.Url("/trial"), "member.joined");
        var ownerHook = await CreateWithAsync(gym.Owner(), receiver.Url("/owner-expiry"), "member.joined");
        // A delivery of the key's webhook still queued (its receiver fails) when the key expires.
        receiver.On("/trial", new Reply(500, "down"));
        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_before_expiry"));
        await fx.WaitForDeliveryAsync(keyHook, d => d.Status == DeliveryStatus.Retrying, "the key's delivery retrying");
        var expiry = fx.Services.GetRequiredService<Gymwire.Features.ApiKeys.ApiKeyExpiry>();
        Assert.Equal(0, await expiry.SweepAsync(CancellationToken.None));

        fx.Clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(HttpStatusCode.Unauthorized, (await trial.GetAsync("/api/gym/webhooks")).StatusCode);
        // The sweep (every minute; here at once): the key's webhook is off with the reason, its queue ended.
        Assert.Equal(1, await expiry.SweepAsync(CancellationToken.None));
        using var owner = gym.Owner();
        var hooks = await HooksAsync(owner);
        Assert.False(hooks[keyHook].GetProperty("is_active").GetBoolean());
        var reason = hooks[keyHook].GetProperty("disabled_reason").GetString()!;
        Assert.Contains("'Trial'", reason, StringComparison.Ordinal);
        Assert.Contains("expired", reason, StringComparison.Ordinal);
        Assert.True(hooks[ownerHook].GetProperty("is_active").GetBoolean());
        Assert.Equal(DeliveryStatus.Undeliverable, Assert.Single(await fx.DeliveriesAsync(keyHook)).Status);
        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_after_expiry"));
        await receiver.WaitForAsync("/owner-expiry", 2);
        await fx.WaitForDeliveriesAsync(ownerHook, 2, _ => true, "the new event's deliveries committed");
        Assert.Single(await fx.DeliveriesAsync(keyHook));

        // The owner switches it back on: the owner's now, left on by every later sweep.
        receiver.On("/trial", new Reply());
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{keyHook}", new { is_active = true })).AssertStatusAsync(HttpStatusCode.OK);
        fx.Clock.Advance(Gymwire.Features.ApiKeys.ApiKeyExpiry.Interval);
        Assert.Equal(0, await expiry.SweepAsync(CancellationToken.None));
        Assert.True((await HooksAsync(owner))[keyHook].GetProperty("is_active").GetBoolean());
        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_adopted"));
        await receiver.WaitForAsync("/trial", 2);
    }

    [Fact]
    public async Task A_key_revoked_after_it_authenticated_can_neither_create_nor_change_nor_switch_on_a_webhook()
    {
        var gym = await fx.CreateGymAsync();
        var (keyId, key) = await KeyAsync(gym, "Zapier", "read", "write");
        using var zapier = fx.Client(key);
        var hook = await CreateWithAsync(zapier, "https://hooks.zapier.example/before", "member.joined");
        using var owner = gym.Owner();
        await (await owner.DeleteAsync($"/api/gym/api-keys/{keyId}")).AssertStatusAsync(HttpStatusCode.OK);
        var before = await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == hook));
        Assert.False(before.IsActive);

        // Requests the key authenticated before the revocation committed reach the service afterwards.
        var access = new WebhookAccess(gym.GymId, keyId);
        await using (var scope = fx.Services.CreateAsyncScope())
        {
            var webhooks = scope.ServiceProvider.GetRequiredService<WebhookService>();
            var created = await webhooks.CreateAsync(access, "https://hooks.zapier.example/during", ["member.joined"], null, CancellationToken.None);
            Assert.Equal((WebhookFailure.KeyInvalid, WebhookService.KeyInvalid), (created.Failure, created.Error));
            var updated = await webhooks.UpdateAsync(access, hook, "https://hooks.zapier.example/moved", null, true, CancellationToken.None);
            Assert.Equal(WebhookFailure.KeyInvalid, updated.Failure);
            var rotated = await webhooks.RotateSecretAsync(access, hook, CancellationToken.None);
            Assert.Equal(WebhookFailure.KeyInvalid, rotated.Failure);
        }
        var after = Assert.Single(await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().Where(s => s.GymId == gym.GymId).ToListAsync()));
        Assert.Equal((before.Url, before.IsActive, before.SecretProtected, before.UpdatedAt), (after.Url, after.IsActive, after.SecretProtected, after.UpdatedAt));
    }

    [Fact]
    public async Task A_keys_switch_on_that_read_the_webhook_before_the_owner_switched_it_off_is_refused()
    {
        var gym = await fx.CreateGymAsync();
        var (keyId, key) = await KeyAsync(gym, "Zapier", "read", "write");
        using var zapier = fx.Client(key);
        using var owner = gym.Owner();
        var hook = await CreateWithAsync(zapier, "https://hooks.zapier.example/held", "member.joined");
        var path = $"/api/gym/webhooks/{hook}";
        // Off by the key's own switch-off, so the key may switch it on.
        await (await zapier.DeleteAsync(path)).AssertStatusAsync(HttpStatusCode.OK);

        await using (var scope = fx.Services.CreateAsyncScope())
        {
            var webhooks = scope.ServiceProvider.GetRequiredService<WebhookService>();
            var access = new WebhookAccess(gym.GymId, keyId);
            // The key's PATCH has read the webhook (off, not held by the owner): its request keeps what it read...
            var read = await webhooks.FindAsync(access, hook, CancellationToken.None, tracking: true);
            Assert.Equal((false, false), (read!.IsActive, read.SwitchedByOwner));
            // ...when the owner's Disable is saved...
            var disabled = await (await owner.DeleteAsync(path)).AssertStatusAsync(HttpStatusCode.OK);
            Assert.False(disabled.GetProperty("is_active").GetBoolean());
            // ...and then it writes.
            var updated = await webhooks.UpdateAsync(access, hook, null, null, true, CancellationToken.None);
            Assert.Equal((WebhookFailure.Forbidden, WebhookService.SwitchedOffByOwner), (updated.Failure, updated.Error));
        }
        var stored = await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == hook));
        Assert.Equal((false, true), (stored.IsActive, stored.SwitchedByOwner));
    }

    [Fact]
    public async Task An_owners_switch_off_that_read_the_webhook_before_a_keys_switch_on_still_switches_it_off_and_holds()
    {
        var gym = await fx.CreateGymAsync();
        var (_, key) = await KeyAsync(gym, "Zapier", "read", "write");
        using var zapier = fx.Client(key);
        var hook = await CreateWithAsync(zapier, "https://hooks.zapier.example/reverse", "member.joined");
        var path = $"/api/gym/webhooks/{hook}";
        using var ownerClient = gym.Owner();
        var owner = WebhookAccess.Owner(gym.GymId);
        foreach (var viaPatch in new[] { false, true })
        {
            // Off by the key's own switch-off, so the key may switch it on.
            await (await zapier.DeleteAsync(path)).AssertStatusAsync(HttpStatusCode.OK);
            await using var scope = fx.Services.CreateAsyncScope();
            var webhooks = scope.ServiceProvider.GetRequiredService<WebhookService>();
            // The owner's request has read the webhook (off, not held)...
            var read = await webhooks.FindAsync(owner, hook, CancellationToken.None, tracking: true);
            Assert.Equal((false, false), (read!.IsActive, read.SwitchedByOwner));
            // ...when the key's switch-on is saved...
            await (await zapier.PatchJsonAsync(path, new { is_active = true })).AssertStatusAsync(HttpStatusCode.OK);
            // ...and then it writes: the webhook ends off, and held against the key.
            var isActive = viaPatch
                ? (await webhooks.UpdateAsync(owner, hook, null, null, false, CancellationToken.None)).Value!.IsActive
                : (await webhooks.DeactivateAsync(owner, hook, CancellationToken.None)).Value!.IsActive;
            Assert.False(isActive);
            var stored = await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == hook));
            Assert.Equal((false, true), (stored.IsActive, stored.SwitchedByOwner));
            await (await zapier.PatchJsonAsync(path, new { is_active = true })).AssertStatusAsync(HttpStatusCode.Forbidden);
            // The owner switches it on again for the next round.
            await (await ownerClient.PatchJsonAsync(path, new { is_active = true })).AssertStatusAsync(HttpStatusCode.OK);
        }
    }

    [Fact]
    public async Task A_key_still_cached_after_its_revocation_committed_gets_401_from_webhook_writes()
    {
        var gym = await fx.CreateGymAsync();
        var (keyId, key) = await KeyAsync(gym, "Zapier", "read", "write");
        using var zapier = fx.Client(key);
        var hook = await CreateWithAsync(zapier, "https://hooks.zapier.example/cached", "member.joined");
        // Revoked in the database only: this node has not yet evicted the key it cached, as between RevokeAsync's
        // commit and its eviction, or before another node's revocation reaches this one.
        await fx.WithDbAsync(db => db.ApiKeys.Where(k => k.Id == keyId)
            .ExecuteUpdateAsync(u => u.SetProperty(k => k.RevokedAt, fx.Clock.GetUtcNow().UtcDateTime)));

        await (await zapier.PostJsonAsync("/api/gym/webhooks", new { url = "https://hooks.zapier.example/new" })).AssertErrorAsync(HttpStatusCode.Unauthorized);
        await (await zapier.PatchJsonAsync($"/api/gym/webhooks/{hook}", new { url = "https://hooks.zapier.example/moved" })).AssertErrorAsync(HttpStatusCode.Unauthorized);
        await (await zapier.PostAsync($"/api/gym/webhooks/{hook}/rotate-secret", null)).AssertErrorAsync(HttpStatusCode.Unauthorized);
        var only = Assert.Single(await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().Where(s => s.GymId == gym.GymId).ToListAsync()));
        Assert.Equal("https://hooks.zapier.example/cached", only.Url);
    }

    [Fact]
    public async Task A_change_the_key_makes_at_its_expiry_is_refused_and_the_sweep_still_deactivates_its_webhook()
    {
        var gym = await fx.CreateGymAsync();
        var expiresAt = fx.Clock.GetUtcNow().UtcDateTime.AddSeconds(2);
        var created = await (await gym.Owner().PostJsonAsync("/api/gym/api-keys", new { name = "Trial", scopes = new[] { "read", "write" }, expires_at = expiresAt }))
            .AssertStatusAsync(HttpStatusCode.Created);
        var keyId = created.GetProperty("id").GetGuid();
        using var trial = fx.Client(created.GetProperty("key").GetString()!);
        var hook = await CreateWithAsync(trial, "https://hooks.trial.example/a", "member.joined");

        // A PATCH authenticated just before the expiry reaches the service at it.
        fx.Clock.Advance(TimeSpan.FromSeconds(2));
        await using (var scope = fx.Services.CreateAsyncScope())
        {
            var webhooks = scope.ServiceProvider.GetRequiredService<WebhookService>();
            var updated = await webhooks.UpdateAsync(new WebhookAccess(gym.GymId, keyId), hook, null, ["member.joined", "lead.created"], null, CancellationToken.None);
            Assert.Equal(WebhookFailure.KeyInvalid, updated.Failure);
        }
        var expiry = fx.Services.GetRequiredService<Gymwire.Features.ApiKeys.ApiKeyExpiry>();
        Assert.Equal(1, await expiry.SweepAsync(CancellationToken.None));
        var after = await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == hook));
        Assert.False(after.IsActive);
        Assert.Equal(["member.joined"], after.Events);
    }

    [Fact]
    public async Task The_sweep_deactivates_a_webhook_made_earlier_by_a_key_without_read_and_leaves_it_on_once_the_owner_switches_it_on()
    {
        var gym = await fx.CreateGymAsync();
        await using var receiver = await TestReceiver.StartAsync();
        var (keyId, _) = await KeyAsync(gym, "Legacy Sync", "write");
        var (_, zapierKey) = await KeyAsync(gym, "Zapier", "read", "write");
        // Made while managing a webhook needed only `write`: created by the owner here, then given to the key.
        var keyHook = await CreateWithAsync(gym.Owner(), receiver.Url("/legacy"), "member.joined");
        await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == keyHook).ExecuteUpdateAsync(u => u.SetProperty(s => s.ApiKeyId, keyId)));
        var zapierHook = await CreateWithAsync(fx.Client(zapierKey), receiver.Url("/zapier-read-write"), "member.joined");
        var ownerHook = await CreateWithAsync(gym.Owner(), receiver.Url("/owner-read-write"), "member.joined");
        // A delivery of the key's webhook still queued (its receiver fails) when the sweep runs.
        receiver.On("/legacy", new Reply(500, "down"));
        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_before_sweep"));
        await fx.WaitForDeliveryAsync(keyHook, d => d.Status == DeliveryStatus.Retrying, "the key's delivery retrying");
        var logged = fx.Logs.Lines.Count;

        var expiry = fx.Services.GetRequiredService<Gymwire.Features.ApiKeys.ApiKeyExpiry>();
        Assert.Equal(1, await expiry.SweepAsync(CancellationToken.None));
        using var owner = gym.Owner();
        var hooks = await HooksAsync(owner);
        Assert.False(hooks[keyHook].GetProperty("is_active").GetBoolean());
        var reason = hooks[keyHook].GetProperty("disabled_reason").GetString()!;
        Assert.Contains("'Legacy Sync'", reason, StringComparison.Ordinal);
        Assert.Contains("'read'", reason, StringComparison.Ordinal);
        Assert.Equal(fx.Clock.GetUtcNow().UtcDateTime, hooks[keyHook].GetProperty("disabled_at").GetDateTime());
        Assert.True(hooks[zapierHook].GetProperty("is_active").GetBoolean());
        Assert.True(hooks[ownerHook].GetProperty("is_active").GetBoolean());
        Assert.Equal(DeliveryStatus.Undeliverable, Assert.Single(await fx.DeliveriesAsync(keyHook)).Status);
        Assert.Contains(fx.Logs.Lines.Skip(logged), l => l.Contains($"API key {keyId} lacks the read scope", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_after_sweep"));
        await receiver.WaitForAsync("/owner-read-write", 2);
        await fx.WaitForDeliveriesAsync(ownerHook, 2, _ => true, "the new event's deliveries committed");
        Assert.Single(await fx.DeliveriesAsync(keyHook));

        // The owner (whose actions need no scope) switches it back on: later sweeps leave it on.
        receiver.On("/legacy", new Reply());
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{keyHook}", new { is_active = true })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(0, await expiry.SweepAsync(CancellationToken.None));
        Assert.True((await HooksAsync(owner))[keyHook].GetProperty("is_active").GetBoolean());
        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_owner_kept"));
        await receiver.WaitForAsync("/legacy", 2);
    }

    [Fact]
    public async Task A_key_cannot_switch_on_a_webhook_the_owner_switched_off_but_can_after_its_own_or_gymwires_switch_off()
    {
        var gym = await fx.CreateGymAsync();
        await using var receiver = await TestReceiver.StartAsync();
        var (_, key) = await KeyAsync(gym, "Zapier", "read", "write");
        using var zapier = fx.Client(key);
        using var owner = gym.Owner();
        var hook = await CreateWithAsync(zapier, receiver.Url("/switched"), "member.joined");
        var path = $"/api/gym/webhooks/{hook}";
        Task<WebhookSubscription> StoredAsync() => fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == hook));
        async Task AssertKeyRefusedAsync()
        {
            var before = await StoredAsync();
            var error = await (await zapier.PatchJsonAsync(path, new { is_active = true, url = receiver.Url("/moved") })).AssertErrorAsync(HttpStatusCode.Forbidden);
            Assert.Equal("The gym's owner switched this webhook off; only the owner can switch it on again", error);
            var after = await StoredAsync();
            Assert.Equal((false, before.Url, before.UpdatedAt), (after.IsActive, after.Url, after.UpdatedAt));
        }

        // Switched off by the owner (PATCH, then DELETE): the key's switch-on is refused; the owner's switch-on ends the hold.
        foreach (var switchOff in new Func<Task<HttpResponseMessage>>[] { () => owner.PatchJsonAsync(path, new { is_active = false }), () => owner.DeleteAsync(path) })
        {
            await (await switchOff()).AssertStatusAsync(HttpStatusCode.OK);
            await AssertKeyRefusedAsync();
            await (await owner.PatchJsonAsync(path, new { is_active = true })).AssertStatusAsync(HttpStatusCode.OK);
        }

        // The key's own switch-off is the key's to undo; the owner's switch-off of a webhook already off holds as well.
        await (await zapier.DeleteAsync(path)).AssertStatusAsync(HttpStatusCode.OK);
        await (await zapier.PatchJsonAsync(path, new { is_active = true })).AssertStatusAsync(HttpStatusCode.OK);
        await (await zapier.DeleteAsync(path)).AssertStatusAsync(HttpStatusCode.OK);
        await (await owner.DeleteAsync(path)).AssertStatusAsync(HttpStatusCode.OK);
        await AssertKeyRefusedAsync();
        await (await owner.PatchJsonAsync(path, new { is_active = true })).AssertStatusAsync(HttpStatusCode.OK);

        // Gymwire's own deactivation (its receiver answered 410) is not the owner's: the key switches it on once the receiver is fixed.
        receiver.On("/switched", new Reply(410, "gone"));
        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_gone"));
        await Eventually.TrueAsync(async () => !(await StoredAsync()).IsActive, what: "the 410 deactivating the webhook");
        receiver.On("/switched", new Reply());
        var enabled = await (await zapier.PatchJsonAsync(path, new { is_active = true })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.True(enabled.GetProperty("is_active").GetBoolean());
    }

    [Fact]
    public async Task The_api_and_the_dashboard_say_whether_the_owner_or_gymwire_switched_a_webhook_off()
    {
        var gym = await fx.CreateGymAsync();
        var (_, key) = await KeyAsync(gym, "Zapier", "read", "write");
        var (makeId, makeKey) = await KeyAsync(gym, "Make", "read", "write");
        using var zapier = fx.Client(key);
        using var owner = gym.Owner();
        var hook = await CreateWithAsync(zapier, "https://hooks.zapier.example/held-shown", "member.joined");
        var makeHook = await CreateWithAsync(fx.Client(makeKey), "https://hooks.make.example/revoked", "member.joined");
        var path = $"/api/gym/webhooks/{hook}";
        async Task AssertHeldAsync(bool held)
        {
            // The key reads it in each of its answers: the one webhook, its list, and the answer to its own PATCH.
            var one = await (await zapier.GetAsync(path)).AssertStatusAsync(HttpStatusCode.OK);
            var listed = Assert.Single((await (await zapier.GetAsync("/api/gym/webhooks")).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("webhooks").EnumerateArray());
            Assert.Equal((held, held), (one.GetProperty("switched_off_by_owner").GetBoolean(), listed.GetProperty("switched_off_by_owner").GetBoolean()));
        }
        Assert.False((await (await zapier.PatchJsonAsync(path, new { events = new[] { "member.joined" } })).AssertStatusAsync(HttpStatusCode.OK))
            .GetProperty("switched_off_by_owner").GetBoolean());
        await AssertHeldAsync(false);

        // The owner's switch-off holds, and says so to the key before its switch-on is refused.
        var off = await (await owner.PatchJsonAsync(path, new { is_active = false })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.True(off.GetProperty("switched_off_by_owner").GetBoolean());
        await AssertHeldAsync(true);
        await (await zapier.PatchJsonAsync(path, new { is_active = true })).AssertErrorAsync(HttpStatusCode.Forbidden);
        // The owner revokes the other key: Gymwire switched its webhook off, not the owner, and it says why.
        await (await owner.DeleteAsync($"/api/gym/api-keys/{makeId}")).AssertStatusAsync(HttpStatusCode.OK);
        var revoked = (await HooksAsync(owner))[makeHook];
        Assert.False(revoked.GetProperty("switched_off_by_owner").GetBoolean());
        var reason = revoked.GetProperty("disabled_reason").GetString()!;

        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var list = System.Net.WebUtility.HtmlDecode(await browser.GetPageAsync("/settings/webhooks"));
        string Row(Guid id)
        {
            var start = list.IndexOf($"data-webhook-id=\"{id}\"", StringComparison.Ordinal);
            return list[start..list.IndexOf("</tr>", start, StringComparison.Ordinal)];
        }
        Assert.Contains(">Disabled by owner<", Row(hook), StringComparison.Ordinal);
        Assert.Contains(">Disabled by Gymwire<", Row(makeHook), StringComparison.Ordinal);
        Assert.Contains(reason, Row(makeHook), StringComparison.Ordinal);
        var page = await browser.GetPageAsync($"/settings/webhooks/{hook}");
        Assert.Contains(">Disabled by owner<", page, StringComparison.Ordinal);
        Assert.Contains("id=\"held-by-owner\"", page, StringComparison.Ordinal);
        Assert.Contains(reason, System.Net.WebUtility.HtmlDecode(await browser.GetPageAsync($"/settings/webhooks/{makeHook}")), StringComparison.Ordinal);

        // Switched on by the owner, the hold ends; the key's own switch-off is no hold, and the page says neither.
        await (await owner.PatchJsonAsync(path, new { is_active = true })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.False((await (await zapier.DeleteAsync(path)).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("switched_off_by_owner").GetBoolean());
        await AssertHeldAsync(false);
        page = await browser.GetPageAsync($"/settings/webhooks/{hook}");
        Assert.Contains("id=\"webhook-status\">Disabled<", page, StringComparison.Ordinal);
        Assert.DoesNotContain("held-by-owner", page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_owners_switch_off_that_a_key_keeps_switching_back_on_gets_409_after_a_few_tries_and_changes_nothing()
    {
        var gym = await fx.CreateGymAsync();
        var (_, key) = await KeyAsync(gym, "Zapier", "read", "write");
        using var zapier = fx.Client(key);
        using var owner = gym.Owner();
        var hook = await CreateWithAsync(zapier, "https://hooks.zapier.example/flapping", "member.joined");
        var path = $"/api/gym/webhooks/{hook}";
        Task<WebhookSubscription> StoredAsync() => fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == hook));
        Task SwitchAsync(bool on) => fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == hook).ExecuteUpdateAsync(u => u.SetProperty(s => s.IsActive, on)));
        // The key switches the webhook off before each of the owner's reads and on again right after, so the owner's
        // switch-off of a webhook read as off finds it on at every write. Armed for more reads than any bound would allow.
        void Race(int reads) => fx.ReadRacer.Arm("webhook_subscriptions", hook, reads, () => SwitchAsync(false), () => SwitchAsync(true));

        var switchOffs = new (string Name, Func<Task<HttpResponseMessage>> Send)[]
        {
            ("PATCH", () => owner.PatchJsonAsync(path, new { is_active = false })),
            ("DELETE", () => owner.DeleteAsync(path)),
        };
        foreach (var (name, send) in switchOffs)
        {
            // Off by the key's own switch-off, so the owner's switch-off only marks the hold, if it is still off at the write.
            await (await zapier.DeleteAsync(path)).AssertStatusAsync(HttpStatusCode.OK);
            Race(20);
            var response = await send();
            Race(0);
            Assert.Equal(WebhookService.KeptChanging, await response.AssertErrorAsync(HttpStatusCode.Conflict));
            // The key's last switch stands; the owner's request left no mark.
            var stored = await StoredAsync();
            Assert.True((stored.IsActive, stored.SwitchedByOwner) == (true, false), name);
            // Once the key stops, the same request switches it off and holds it.
            Assert.True((await (await send()).AssertStatusAsync(HttpStatusCode.OK)).GetProperty("switched_off_by_owner").GetBoolean(), name);
            await (await owner.PatchJsonAsync(path, new { is_active = true })).AssertStatusAsync(HttpStatusCode.OK);
        }

        // The dashboard's Disable shows the same problem on the webhook's page.
        await (await zapier.DeleteAsync(path)).AssertStatusAsync(HttpStatusCode.OK);
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var token = DashboardClient.Token(await browser.GetPageAsync($"/settings/webhooks/{hook}"));
        Race(20);
        var disabled = await browser.PostFormAsync($"/settings/webhooks/{hook}?handler=Disable", ("__RequestVerificationToken", token));
        Race(0);
        Assert.Contains(WebhookService.KeptChanging, await (await browser.FollowAsync(disabled)).Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.True((await StoredAsync()).IsActive);
    }

    [Fact]
    public async Task A_key_still_cached_after_its_revocation_committed_gets_401_from_test_sends_redeliveries_and_retries()
    {
        var gym = await fx.CreateGymAsync();
        await using var receiver = await TestReceiver.StartAsync();
        var (keyId, key) = await KeyAsync(gym, "Zapier", "read", "write");
        using var zapier = fx.Client(key);
        var hook = await CreateWithAsync(zapier, receiver.Url("/cached-key"), "member.joined");
        receiver.On("/cached-key", new Reply(500, "down"));
        Assert.Equal(HttpStatusCode.Created, await gym.AddMemberAsync("user_cached_key"));
        var failed = await fx.WaitForDeliveryAsync(hook, d => d.Status == DeliveryStatus.Retrying, "the delivery retrying");
        // Revoked in the database only: this node still has the key cached (see the test of webhook writes above).
        await fx.WithDbAsync(db => db.ApiKeys.Where(k => k.Id == keyId)
            .ExecuteUpdateAsync(u => u.SetProperty(k => k.RevokedAt, fx.Clock.GetUtcNow().UtcDateTime)));

        var hookPath = $"/api/gym/webhooks/{hook}";
        Assert.Equal(WebhookService.KeyInvalid, await (await zapier.PostJsonAsync($"{hookPath}/test", new { })).AssertErrorAsync(HttpStatusCode.Unauthorized));
        await (await zapier.PostAsync($"{hookPath}/deliveries/{failed.Id}/redeliver", null)).AssertErrorAsync(HttpStatusCode.Unauthorized);
        await (await zapier.PostJsonAsync($"{hookPath}/retry-failed", new { since = fx.Clock.GetUtcNow().UtcDateTime.AddHours(-1) }))
            .AssertErrorAsync(HttpStatusCode.Unauthorized);
        var after = Assert.Single(await fx.DeliveriesAsync(hook));
        Assert.Equal((failed.Status, failed.AttemptCount, failed.NextAttemptAt), (after.Status, after.AttemptCount, after.NextAttemptAt));
        Assert.Single(receiver.At("/cached-key"));
    }
}
