using System.Net;
using System.Text.Json;
using Gymwire.Features.Events;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Webhooks;

/// <summary>The management API: CRUD, validation, the catalog, secrets shown once and kept encrypted, tenancy.</summary>
public abstract class WebhookManagementTests(WebhookFixture fx)
{
    public sealed class Sqlite(SqliteWebhooks f) : WebhookManagementTests(f), IClassFixture<SqliteWebhooks>;
    public sealed class Postgres(PostgresWebhooks f) : WebhookManagementTests(f), IClassFixture<PostgresWebhooks>;

    [Fact]
    public async Task Create_returns_the_secret_once_and_list_shows_the_documented_fields()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var created = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url = "https://hooks.example.com/gym", events = new[] { "member.joined", "payment.received" } }))
            .AssertStatusAsync(HttpStatusCode.Created);
        var secret = created.GetProperty("secret").GetString()!;
        Assert.Matches("^whsec_[A-Za-z0-9+/]{43}=$", secret);
        Assert.Equal(32, Convert.FromBase64String(secret[6..]).Length);
        var id = created.GetProperty("id").GetGuid();

        var list = await (await owner.GetAsync("/api/gym/webhooks")).AssertStatusAsync(HttpStatusCode.OK);
        var webhook = Assert.Single(list.GetProperty("webhooks").EnumerateArray());
        Assert.Equal(["id", "url", "events", "is_active", "created_at", "disabled_reason", "disabled_at", "api_key_id", "description", "switched_off_by_owner"], webhook.EnumerateObject().Select(p => p.Name));
        Assert.Equal(id, webhook.GetProperty("id").GetGuid());
        Assert.Equal("https://hooks.example.com/gym", webhook.GetProperty("url").GetString());
        Assert.Equal(["member.joined", "payment.received"], webhook.GetProperty("events").EnumerateArray().Select(e => e.GetString()));
        Assert.True(webhook.GetProperty("is_active").GetBoolean());
        Assert.Equal("2026-04-16T12:00:00.000Z"[..10], webhook.GetProperty("created_at").GetString()![..10]);
        Assert.DoesNotContain("whsec_", list.ToString(), StringComparison.Ordinal);

        // Encrypted at rest, never logged.
        var stored = await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == id));
        Assert.DoesNotContain(secret[6..], stored.SecretProtected, StringComparison.Ordinal);
        Assert.DoesNotContain(fx.Logs.Lines, line => line.Contains(secret[6..], StringComparison.Ordinal));
    }

    [Fact]
    public async Task Unknown_event_names_are_400_listing_the_valid_ones()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var message = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url = "https://hooks.example.com/x", events = new[] { "member.joined", "member.exploded" } }))
            .AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains("'member.exploded'", message, StringComparison.Ordinal);
        foreach (var type in EventCatalog.All)
        {
            Assert.Contains(type.Name, message, StringComparison.Ordinal);
        }
        var hook = await gym.CreateWebhookAsync("https://hooks.example.com/y");
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{hook.Id}", new { events = new[] { "nope" } })).AssertErrorAsync(HttpStatusCode.BadRequest);
    }

    [Theory]
    [InlineData("""{}""", "url")]
    [InlineData("""{"url":""}""", "url")]
    [InlineData("""{"url":"not a url"}""", "url")]
    [InlineData("""{"url":"ftp://hooks.example.com/"}""", "url")]
    [InlineData("""{"url":"https://user:pass@hooks.example.com/"}""", "url")]
    [InlineData("""{"url":"https://hooks.example.com/","secret":"nope"}""", "secret")]
    [InlineData("""{"url":"https://hooks.example.com/","secret":"whsec_c2hvcnQ="}""", "secret")]
    [InlineData("""{"url":"https://hooks.example.com/","events":"member.joined"}""", "events")]
    [InlineData("""{"url":"https://hooks.example.com/a\r\nX-Injected: 1"}""", "url")]
    [InlineData("""{"url":"https://hooks.exa\nmple.com/"}""", "url")]
    [InlineData("""{"url":"https://hooks.example.com/a\tb"}""", "url")]
    [InlineData("""{"url":"https://hooks.example.com/a b"}""", "url")]
    public async Task Invalid_requests_are_400_naming_the_field(string body, string field)
    {
        var gym = await fx.CreateGymAsync();
        var message = await (await gym.Owner().PostRawAsync("/api/gym/webhooks", body)).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains(field, message, StringComparison.Ordinal);
        Assert.Equal(0, await fx.WithDbAsync(db => db.WebhookSubscriptions.CountAsync(s => s.GymId == gym.GymId)));
    }

    [Fact]
    public async Task A_secret_padded_with_whitespace_past_what_the_store_holds_is_400_on_both_stores()
    {
        var gym = await fx.CreateGymAsync();
        // Base64 decoding skips the spaces, so only the length and the whitespace themselves can be checked.
        var secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" + new string(' ', 3000);
        var body = JsonSerializer.Serialize(new { url = "https://hooks.example.com/padded", secret });
        var message = await (await gym.Owner().PostRawAsync("/api/gym/webhooks", body)).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains("secret", message, StringComparison.Ordinal);
        Assert.Equal(0, await fx.WithDbAsync(db => db.WebhookSubscriptions.CountAsync(s => s.GymId == gym.GymId)));
    }

    [Fact]
    public async Task A_custom_secret_is_accepted_and_signs_deliveries()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var secret = "whsec_" + Convert.ToBase64String(Enumerable.Range(1, 24).Select(i => (byte)i).ToArray());
        var created = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url = receiver.Url("/custom"), secret })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal(secret, created.GetProperty("secret").GetString());
        await (await owner.PostAsync($"/api/gym/webhooks/{created.GetProperty("id").GetGuid()}/test", null)).AssertStatusAsync(HttpStatusCode.OK);
        var request = Assert.Single(receiver.At("/custom"));
        Assert.True(StandardWebhooksVerifier.Verify(secret, request.Headers, request.Body, fx.Clock.GetUtcNow()));
        Assert.True(StandardWebhooksVerifier.VerifyCombatScore(secret, request.Headers, request.Body));
    }

    [Fact]
    public async Task Two_rotations_at_once_each_show_a_secret_that_signs()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var gym = await fx.CreateGymAsync();
        var hook = await gym.CreateWebhookAsync(receiver.Url("/two-rotations"), "member.joined");
        using var owner = gym.Owner();
        // Both read the webhook's secret before either writes (two tabs confirming at once).
        fx.ReadBarrier.Arm("webhook_subscriptions", hook.Id, readers: 2);
        var responses = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => owner.PostAsync($"/api/gym/webhooks/{hook.Id}/rotate-secret", null)));
        var secrets = new List<string>();
        foreach (var response in responses)
        {
            secrets.Add((await response.AssertStatusAsync(HttpStatusCode.OK)).GetProperty("secret").GetString()!);
        }
        await (await owner.PostAsync($"/api/gym/webhooks/{hook.Id}/test", null)).AssertStatusAsync(HttpStatusCode.OK);
        var request = Assert.Single(receiver.At("/two-rotations"));
        Assert.All(secrets, secret => Assert.True(StandardWebhooksVerifier.Verify(secret, request.Headers, request.Body, fx.Clock.GetUtcNow()), secret));
        Assert.False(StandardWebhooksVerifier.Verify(hook.Secret, request.Headers, request.Body, fx.Clock.GetUtcNow()));
    }

    [Fact]
    public async Task Urls_are_stored_with_the_host_as_delivery_will_resolve_it()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        // Ideographic and fullwidth full stops separate labels in IDNA; the stored URL says what delivery will reach.
        var created = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url = "https://hooks\u3002example\uFF0Ecom/x?a=1" })).AssertStatusAsync(HttpStatusCode.Created);
        Assert.Equal("https://hooks.example.com/x?a=1", created.GetProperty("url").GetString());
        var id = created.GetProperty("id").GetGuid();
        var patched = await (await owner.PatchJsonAsync($"/api/gym/webhooks/{id}", new { url = "https://b\u00FCcher\uFF61example/hook" })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("https://xn--bcher-kva.example/hook", patched.GetProperty("url").GetString());
        Assert.Equal("https://xn--bcher-kva.example/hook", await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).Select(s => s.Url).SingleAsync()));
        // An ASCII URL is kept as it was given.
        patched = await (await owner.PatchJsonAsync($"/api/gym/webhooks/{id}", new { url = "https://Hooks.Example.com:8443/Path" })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("https://Hooks.Example.com:8443/Path", patched.GetProperty("url").GetString());
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{id}", new { url = "https://hooks.example.com/a\r\nb" })).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Equal("https://Hooks.Example.com:8443/Path", await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).Select(s => s.Url).SingleAsync()));
    }

    [Fact]
    public async Task Patch_changes_url_events_and_state_and_delete_deactivates()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        var hook = await gym.CreateWebhookAsync("https://hooks.example.com/a", "member.joined");
        var patched = await (await owner.PatchJsonAsync($"/api/gym/webhooks/{hook.Id}", new { url = "https://hooks.example.com/b", events = new[] { "checkin.created" } }))
            .AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal("https://hooks.example.com/b", patched.GetProperty("url").GetString());
        Assert.Equal(["checkin.created"], patched.GetProperty("events").EnumerateArray().Select(e => e.GetString()));
        patched = await (await owner.PatchJsonAsync($"/api/gym/webhooks/{hook.Id}", new { events = Array.Empty<string>() })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Empty(patched.GetProperty("events").EnumerateArray());
        Assert.Equal("https://hooks.example.com/b", patched.GetProperty("url").GetString());
        patched = await (await owner.PatchJsonAsync($"/api/gym/webhooks/{hook.Id}", new { is_active = false })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.False(patched.GetProperty("is_active").GetBoolean());
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{hook.Id}", new { is_active = true })).AssertStatusAsync(HttpStatusCode.OK);

        var deleted = await (await owner.DeleteAsync($"/api/gym/webhooks/{hook.Id}")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.False(deleted.GetProperty("is_active").GetBoolean());
        var list = await (await owner.GetAsync("/api/gym/webhooks")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.False(list.GetProperty("webhooks")[0].GetProperty("is_active").GetBoolean());
        await (await owner.PostAsync($"/api/gym/webhooks/{hook.Id}/test", null)).AssertErrorAsync(HttpStatusCode.Conflict);
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{Guid.NewGuid()}", new { is_active = true })).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await owner.GetAsync("/api/gym/webhooks/not-a-guid")).AssertErrorAsync(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task The_catalog_lists_every_event_with_its_alias_and_a_sample_payload()
    {
        var gym = await fx.CreateGymAsync();
        var catalog = await (await gym.Owner().GetAsync("/api/gym/webhooks/events")).AssertStatusAsync(HttpStatusCode.OK);
        var events = catalog.GetProperty("events").EnumerateArray().ToList();
        Assert.Equal(EventCatalog.All.Select(e => e.Name), events.Select(e => e.GetProperty("name").GetString()));
        var alias = events.Single(e => e.GetProperty("name").GetString() == "payment.successful");
        Assert.Equal("payment.received", alias.GetProperty("alias_of").GetString());
        Assert.Equal(JsonValueKind.Null, events.Single(e => e.GetProperty("name").GetString() == "lead.created").GetProperty("alias_of").ValueKind);
        foreach (var e in events)
        {
            Assert.False(string.IsNullOrWhiteSpace(e.GetProperty("description").GetString()));
            var sample = e.GetProperty("sample");
            Assert.Equal(["id", "event", "gym_id", "data", "timestamp"], sample.EnumerateObject().Select(p => p.Name));
            Assert.Equal(e.GetProperty("name").GetString(), sample.GetProperty("event").GetString());
            Assert.Equal(gym.GymId, sample.GetProperty("gym_id").GetGuid());
            Assert.Equal(JsonValueKind.Object, sample.GetProperty("data").ValueKind);
        }
    }

    [Fact]
    public async Task Another_gyms_webhooks_and_deliveries_are_404()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var a = await fx.CreateGymAsync("Gym A");
        var b = await fx.CreateGymAsync("Gym B");
        var hookA = await a.CreateWebhookAsync(receiver.Url("/a"));
        var hookB = await b.CreateWebhookAsync(receiver.Url("/b"));
        using var ownerA = a.Owner();
        var sent = await (await ownerA.PostAsync($"/api/gym/webhooks/{hookA.Id}/test", null)).AssertStatusAsync(HttpStatusCode.OK);
        var deliveryA = sent.GetProperty("id").GetGuid();

        using var ownerB = b.Owner();
        var listB = await (await ownerB.GetAsync("/api/gym/webhooks")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal([hookB.Id], listB.GetProperty("webhooks").EnumerateArray().Select(w => w.GetProperty("id").GetGuid()));
        await (await ownerB.GetAsync($"/api/gym/webhooks/{hookA.Id}")).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await ownerB.PatchJsonAsync($"/api/gym/webhooks/{hookA.Id}", new { url = receiver.Url("/stolen") })).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await ownerB.PostAsync($"/api/gym/webhooks/{hookA.Id}/test", null)).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await ownerB.PostAsync($"/api/gym/webhooks/{hookA.Id}/rotate-secret", null)).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await ownerB.GetAsync($"/api/gym/webhooks/{hookA.Id}/deliveries")).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await ownerB.GetAsync($"/api/gym/webhooks/{hookA.Id}/deliveries/{deliveryA}")).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await ownerB.GetAsync($"/api/gym/webhooks/{hookB.Id}/deliveries/{deliveryA}")).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await ownerB.PostAsync($"/api/gym/webhooks/{hookB.Id}/deliveries/{deliveryA}/redeliver", null)).AssertErrorAsync(HttpStatusCode.NotFound);
        await (await ownerB.DeleteAsync($"/api/gym/webhooks/{hookA.Id}")).AssertErrorAsync(HttpStatusCode.NotFound);
        var deliveriesB = await (await ownerB.GetAsync($"/api/gym/webhooks/{hookB.Id}/deliveries")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Empty(deliveriesB.GetProperty("deliveries").EnumerateArray());

        // Gym B's events reach only gym B's subscription.
        await b.AddMemberAsync("user_b");
        await receiver.WaitForAsync("/b", 1);
        Assert.Single(receiver.At("/a"));
        Assert.Equal(b.GymId, receiver.At("/b")[0].Json().GetProperty("gym_id").GetGuid());
        Assert.True((await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == hookA.Id))).IsActive);
    }

    [Fact]
    public async Task Webhook_management_requires_credentials()
    {
        using var anonymous = fx.Client();
        await (await anonymous.GetAsync("/api/gym/webhooks")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        await (await anonymous.PostJsonAsync("/api/gym/webhooks", new { url = "https://hooks.example.com/" })).AssertErrorAsync(HttpStatusCode.Unauthorized);
        await (await anonymous.GetAsync("/api/gym/webhooks/events")).AssertErrorAsync(HttpStatusCode.Unauthorized);
    }
}
