using System.Net;
using System.Text.RegularExpressions;
using Gymwire.Tests.Infrastructure;
using Gymwire.Tests.Webhooks;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Dashboard;

/// <summary>Settings → Webhooks through real HTTP: shown-once secrets, antiforgery, confirmation steps and gym isolation.</summary>
public abstract partial class WebhookPagesTests(WebhookFixture fx)
{
    public sealed class Sqlite(SqliteWebhooks f) : WebhookPagesTests(f), IClassFixture<SqliteWebhooks>;
    public sealed class Postgres(PostgresWebhooks f) : WebhookPagesTests(f), IClassFixture<PostgresWebhooks>;

    private async Task<(TestGym Gym, DashboardClient Browser)> SignedInAsync()
    {
        var gym = await fx.CreateGymAsync();
        var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        return (gym, browser);
    }

    private static async Task<(Guid Id, string Secret)> CreateAsync(DashboardClient browser, string url, params string[] events)
    {
        var response = await browser.SubmitAsync("/settings/webhooks/new", [("Input.Url", url), .. events.Select(e => ("Input.Events", e))]);
        var html = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, html);
        var secret = Secret(html);
        Assert.NotEmpty(secret);
        var id = Guid.Parse(Regex.Match(html, "href=\"/settings/webhooks/([0-9a-f-]{36})\"").Groups[1].Value);
        return (id, secret);
    }

    [Fact]
    public async Task New_webhook_shows_its_secret_once_and_no_later_page_has_it()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var (_, browser) = await SignedInAsync();
        using var _ = browser;
        var (id, secret) = await CreateAsync(browser, receiver.Url("/hook"), "member.joined", "payment.successful");

        foreach (var path in new[] { "/settings/webhooks", $"/settings/webhooks/{id}", $"/settings/webhooks/{id}/edit", $"/settings/webhooks/{id}/rotate-secret",
                     $"/settings/webhooks/{id}/delete", "/settings/webhooks/new", "/settings/integrations" })
        {
            var html = await browser.GetPageAsync(path);
            Assert.DoesNotContain(secret, html, StringComparison.Ordinal);
            Assert.DoesNotContain("whsec_", html.Replace("<code>whsec_</code>", "", StringComparison.Ordinal), StringComparison.Ordinal);
        }
        var detail = await browser.GetPageAsync($"/settings/webhooks/{id}");
        Assert.Contains("member.joined, payment.successful", detail, StringComparison.Ordinal);
        Assert.DoesNotContain(fx.Logs.Lines, l => l.Contains(secret, StringComparison.Ordinal));

        // The test send signs with the secret that was shown.
        var test = await browser.SubmitAsync($"/settings/webhooks/{id}?handler=Test", ("TestEvent", "payment.successful"));
        var result = await test.Content.ReadAsStringAsync();
        Assert.Contains("Test delivered.", result, StringComparison.Ordinal);
        var request = (await receiver.WaitForAsync("/hook", 1)).Single();
        Assert.Equal("payment.successful", request.Header("X-CombatScore-Event"));
        Assert.True(StandardWebhooksVerifier.VerifyCombatScore(secret, request.Headers, request.Body));
        Assert.True(StandardWebhooksVerifier.Verify(secret, request.Headers, request.Body, fx.Clock.GetUtcNow()));
    }

    [Fact]
    public async Task Custom_secret_is_accepted_and_a_bad_one_is_explained()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var bad = await browser.SubmitAsync("/settings/webhooks/new", ("Input.Url", "https://hooks.example.com/a"), ("Input.Secret", "not-a-secret"));
        Assert.Equal(HttpStatusCode.OK, bad.StatusCode);
        Assert.Contains("The secret must start with &#x27;whsec_&#x27;", await bad.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var custom = "whsec_" + Convert.ToBase64String(new byte[32]);
        var ok = await browser.SubmitAsync("/settings/webhooks/new", ("Input.Url", "https://hooks.example.com/b"), ("Input.Secret", custom));
        Assert.Equal(custom, Secret(await ok.Content.ReadAsStringAsync()));
        Assert.Equal(1, await fx.WithDbAsync(db => db.WebhookSubscriptions.CountAsync(s => s.GymId == gym.GymId)));
    }

    [Fact]
    public async Task Rotate_confirms_then_shows_the_new_secret_only_in_that_response()
    {
        var (_, browser) = await SignedInAsync();
        using var _ = browser;
        var (id, first) = await CreateAsync(browser, "https://hooks.example.com/rotate");
        Assert.Contains("Rotate the signing secret?", await browser.GetPageAsync($"/settings/webhooks/{id}/rotate-secret"), StringComparison.Ordinal);
        var response = await browser.SubmitAsync($"/settings/webhooks/{id}/rotate-secret");
        var html = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var second = Secret(html);
        Assert.NotEqual(first, second);
        Assert.Contains("signed with both the old and the new secret", html, StringComparison.Ordinal);
        Assert.DoesNotContain(second, await browser.GetPageAsync($"/settings/webhooks/{id}/rotate-secret"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Edit_disable_enable_and_delete_after_confirmation()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var (id, _) = await CreateAsync(browser, "https://hooks.example.com/old", "member.joined");

        var edit = await browser.SubmitAsync($"/settings/webhooks/{id}/edit", ("Input.Url", "https://hooks.example.com/new"), ("Input.Events", "lead.created"), ("Input.Events", "contract.signed"));
        Assert.Equal(HttpStatusCode.Redirect, edit.StatusCode);
        var hook = await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == id));
        Assert.Equal("https://hooks.example.com/new", hook.Url);
        Assert.Equal(["lead.created", "contract.signed"], hook.Events);

        var badUrl = await browser.SubmitAsync($"/settings/webhooks/{id}/edit", ("Input.Url", "ftp://nope"));
        Assert.Contains("The endpoint URL must be an absolute https:// URL", await badUrl.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync($"/settings/webhooks/{id}?handler=Disable")).StatusCode);
        Assert.False(await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).Select(s => s.IsActive).SingleAsync()));
        Assert.Contains(">Disabled<", await browser.GetPageAsync($"/settings/webhooks/{id}"), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync($"/settings/webhooks/{id}?handler=Enable")).StatusCode);
        Assert.True(await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).Select(s => s.IsActive).SingleAsync()));

        Assert.Contains("This cannot be undone", await browser.GetPageAsync($"/settings/webhooks/{id}/delete"), StringComparison.Ordinal);
        var deleted = await browser.SubmitAsync($"/settings/webhooks/{id}/delete");
        Assert.Equal(HttpStatusCode.Redirect, deleted.StatusCode);
        Assert.Equal("/settings/webhooks", deleted.Headers.Location!.OriginalString);
        Assert.Equal(0, await fx.WithDbAsync(db => db.WebhookSubscriptions.CountAsync(s => s.GymId == gym.GymId)));
        Assert.Equal(HttpStatusCode.NotFound, (await browser.GetAsync($"/settings/webhooks/{id}")).StatusCode);
    }

    [Fact]
    public async Task Posts_without_an_antiforgery_token_are_rejected()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var (id, _) = await CreateAsync(browser, "https://hooks.example.com/keep");
        foreach (var path in new[] { "/settings/webhooks/new", $"/settings/webhooks/{id}/delete", $"/settings/webhooks/{id}/rotate-secret",
                     $"/settings/webhooks/{id}/edit", $"/settings/webhooks/{id}?handler=Disable", $"/settings/webhooks/{id}?handler=Test" })
        {
            Assert.Equal(HttpStatusCode.BadRequest, (await browser.PostFormAsync(path, ("Input.Url", "https://hooks.example.com/forged"))).StatusCode);
        }
        var hook = await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.GymId == gym.GymId));
        Assert.Equal("https://hooks.example.com/keep", hook.Url);
        Assert.True(hook.IsActive);
        Assert.Null(hook.PreviousSecretProtected);
    }

    [Fact]
    public async Task Another_gyms_webhook_and_deliveries_are_not_found()
    {
        var other = await fx.CreateGymAsync();
        using var otherBrowser = new DashboardClient(fx);
        await otherBrowser.LoginAsync(other.OwnerEmail, other.OwnerPassword);
        var (theirs, _) = await CreateAsync(otherBrowser, "https://hooks.example.com/theirs");
        await otherBrowser.SubmitAsync($"/settings/webhooks/{theirs}?handler=Test", ("TestEvent", "member.joined"));
        var delivery = await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.SubscriptionId == theirs).Select(d => d.Id).SingleAsync());

        var (_, browser) = await SignedInAsync();
        using var _ = browser;
        foreach (var path in new[] { "", "/edit", "/rotate-secret", "/delete" })
        {
            Assert.Equal(HttpStatusCode.NotFound, (await browser.GetAsync($"/settings/webhooks/{theirs}{path}")).StatusCode);
        }
        var token = DashboardClient.Token(await browser.GetPageAsync("/settings/webhooks/new"));
        (string Path, (string, string)[] Fields)[] posts =
        [
            ($"/settings/webhooks/{theirs}?handler=Test", [("TestEvent", "member.joined")]),
            ($"/settings/webhooks/{theirs}?handler=Disable", []),
            ($"/settings/webhooks/{theirs}?handler=Enable", []),
            ($"/settings/webhooks/{theirs}?handler=Redeliver", [("deliveryId", delivery.ToString())]),
            ($"/settings/webhooks/{theirs}/edit", [("Input.Url", "https://hooks.example.com/hijacked")]),
            ($"/settings/webhooks/{theirs}/rotate-secret", []),
            ($"/settings/webhooks/{theirs}/delete", []),
        ];
        foreach (var (path, fields) in posts)
        {
            var response = await browser.PostFormAsync(path, [.. fields, ("__RequestVerificationToken", token)]);
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"POST {path}: {(int)response.StatusCode}");
        }
        Assert.DoesNotContain("hooks.example.com/theirs", await browser.GetPageAsync("/settings/webhooks"), StringComparison.Ordinal);
        var hook = await fx.WithDbAsync(db => db.WebhookSubscriptions.AsNoTracking().SingleAsync(s => s.Id == theirs));
        Assert.Equal("https://hooks.example.com/theirs", hook.Url);
        Assert.True(hook.IsActive);
        Assert.Null(hook.PreviousSecretProtected);
        Assert.Equal(1, await fx.WithDbAsync(db => db.WebhookAttempts.CountAsync(a => a.DeliveryId == delivery)));
    }

    [Fact]
    public async Task Zapier_tile_shows_active_webhooks_and_an_error_with_the_reason_when_gymwire_disabled_one()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var (id, _) = await CreateAsync(browser, "https://hooks.example.com/zap");
        var tile = await browser.GetPageAsync("/settings/integrations/automation");
        Assert.Contains("<span class=\"badge connected\">Connected</span>", tile, StringComparison.Ordinal);
        Assert.Contains("1 active webhook", tile, StringComparison.Ordinal);

        await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).ExecuteUpdateAsync(s => s
            .SetProperty(x => x.IsActive, false).SetProperty(x => x.DisabledReason, "The endpoint answered 410 Gone").SetProperty(x => x.DisabledAt, DateTime.UtcNow)));
        var integrations = await browser.GetPageAsync("/settings/integrations");
        Assert.Contains("<span class=\"badge error\">Error</span>", integrations, StringComparison.Ordinal);
        Assert.Contains("The webhook to hooks.example.com was disabled by Gymwire: The endpoint answered 410 Gone.", integrations, StringComparison.Ordinal);
        Assert.Contains("Disabled by Gymwire", await browser.GetPageAsync($"/settings/webhooks/{id}"), StringComparison.Ordinal);
        Assert.Equal(gym.GymId, await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).Select(s => s.GymId).SingleAsync()));
    }

    [GeneratedRegex("value=\"(whsec_[^\"]+)\"")]
    private static partial Regex SecretPattern();

    /// <summary>The shown secret, HTML-decoded (Razor encodes '+' and '=' in attributes); empty when the page has none.</summary>
    private static string Secret(string html) => WebUtility.HtmlDecode(SecretPattern().Match(html).Groups[1].Value);
}
