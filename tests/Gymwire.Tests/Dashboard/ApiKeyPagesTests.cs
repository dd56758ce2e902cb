using System.Net;
using System.Text.RegularExpressions;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Dashboard;

/// <summary>Settings → API Keys through real HTTP: shown-once keys, antiforgery, and one gym never reaching another's keys.</summary>
public abstract partial class ApiKeyPagesTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : ApiKeyPagesTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : ApiKeyPagesTests(f), IClassFixture<PostgresGymwire>;

    private const string Triggers = "/api/zapier/triggers?type=new_member";

    private async Task<(TestGym Gym, DashboardClient Browser)> SignedInAsync()
    {
        var gym = await fx.CreateGymAsync();
        var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        return (gym, browser);
    }

    private static async Task<string> GenerateAsync(DashboardClient browser, string label, string permissions = "read")
    {
        var response = await browser.FollowAsync(await browser.SubmitAsync("/settings/api-keys/new", ("Input.Label", label), ("Input.Permissions", permissions)));
        var html = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.CacheControl?.NoStore, "a page showing a key is never cached");
        Assert.Contains("will not be shown again", html, StringComparison.Ordinal);
        return KeyPattern().Match(html).Value;
    }

    [Fact]
    public async Task A_key_whose_page_was_never_opened_is_not_shown_to_the_next_owner_signing_in_on_that_browser()
    {
        var (_, browser) = await SignedInAsync();
        using var _ = browser;
        var other = await fx.CreateGymAsync();
        // The redirect to the key's page is never followed (a closed tab), then another gym's owner signs in there.
        var post = await browser.SubmitAsync("/settings/api-keys/new", ("Input.Label", "Left behind"), ("Input.Permissions", "read"));
        Assert.Equal(HttpStatusCode.Redirect, post.StatusCode);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync("/logout")).StatusCode);
        await browser.LoginAsync(other.OwnerEmail, other.OwnerPassword);

        var page = await browser.GetPageAsync("/settings/api-keys/new?created=true");
        Assert.DoesNotMatch(KeyPattern(), page);
        Assert.DoesNotContain("Left behind", page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Generated_key_is_shown_once_after_the_redirect_and_a_reload_neither_shows_it_nor_creates_another()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var post = await browser.SubmitAsync("/settings/api-keys/new", ("Input.Label", "Zapier Integration"), ("Input.Permissions", "read-write"));
        // Post/redirect/get: the POST answers with a redirect that carries nothing of the key.
        Assert.Equal(HttpStatusCode.Redirect, post.StatusCode);
        Assert.Equal("/settings/api-keys/new?created=true", post.Headers.Location!.OriginalString);
        Assert.DoesNotMatch(KeyPattern(), await post.Content.ReadAsStringAsync());
        // The key travels to the next page in TempData, encrypted: never in the clear in a cookie.
        Assert.True(post.Headers.TryGetValues("Set-Cookie", out var cookies));
        Assert.DoesNotContain(cookies, c => KeyPattern().IsMatch(c) || c.Contains("Zapier", StringComparison.Ordinal));
        var response = await browser.GetAsync(post.Headers.Location!.OriginalString);
        var html = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var key = KeyPattern().Match(html).Value;
        Assert.Matches("^cs_[0-9a-f]{64}$", key);
        Assert.Contains("will not be shown again", html, StringComparison.Ordinal);

        // Reloading the page after the redirect shows the key no more and creates no second one.
        var reload = await browser.GetPageAsync("/settings/api-keys/new?created=true");
        Assert.DoesNotContain(key, reload, StringComparison.Ordinal);
        Assert.Contains("The new key was shown once", reload, StringComparison.Ordinal);
        Assert.Equal(1, await fx.WithDbAsync(db => db.ApiKeys.CountAsync(k => k.GymId == gym.GymId)));

        using (var api = fx.Client(key))
        {
            await (await api.GetAsync(Triggers)).AssertStatusAsync(HttpStatusCode.OK);
            await (await api.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "Read", last_name = "Write" })).AssertStatusAsync(HttpStatusCode.Created);
        }

        foreach (var path in new[] { "/settings/api-keys", "/settings/api-keys/new", "/settings/integrations", "/settings/integrations/automation" })
        {
            Assert.DoesNotContain(key, await browser.GetPageAsync(path), StringComparison.Ordinal);
        }
        var list = await browser.GetPageAsync("/settings/api-keys");
        Assert.Contains("Zapier Integration", list, StringComparison.Ordinal);
        Assert.Contains(key[..11] + "…", list, StringComparison.Ordinal);
        Assert.Contains("Read/Write", list, StringComparison.Ordinal);
        Assert.DoesNotContain(fx.Logs.Lines, l => l.Contains(key, StringComparison.Ordinal) || l.Contains(key[3..], StringComparison.Ordinal));
    }

    [Fact]
    public async Task Read_only_key_reads_but_cannot_write()
    {
        var (_, browser) = await SignedInAsync();
        using var _ = browser;
        var key = await GenerateAsync(browser, "Reporting");
        using var api = fx.Client(key);
        await (await api.GetAsync(Triggers)).AssertStatusAsync(HttpStatusCode.OK);
        await (await api.PostJsonAsync("/api/zapier/actions?type=create_lead", new { first_name = "No", last_name = "Write" })).AssertErrorAsync(HttpStatusCode.Forbidden);
        Assert.Contains("Read Only", await browser.GetPageAsync("/settings/api-keys"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Revoke_asks_for_confirmation_then_the_key_gets_401()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var key = await GenerateAsync(browser, "Old App");
        var id = (await fx.WithDbAsync(db => Task.FromResult(db.ApiKeys.Single(k => k.GymId == gym.GymId).Id)));

        var confirm = await browser.GetPageAsync($"/settings/api-keys/{id}/revoke");
        Assert.Contains("stops working immediately", confirm, StringComparison.Ordinal);
        Assert.Contains("The webhooks it created are switched off too", confirm, StringComparison.Ordinal);
        using var api = fx.Client(key);
        await (await api.GetAsync(Triggers)).AssertStatusAsync(HttpStatusCode.OK);

        var response = await browser.SubmitAsync($"/settings/api-keys/{id}/revoke");
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/settings/api-keys", response.Headers.Location!.OriginalString);
        await (await api.GetAsync(Triggers)).AssertErrorAsync(HttpStatusCode.Unauthorized);
        var list = await browser.GetPageAsync("/settings/api-keys");
        Assert.Contains(">Revoked<", list, StringComparison.Ordinal);
        Assert.DoesNotContain($"/settings/api-keys/{id}/revoke", list, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_expired_key_can_be_revoked_and_stays_listed_as_revoked()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        using var owner = gym.Owner();
        var created = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Trial App", scopes = new[] { "read", "write" }, expires_at = fx.Clock.GetUtcNow().UtcDateTime.AddSeconds(2) }))
            .AssertStatusAsync(HttpStatusCode.Created);
        var id = created.GetProperty("id").GetGuid();
        using var api = fx.Client(created.GetProperty("key").GetString()!);
        fx.Clock.Advance(TimeSpan.FromSeconds(2));
        await (await api.GetAsync(Triggers)).AssertErrorAsync(HttpStatusCode.Unauthorized);

        var list = await browser.GetPageAsync("/settings/api-keys");
        Assert.Contains(">Expired<", list, StringComparison.Ordinal);
        Assert.Contains($"href=\"/settings/api-keys/{id}/revoke\" aria-label=\"Revoke Trial App\"", list, StringComparison.Ordinal);
        var confirm = await browser.GetPageAsync($"/settings/api-keys/{id}/revoke");
        Assert.Contains("has expired", confirm, StringComparison.Ordinal);

        var response = await browser.SubmitAsync($"/settings/api-keys/{id}/revoke");
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/settings/api-keys", response.Headers.Location!.OriginalString);
        Assert.Equal(fx.Clock.GetUtcNow().UtcDateTime, await fx.WithDbAsync(db => db.ApiKeys.Where(k => k.Id == id).Select(k => k.RevokedAt).SingleAsync()));
        Assert.Contains(fx.Logs.Lines, l => l.StartsWith($"Information Gymwire.Features.Dashboard.Settings.RevokeApiKeyModel: Dashboard revoked API key {id} of gym {gym.GymId}", StringComparison.Ordinal));
        // Still listed, now as revoked, with nothing more to do; its confirmation page leads back to the list.
        list = await browser.GetPageAsync("/settings/api-keys");
        Assert.Contains("Trial App", list, StringComparison.Ordinal);
        Assert.Contains(">Revoked<", list, StringComparison.Ordinal);
        Assert.DoesNotContain($"/settings/api-keys/{id}/revoke", list, StringComparison.Ordinal);
        Assert.Equal("/settings/api-keys", (await browser.GetAsync($"/settings/api-keys/{id}/revoke")).Headers.Location?.OriginalString);
    }

    [Fact]
    public async Task Revoking_an_expired_key_ends_its_webhooks_as_its_expiry_would_and_leaves_one_the_owner_changed_since()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        using var owner = gym.Owner();
        var created = await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Trial Zap", scopes = new[] { "read", "write" }, expires_at = fx.Clock.GetUtcNow().UtcDateTime.AddSeconds(2) }))
            .AssertStatusAsync(HttpStatusCode.Created);
        var id = created.GetProperty("id").GetGuid();
        using var api = fx.Client(created.GetProperty("key").GetString()!);
        async Task<Guid> HookAsync(string path) => (await (await api.PostJsonAsync("/api/gym/webhooks", new { url = "https://hooks.example.com/" + path, events = new[] { "member.joined" } }))
            .AssertStatusAsync(HttpStatusCode.Created)).GetProperty("id").GetGuid();
        var untouched = await HookAsync("untouched");
        var adopted = await HookAsync("adopted");

        // Revoked after its expiry but before the expiry sweep (every minute) reached it; the owner edited one webhook meanwhile.
        fx.Clock.Advance(TimeSpan.FromSeconds(2));
        await (await owner.PatchJsonAsync($"/api/gym/webhooks/{adopted}", new { events = new[] { "member.joined", "lead.created" } })).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync($"/settings/api-keys/{id}/revoke")).StatusCode);

        var hooks = await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().Where(s => s.GymId == gym.GymId).ToDictionaryAsync(s => s.Id));
        Assert.False(hooks[untouched].IsActive);
        Assert.Contains("'Trial Zap'", hooks[untouched].DisabledReason, StringComparison.Ordinal);
        Assert.True(hooks[adopted].IsActive, "the webhook the owner changed after the key expired is the owner's, as the expiry sweep leaves it");
        // Revoked keys are no longer swept: nothing of the key is left on for a later sweep to find.
        fx.Clock.Advance(Gymwire.Features.ApiKeys.ApiKeyExpiry.Interval);
        Assert.Equal(0, await fx.Services.GetRequiredService<Gymwire.Features.ApiKeys.ApiKeyExpiry>().SweepAsync(CancellationToken.None));
        Assert.True(await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == adopted).Select(s => s.IsActive).SingleAsync()));
    }

    [Fact]
    public async Task Posts_without_an_antiforgery_token_are_rejected()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var key = await GenerateAsync(browser, "Kept");
        var id = await fx.WithDbAsync(db => Task.FromResult(db.ApiKeys.Single(k => k.GymId == gym.GymId).Id));

        // Back to the form with a message; nothing is created or revoked.
        Assert.Equal("/settings/api-keys/new", (await browser.PostFormAsync("/settings/api-keys/new", ("Input.Label", "Forged"), ("Input.Permissions", "read-write"))).Headers.Location?.OriginalString);
        Assert.Equal($"/settings/api-keys/{id}/revoke", (await browser.PostFormAsync($"/settings/api-keys/{id}/revoke")).Headers.Location?.OriginalString);
        Assert.Equal(1, await fx.WithDbAsync(db => Task.FromResult(db.ApiKeys.Count(k => k.GymId == gym.GymId))));
        using var api = fx.Client(key);
        await (await api.GetAsync(Triggers)).AssertStatusAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Another_gyms_key_is_not_found_and_stays_active()
    {
        var other = await fx.CreateGymAsync();
        using var otherOwner = other.Owner();
        var created = await (await otherOwner.PostJsonAsync("/api/gym/api-keys", new { name = "Theirs", scopes = new[] { "read" } })).AssertStatusAsync(HttpStatusCode.Created);
        var theirId = created.GetProperty("id").GetGuid();
        var theirKey = created.GetProperty("key").GetString()!;

        var (_, browser) = await SignedInAsync();
        using var _ = browser;
        Assert.Equal(HttpStatusCode.NotFound, (await browser.GetAsync($"/settings/api-keys/{theirId}/revoke")).StatusCode);
        var token = DashboardClient.Token(await browser.GetPageAsync("/settings/api-keys/new"));
        Assert.Equal(HttpStatusCode.NotFound, (await browser.PostFormAsync($"/settings/api-keys/{theirId}/revoke", ("__RequestVerificationToken", token))).StatusCode);
        Assert.DoesNotContain("Theirs", await browser.GetPageAsync("/settings/api-keys"), StringComparison.Ordinal);
        using var api = fx.Client(theirKey);
        await (await api.GetAsync(Triggers)).AssertStatusAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Zapier_tile_counts_keys_used_recently()
    {
        var (_, browser) = await SignedInAsync();
        using var _ = browser;
        foreach (var key in new[] { await GenerateAsync(browser, "One"), await GenerateAsync(browser, "Two") })
        {
            using var api = fx.Client(key);
            await (await api.GetAsync(Triggers)).AssertStatusAsync(HttpStatusCode.OK);
        }
        await GenerateAsync(browser, "Never used");
        var tile = await browser.GetPageAsync("/settings/integrations/automation");
        Assert.Contains("<span class=\"badge connected\">Connected</span>", tile, StringComparison.Ordinal);
        Assert.Contains("2 API keys used in the last 30 days.", tile, StringComparison.Ordinal);
    }

    [GeneratedRegex("cs_[0-9a-f]{64}")]
    private static partial Regex KeyPattern();
}
