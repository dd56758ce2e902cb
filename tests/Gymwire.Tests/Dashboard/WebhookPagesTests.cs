using System.Net;
using System.Text.RegularExpressions;
using Gymwire.Features.Dashboard.Settings;
using Gymwire.Features.Webhooks;
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
        var response = await browser.FollowAsync(await browser.SubmitAsync("/settings/webhooks/new", [("Input.Url", url), .. events.Select(e => ("Input.Events", e))]));
        var html = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, html);
        var secret = Secret(html);
        Assert.NotEmpty(secret);
        var id = Guid.Parse(Regex.Match(html, "href=\"/settings/webhooks/([0-9a-f-]{36})\"").Groups[1].Value);
        return (id, secret);
    }

    private void AssertLogged(string start) =>
        Assert.True(fx.Logs.Lines.Any(l => l.StartsWith(start, StringComparison.Ordinal)), $"no log line starts with: {start}");

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
        // Pages with forms are not cached, as antiforgery wants: it has nothing to override, and no warning to log.
        var page = await browser.GetAsync($"/settings/webhooks/{id}");
        Assert.True(page.Headers.CacheControl is { NoCache: true, NoStore: true }, $"Cache-Control: {page.Headers.CacheControl}");
        Assert.DoesNotContain(fx.Logs.Lines, l => l.Contains("Microsoft.AspNetCore.Antiforgery", StringComparison.Ordinal) && l.StartsWith("Warning ", StringComparison.Ordinal));
        Assert.DoesNotContain(fx.Logs.Lines, l => l.Contains(secret, StringComparison.Ordinal));

        // The test send signs with the secret that was shown. It redirects to its result (post/redirect/get): a reload
        // shows the result again and sends nothing.
        var test = await browser.SubmitAsync($"/settings/webhooks/{id}?handler=Test", ("TestEvent", "payment.successful"));
        Assert.Equal(HttpStatusCode.Redirect, test.StatusCode);
        var resultPath = test.Headers.Location!.OriginalString;
        Assert.StartsWith($"/settings/webhooks/{id}?test=", resultPath, StringComparison.Ordinal);
        Assert.Contains("Test delivered.", await browser.GetPageAsync(resultPath), StringComparison.Ordinal);
        Assert.Contains("Test delivered.", await browser.GetPageAsync(resultPath), StringComparison.Ordinal);
        Assert.DoesNotContain("Test delivered.", await browser.GetPageAsync($"/settings/webhooks/{id}"), StringComparison.Ordinal);
        var request = Assert.Single(receiver.At("/hook"));
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
        var ok = await browser.FollowAsync(await browser.SubmitAsync("/settings/webhooks/new", ("Input.Url", "https://hooks.example.com/b"), ("Input.Secret", custom)));
        Assert.Equal(custom, Secret(await ok.Content.ReadAsStringAsync()));
        Assert.Equal(1, await fx.WithDbAsync(db => db.WebhookSubscriptions.CountAsync(s => s.GymId == gym.GymId)));
    }

    [Fact]
    public async Task Rotate_confirms_then_shows_the_new_secret_once_and_until_when_the_old_one_signs()
    {
        var (_, browser) = await SignedInAsync();
        using var _ = browser;
        var (id, first) = await CreateAsync(browser, "https://hooks.example.com/rotate");
        Assert.Contains("Rotate the signing secret?", await browser.GetPageAsync($"/settings/webhooks/{id}/rotate-secret"), StringComparison.Ordinal);
        var post = await browser.SubmitAsync($"/settings/webhooks/{id}/rotate-secret");
        Assert.Equal($"/settings/webhooks/{id}/rotate-secret?rotated=true", post.Headers.Location!.OriginalString);
        var response = await browser.FollowAsync(post);
        var html = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var second = Secret(html);
        Assert.NotEqual(first, second);
        var until = await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).Select(s => s.PreviousSecretExpiresAt).SingleAsync());
        Assert.Contains($"Until <strong>{WebhookViews.Time(until!.Value)}</strong>, requests are signed with both the old and the new secret", html, StringComparison.Ordinal);
        Assert.Contains($"The previous secret still signs until {WebhookViews.Time(until.Value)}.", html, StringComparison.Ordinal);
        // A reload neither shows the secret nor rotates again, and still says until when the old one signs.
        var reload = await browser.GetPageAsync($"/settings/webhooks/{id}/rotate-secret?rotated=true");
        Assert.DoesNotContain(second, reload, StringComparison.Ordinal);
        Assert.Contains($"The previous secret still signs until <strong>{WebhookViews.Time(until.Value)}</strong>", reload, StringComparison.Ordinal);
        Assert.DoesNotContain(second, await browser.GetPageAsync($"/settings/webhooks/{id}/rotate-secret"), StringComparison.Ordinal);
        Assert.Equal(until, await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).Select(s => s.PreviousSecretExpiresAt).SingleAsync()));
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
        // Audited like create, rotate, disable and delete: the id, never the URL (it may carry credentials).
        AssertLogged($"Information Gymwire.Features.Dashboard.Settings.EditWebhookModel: Dashboard edited webhook {id} of gym {gym.GymId}");
        Assert.DoesNotContain(fx.Logs.Lines, l => l.Contains("hooks.example.com/new", StringComparison.Ordinal));

        var badUrl = await browser.SubmitAsync($"/settings/webhooks/{id}/edit", ("Input.Url", "ftp://nope"));
        // This server allows plain http (Webhooks:AllowHttp), so the message says so.
        Assert.Contains("The endpoint URL must be an absolute https:// or http:// URL", await badUrl.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync($"/settings/webhooks/{id}?handler=Disable")).StatusCode);
        Assert.False(await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).Select(s => s.IsActive).SingleAsync()));
        AssertLogged($"Information Gymwire.Features.Dashboard.Settings.WebhookModel: Dashboard disabled webhook {id} of gym {gym.GymId}");
        Assert.Contains(">Disabled by owner<", await browser.GetPageAsync($"/settings/webhooks/{id}"), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync($"/settings/webhooks/{id}?handler=Enable")).StatusCode);
        Assert.True(await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).Select(s => s.IsActive).SingleAsync()));
        AssertLogged($"Information Gymwire.Features.Dashboard.Settings.WebhookModel: Dashboard enabled webhook {id} of gym {gym.GymId}");

        Assert.Contains("This cannot be undone", await browser.GetPageAsync($"/settings/webhooks/{id}/delete"), StringComparison.Ordinal);
        var deleted = await browser.SubmitAsync($"/settings/webhooks/{id}/delete");
        Assert.Equal(HttpStatusCode.Redirect, deleted.StatusCode);
        Assert.Equal("/settings/webhooks", deleted.Headers.Location!.OriginalString);
        Assert.Equal(0, await fx.WithDbAsync(db => db.WebhookSubscriptions.CountAsync(s => s.GymId == gym.GymId)));
        Assert.Equal(HttpStatusCode.NotFound, (await browser.GetAsync($"/settings/webhooks/{id}")).StatusCode);
    }

    [Fact]
    public async Task Redeliver_and_retry_all_failed_are_audited_by_ids_only()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var url = receiver.Url("/audited-hook");
        var (id, _) = await CreateAsync(browser, url, "lead.created");
        // Two delivered deliveries, one for each Redeliver, and one given up on, as the worker would have left them.
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var (onDeliveryPage, onWebhookPage, givenUp) = (Guid.CreateVersion7(), Guid.CreateVersion7(), Guid.CreateVersion7());
        await fx.WithDbAsync(async db =>
        {
            foreach (var (d, status) in new[] { (onDeliveryPage, DeliveryStatus.Delivered), (onWebhookPage, DeliveryStatus.Delivered), (givenUp, DeliveryStatus.Undeliverable) })
            {
                db.WebhookDeliveries.Add(new WebhookDelivery
                {
                    Id = d, GymId = gym.GymId, SubscriptionId = id, Event = "lead.created", Status = status, AttemptCount = 1, CreatedAt = now.AddHours(-1),
                    Payload = WebhookPayloads.Build(d, "lead.created", gym.GymId, "{}", now.AddHours(-1)),
                });
            }
            return await db.SaveChangesAsync();
        });

        Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync($"/settings/webhooks/{id}/deliveries/{onDeliveryPage}?handler=Redeliver")).StatusCode);
        AssertLogged($"Information Gymwire.Features.Dashboard.Settings.DeliveryModel: Dashboard redelivered delivery {onDeliveryPage} of webhook {id} of gym {gym.GymId}");
        Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync($"/settings/webhooks/{id}?handler=Redeliver", ("deliveryId", onWebhookPage.ToString()))).StatusCode);
        AssertLogged($"Information Gymwire.Features.Dashboard.Settings.WebhookModel: Dashboard redelivered delivery {onWebhookPage} of webhook {id} of gym {gym.GymId}");
        // "Since" two days back in the form's wall-clock time: before the deliveries whatever the gym's time zone.
        var since = now.AddDays(-2).ToString("yyyy-MM-ddTHH:mm", System.Globalization.CultureInfo.InvariantCulture);
        var retried = await browser.SubmitAsync($"/settings/webhooks/{id}?handler=RetryFailed", ("since", since));
        Assert.Equal($"/settings/webhooks/{id}?retried=1#activity", retried.Headers.Location?.OriginalString);
        AssertLogged($"Information Gymwire.Features.Dashboard.Settings.WebhookModel: Dashboard retried 1 failed deliveries of webhook {id} of gym {gym.GymId} since ");
        // The endpoint's URL may carry credentials: never in these lines.
        Assert.DoesNotContain(fx.Logs.Lines, l => l.Contains("Gymwire.Features.Dashboard", StringComparison.Ordinal) && l.Contains("audited-hook", StringComparison.Ordinal));
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
            // Back to the form with a message; nothing changes.
            var refused = await browser.PostFormAsync(path, ("Input.Url", "https://hooks.example.com/forged"));
            Assert.Equal(path, refused.Headers.Location?.OriginalString);
            var page = await browser.FollowAsync(refused);
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Contains("That form had expired", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
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
    public async Task Forms_posted_for_a_webhook_deleted_meanwhile_get_the_html_not_found_page()
    {
        var (_, browser) = await SignedInAsync();
        using var _ = browser;
        var (id, _) = await CreateAsync(browser, "https://hooks.example.com/gone");
        await browser.SubmitAsync($"/settings/webhooks/{id}?handler=Test", ("TestEvent", "member.joined"));
        var delivery = await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.SubscriptionId == id).Select(d => d.Id).SingleAsync());
        // The token of the pages still open in this tab, then the webhook deleted in another.
        var token = DashboardClient.Token(await browser.GetPageAsync($"/settings/webhooks/{id}"));
        Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync($"/settings/webhooks/{id}/delete")).StatusCode);

        browser.AcceptHtml();
        var logStart = fx.Logs.Lines.Count;
        (string Path, (string, string)[] Fields)[] posts =
        [
            ($"/settings/webhooks/{id}?handler=Test", [("TestEvent", "member.joined")]),
            ($"/settings/webhooks/{id}?handler=Enable", []),
            ($"/settings/webhooks/{id}?handler=Disable", []),
            ($"/settings/webhooks/{id}?handler=Redeliver", [("deliveryId", delivery.ToString())]),
            ($"/settings/webhooks/{id}/edit", [("Input.Url", "https://hooks.example.com/gone"), ("Input.AllEvents", "true")]),
            ($"/settings/webhooks/{id}/rotate-secret", []),
            ($"/settings/webhooks/{id}/delete", []),
            ($"/settings/webhooks/{id}/deliveries/{delivery}?handler=Redeliver", []),
        ];
        foreach (var (path, fields) in posts)
        {
            var response = await browser.PostFormAsync(path, [.. fields, ("__RequestVerificationToken", token)]);
            var html = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"POST {path}: {(int)response.StatusCode} {html}");
            Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
            Assert.Contains("Page not found", html, StringComparison.Ordinal);
        }
        fx.Logs.AssertNoErrorsSince(logStart);
    }

    [Fact]
    public async Task A_request_a_page_has_no_handler_for_is_405_with_the_methods_it_has()
    {
        var (_, browser) = await SignedInAsync();
        using var _ = browser;
        var (id, _) = await CreateAsync(browser, "https://hooks.example.com/methods");
        var token = DashboardClient.Token(await browser.GetPageAsync($"/settings/webhooks/{id}"));
        var logStart = fx.Logs.Lines.Count;
        (HttpMethod Method, string Path, string Allow)[] requests =
        [
            (HttpMethod.Post, "/settings/integrations/zapier", "GET, HEAD"),
            (HttpMethod.Patch, "/settings/integrations/zapier", "GET, HEAD"),
            (HttpMethod.Post, $"/settings/webhooks/{id}", "GET, HEAD"),
            (HttpMethod.Post, $"/settings/webhooks/{id}?handler=Bogus", "GET, HEAD"),
            (HttpMethod.Put, $"/settings/webhooks/{id}?handler=Test", "GET, HEAD, POST"),
            (HttpMethod.Delete, $"/settings/webhooks/{id}", "GET, HEAD"),
            (HttpMethod.Options, $"/settings/webhooks/{id}", "GET, HEAD"),
        ];
        foreach (var (method, path, allow) in requests)
        {
            // With a valid antiforgery token, as the page's own forms send it, so that the request gets past that check.
            using var request = new HttpRequestMessage(method, new Uri(fx.BaseAddress, path))
            {
                Content = new FormUrlEncodedContent([KeyValuePair.Create("__RequestVerificationToken", token), KeyValuePair.Create("TestEvent", "member.joined")]),
            };
            request.Headers.Add("RequestVerificationToken", token);
            var response = await browser.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.MethodNotAllowed, $"{method} {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            Assert.Equal(allow, string.Join(", ", response.Content.Headers.Allow));
        }
        fx.Logs.AssertNoErrorsSince(logStart);
        Assert.Empty(await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.SubscriptionId == id).ToListAsync()));
        Assert.True(await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).Select(s => s.IsActive).SingleAsync()));
    }

    [Fact]
    public async Task Zapier_tile_shows_active_webhooks_and_an_error_with_the_reason_when_gymwire_disabled_one()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var (id, _) = await CreateAsync(browser, "https://hooks.example.com/zap");
        // A webhook that has delivered nothing yet connects nothing; one that delivered an event recently does.
        Assert.Contains("<span class=\"badge not-connected\">Not Connected</span>", await browser.GetPageAsync("/settings/integrations/automation"), StringComparison.Ordinal);
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        await fx.WithDbAsync(async db =>
        {
            var d = Guid.CreateVersion7();
            db.WebhookDeliveries.Add(new Gymwire.Features.Webhooks.WebhookDelivery
            {
                Id = d, GymId = gym.GymId, SubscriptionId = id, Event = "lead.created", Status = "delivered", AttemptCount = 1, CreatedAt = now,
                Payload = Gymwire.Features.Webhooks.WebhookPayloads.Build(d, "lead.created", gym.GymId, "{}", now),
            });
            return await db.SaveChangesAsync();
        });
        var tile = await browser.GetPageAsync("/settings/integrations/automation");
        Assert.Contains("<span class=\"badge connected\">Connected</span>", tile, StringComparison.Ordinal);
        Assert.Contains("1 webhook in use", tile, StringComparison.Ordinal);

        await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).ExecuteUpdateAsync(s => s
            .SetProperty(x => x.IsActive, false).SetProperty(x => x.DisabledReason, "The endpoint answered 410 Gone").SetProperty(x => x.DisabledAt, DateTime.UtcNow)));
        var integrations = await browser.GetPageAsync("/settings/integrations");
        Assert.Contains("<span class=\"badge error\">Error</span>", integrations, StringComparison.Ordinal);
        Assert.Contains("The webhook to hooks.example.com/zap was disabled by Gymwire: The endpoint answered 410 Gone.", integrations, StringComparison.Ordinal);
        Assert.Contains("Disabled by Gymwire", await browser.GetPageAsync($"/settings/webhooks/{id}"), StringComparison.Ordinal);
        Assert.Equal(gym.GymId, await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).Select(s => s.GymId).SingleAsync()));
    }

    [Fact]
    public async Task Zapier_tile_tells_apart_webhooks_disabled_on_one_host_by_path_and_by_when_they_were_added_even_in_one_minute()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var ids = new List<Guid>();
        using (var owner = gym.Owner())
        {
            foreach (var url in new[] { "https://hooks.example.com/catch/1", "https://hooks.example.com/catch/2", "https://hooks.example.com/catch/1", "https://hooks.example.com/catch/1" })
            {
                var created = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url, events = new[] { "member.joined" } })).AssertStatusAsync(HttpStatusCode.Created);
                ids.Add(created.GetProperty("id").GetGuid());
            }
        }
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        // The last two to one URL within one minute (a Zap that subscribed twice, say).
        DateTime[] added = [new(2026, 3, 1, 9, 30, 0, DateTimeKind.Utc), new(2026, 3, 2, 9, 30, 0, DateTimeKind.Utc), new(2026, 3, 3, 17, 5, 0, DateTimeKind.Utc),
            new(2026, 3, 3, 17, 5, 40, DateTimeKind.Utc)];
        for (var i = 0; i < ids.Count; i++)
        {
            var (id, at) = (ids[i], added[i]);
            await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).ExecuteUpdateAsync(s => s.SetProperty(x => x.CreatedAt, at)
                .SetProperty(x => x.IsActive, false).SetProperty(x => x.DisabledReason, "The endpoint answered 410 Gone").SetProperty(x => x.DisabledAt, now)));
        }

        var html = WebUtility.HtmlDecode(await browser.GetPageAsync("/settings/integrations"));
        // One line and one link per webhook, each naming its own.
        string[] names = ["hooks.example.com/catch/1 (added 2026-03-01 09:30 UTC)", "hooks.example.com/catch/2", "hooks.example.com/catch/1 (added 2026-03-03 17:05 UTC, 1 of 2)",
            "hooks.example.com/catch/1 (added 2026-03-03 17:05 UTC, 2 of 2)"];
        var links = Regex.Matches(html, "<a href=\"/settings/webhooks/([0-9a-f-]{36})\">([^<]*)</a>").Select(m => (Id: Guid.Parse(m.Groups[1].Value), Text: m.Groups[2].Value));
        Assert.Equal(ids.Zip(names, (id, name) => (id, $"Disabled: {name}")), links);
        var reason = Regex.Match(html, "<p class=\"tile-reason\">(The webhook [^<]*)</p>").Groups[1].Value;
        Assert.Equal(string.Join(" ", names.Select(n => $"The webhook to {n} was disabled by Gymwire: The endpoint answered 410 Gone.")), reason);
    }

    [Fact]
    public async Task A_refused_choice_of_no_events_stays_only_chosen_so_saving_again_subscribes_to_nothing_new()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        // New: the refusal shows "Only the events I choose" still chosen; saving the form as shown is refused again.
        const string url = "https://hooks.example.com/nothing-chosen";
        var refused = await (await browser.SubmitAsync("/settings/webhooks/new", ("Input.Url", url), ("Input.AllEvents", "false"))).Content.ReadAsStringAsync();
        Assert.Contains("Choose at least one event, or All events.", refused, StringComparison.Ordinal);
        Assert.Equal("false", ChosenRadio(refused));
        var again = await browser.PostFormAsync("/settings/webhooks/new", ("Input.Url", url), ("Input.AllEvents", ChosenRadio(refused)), ("__RequestVerificationToken", DashboardClient.Token(refused)));
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Contains("Choose at least one event, or All events.", await again.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(await fx.WithDbAsync(db => db.WebhookSubscriptions.AnyAsync(s => s.GymId == gym.GymId && s.Url == url)));

        // Edit: the same, and the stored events are kept.
        var (id, _) = await CreateAsync(browser, "https://hooks.example.com/kept", "member.joined");
        var edit = $"/settings/webhooks/{id}/edit";
        var editRefused = await (await browser.SubmitAsync(edit, ("Input.Url", "https://hooks.example.com/kept"), ("Input.AllEvents", "false"))).Content.ReadAsStringAsync();
        Assert.Contains("Choose at least one event, or All events.", editRefused, StringComparison.Ordinal);
        Assert.Equal("false", ChosenRadio(editRefused));
        var editAgain = await browser.PostFormAsync(edit, ("Input.Url", "https://hooks.example.com/kept"), ("Input.AllEvents", ChosenRadio(editRefused)),
            ("__RequestVerificationToken", DashboardClient.Token(editRefused)));
        Assert.Equal(HttpStatusCode.OK, editAgain.StatusCode);
        Assert.Equal(["member.joined"], await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).Select(s => s.Events).SingleAsync()));
    }

    /// <summary>The value of the checked "Events" radio: "true" for All events, "false" for only the chosen ones.</summary>
    private static string ChosenRadio(string html) =>
        Regex.Match(html, "name=\"Input.AllEvents\" value=\"(true|false)\" checked=\"checked\"").Groups[1].Value;

    [Fact]
    public async Task A_failing_webhook_is_told_apart_from_a_working_one_to_the_same_url_on_the_tile_and_in_the_banner()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var ids = new List<Guid>();
        using (var owner = gym.Owner())
        {
            foreach (var url in new[] { "https://hooks.example.com/catch/1", "https://hooks.example.com/catch/1" })
            {
                var created = await (await owner.PostJsonAsync("/api/gym/webhooks", new { url, events = new[] { "member.joined" } })).AssertStatusAsync(HttpStatusCode.Created);
                ids.Add(created.GetProperty("id").GetGuid());
            }
        }
        DateTime[] added = [new(2026, 3, 1, 9, 30, 0, DateTimeKind.Utc), new(2026, 3, 2, 9, 30, 0, DateTimeKind.Utc)];
        var failingSince = new DateTime(2026, 3, 4, 8, 0, 0, DateTimeKind.Utc);
        for (var i = 0; i < ids.Count; i++)
        {
            var (id, at) = (ids[i], added[i]);
            await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).ExecuteUpdateAsync(s => s.SetProperty(x => x.CreatedAt, at)));
        }
        // Only the second one fails; the first, on the same URL, works.
        await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == ids[1]).ExecuteUpdateAsync(s => s.SetProperty(x => x.FailingSince, failingSince)));

        var html = WebUtility.HtmlDecode(await browser.GetPageAsync("/settings/integrations"));
        Assert.Contains($"<a href=\"/settings/webhooks/{ids[1]}\">Failing: hooks.example.com/catch/1 (added 2026-03-02 09:30 UTC)</a>", html, StringComparison.Ordinal);
        Assert.Contains("Deliveries to hooks.example.com/catch/1 (added 2026-03-02 09:30 UTC) have been failing since", html, StringComparison.Ordinal);
        // The banner names the failing webhook by host and path, not by the host alone.
        var banner = Regex.Match(html, "<div class=\"alert error failing-banner\"[^>]*>(.*?)</div>", RegexOptions.Singleline).Groups[1].Value;
        Assert.Contains($"<a href=\"/settings/webhooks/{ids[1]}\">hooks.example.com/catch/1</a>", banner, StringComparison.Ordinal);
    }

    [GeneratedRegex("value=\"(whsec_[^\"]+)\"")]
    private static partial Regex SecretPattern();

    /// <summary>The shown secret, HTML-decoded (Razor encodes '+' and '=' in attributes); empty when the page has none.</summary>
    [Fact]
    public async Task Disable_asks_first_pauses_queued_retries_keeping_their_error_and_enable_resumes_them()
    {
        await using var receiver = await TestReceiver.StartAsync();
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var (id, _) = await CreateAsync(browser, receiver.Url("/paused"), "lead.created");
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        var delivery = Guid.CreateVersion7();
        await fx.WithDbAsync(async db =>
        {
            db.WebhookDeliveries.Add(new Gymwire.Features.Webhooks.WebhookDelivery
            {
                Id = delivery, GymId = gym.GymId, SubscriptionId = id, Event = "lead.created",
                Payload = Gymwire.Features.Webhooks.WebhookPayloads.Build(delivery, "lead.created", gym.GymId, "{}", now),
                Status = "retrying", AttemptCount = 1, CreatedAt = now, LastAttemptAt = now, LastStatusCode = 503, LastError = "HTTP 503 (first failure)",
                NextAttemptAt = now.AddMinutes(5),
            });
            return await db.SaveChangesAsync();
        });

        // The webhook page's Disable is a link to a confirmation that says what happens to the queue.
        Assert.Contains($"href=\"/settings/webhooks/{id}/disable\"", await browser.GetPageAsync($"/settings/webhooks/{id}"), StringComparison.Ordinal);
        var confirm = await browser.GetPageAsync($"/settings/webhooks/{id}/disable");
        Assert.Contains("Disable this webhook?", confirm, StringComparison.Ordinal);
        Assert.Contains("1 delivery is waiting to be sent or retried. They are paused", confirm, StringComparison.Ordinal);
        Assert.True(await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).Select(s => s.IsActive).SingleAsync()));

        var disabled = await browser.SubmitAsync($"/settings/webhooks/{id}/disable");
        Assert.Equal($"/settings/webhooks/{id}", disabled.Headers.Location!.OriginalString);
        var page = await (await browser.FollowAsync(disabled)).Content.ReadAsStringAsync();
        Assert.Contains("Webhook disabled. 1 queued delivery is paused and resume when you enable it.", page, StringComparison.Ordinal);
        Assert.Contains("Paused while disabled", page, StringComparison.Ordinal);
        // The message is shown once.
        Assert.DoesNotContain("Webhook disabled.", await browser.GetPageAsync($"/settings/webhooks/{id}"), StringComparison.Ordinal);
        var paused = await fx.WithDbAsync(db => db.WebhookDeliveries.AsNoTracking().SingleAsync(d => d.Id == delivery));
        Assert.Equal(("retrying", 1, 503, "HTTP 503 (first failure)", (DateTime?)null), (paused.Status, paused.AttemptCount, paused.LastStatusCode, paused.LastError, paused.NextAttemptAt));

        // Its retry time passes: nothing is sent, and the original error stays.
        fx.Clock.Advance(TimeSpan.FromMinutes(10));
        fx.WakeWorker();
        await Task.Yield();
        Assert.Empty(receiver.At("/paused"));
        Assert.Equal("HTTP 503 (first failure)", await fx.WithDbAsync(db => db.WebhookDeliveries.Where(d => d.Id == delivery).Select(d => d.LastError).SingleAsync()));

        var enabled = await browser.SubmitAsync($"/settings/webhooks/{id}?handler=Enable");
        Assert.Contains("Webhook enabled. Paused deliveries are being sent now.", await (await browser.FollowAsync(enabled)).Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var sent = (await receiver.WaitForAsync("/paused", 1)).Single();
        Assert.Equal(delivery.ToString(), sent.Header("webhook-id"));
        var done = await fx.WaitForDeliveryAsync(id, d => d.Id == delivery && d.Status == "delivered", "the resumed retry delivered");
        Assert.Equal((2, 200), (done.AttemptCount, done.LastStatusCode));
    }

    [Fact]
    public async Task A_second_webhook_to_the_same_url_is_warned_about_and_created_only_when_confirmed()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var (first, _) = await CreateAsync(browser, "https://hooks.example.com/same");
        var warned = await browser.SubmitAsync("/settings/webhooks/new", ("Input.Url", "https://hooks.example.com/same"));
        Assert.Equal(HttpStatusCode.OK, warned.StatusCode);
        var html = await warned.Content.ReadAsStringAsync();
        Assert.Contains("already has <a href=\"/settings/webhooks/" + first + "\">a webhook sending to this URL</a>", html, StringComparison.Ordinal);
        Assert.Equal(1, await fx.WithDbAsync(db => db.WebhookSubscriptions.CountAsync(s => s.GymId == gym.GymId)));
        var confirmed = await browser.SubmitAsync("/settings/webhooks/new", ("Input.Url", "https://hooks.example.com/same"), ("Input.ConfirmDuplicate", "true"));
        Assert.Equal(HttpStatusCode.Redirect, confirmed.StatusCode);
        Assert.Equal(2, await fx.WithDbAsync(db => db.WebhookSubscriptions.CountAsync(s => s.GymId == gym.GymId)));

        // Editing another webhook to that URL warns too; keeping a webhook's own URL does not.
        var (other, _) = await CreateAsync(browser, "https://hooks.example.com/other");
        Assert.Contains("a webhook sending to this URL", await (await browser.SubmitAsync($"/settings/webhooks/{other}/edit", ("Input.Url", "https://hooks.example.com/same"))).Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync($"/settings/webhooks/{other}/edit", ("Input.Url", "https://hooks.example.com/other"), ("Input.Events", "lead.created"))).StatusCode);
    }

    [Fact]
    public async Task Event_picker_groups_events_offers_all_events_and_folds_gympoint_names_into_their_event()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var form = await browser.GetPageAsync("/settings/webhooks/new");
        Assert.Contains("<label for=\"events-all\">All events</label>", form, StringComparison.Ordinal);
        foreach (var group in new[] { "Members", "Memberships", "Payments", "Training and attendance", "Classes", "Leads", "Contracts" })
        {
            Assert.Contains($"<legend>{group}</legend>", form, StringComparison.Ordinal);
        }
        // GymPoint's names are not events of their own in the picker: each is an option under its event.
        Assert.DoesNotContain("<code>member.created</code></label><span class=\"hint\"", form, StringComparison.Ordinal);
        Assert.Contains("Name it <code>member.created</code> instead, for a receiver that expects that name", form, StringComparison.Ordinal);
        Assert.DoesNotContain("GymPoint", form, StringComparison.Ordinal);

        // Checking the alias under member.joined subscribes to the alias name only; payment.received stays canonical.
        var (id, _) = await CreateAsync(browser, "https://hooks.example.com/alias", "member.joined", "member.created", "payment.received");
        Assert.Equal(["member.created", "payment.received"], await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).Select(s => s.Events).SingleAsync()));
        var edit = await browser.GetPageAsync($"/settings/webhooks/{id}/edit");
        Assert.Matches("id=\"event-member-joined\"[^>]*checked", edit);
        Assert.Matches("id=\"event-member-created\"[^>]*checked", edit);

        // "Only the events I choose" with none chosen is explained, not saved as all events.
        var none = await browser.SubmitAsync("/settings/webhooks/new", ("Input.Url", "https://hooks.example.com/none"), ("Input.AllEvents", "false"));
        Assert.Contains("Choose at least one event, or All events.", await none.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var all = await browser.FollowAsync(await browser.SubmitAsync("/settings/webhooks/new", ("Input.Url", "https://hooks.example.com/all"), ("Input.AllEvents", "true")));
        Assert.Equal(HttpStatusCode.OK, all.StatusCode);
        Assert.Empty(await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.GymId == gym.GymId && s.Url == "https://hooks.example.com/all").Select(s => s.Events).SingleAsync()));
    }

    [Fact]
    public async Task Saving_an_edit_keeps_an_api_subscription_to_an_event_and_its_alias_delivered_under_the_event()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        // Through the API a subscription may name both; it is delivered under the event's own name.
        var id = await fx.WithDbAsync(async db =>
        {
            var hook = new WebhookSubscription
            {
                Id = Guid.NewGuid(), GymId = gym.GymId, Url = "https://hooks.example.com/both", Events = ["member.joined", "member.created"],
                IsActive = true, SecretProtected = "x", CreatedAt = DateTime.UtcNow, UpdatedAt = DateTime.UtcNow,
            };
            db.WebhookSubscriptions.Add(hook);
            await db.SaveChangesAsync();
            return hook.Id;
        });
        Assert.Equal("member.joined", WebhookPayloads.SubscribedName(["member.joined", "member.created"], "member.joined"));
        var edit = await browser.GetPageAsync($"/settings/webhooks/{id}/edit");
        Assert.Matches("id=\"event-member-joined\"[^>]*checked", edit);
        Assert.DoesNotMatch("id=\"event-member-created\"[^>]*checked", edit);

        // The owner changes only the URL and saves the events as the form shows them.
        var saved = await browser.SubmitAsync($"/settings/webhooks/{id}/edit", ("Input.Url", "https://hooks.example.com/moved"), ("Input.AllEvents", "false"), ("Input.Events", "member.joined"));
        Assert.Equal(HttpStatusCode.Redirect, saved.StatusCode);
        var events = await fx.WithDbAsync(db => db.WebhookSubscriptions.Where(s => s.Id == id).Select(s => s.Events).SingleAsync());
        Assert.Equal("member.joined", WebhookPayloads.SubscribedName(events, "member.joined"));
    }

    [Fact]
    public async Task New_webhook_redirects_so_a_reload_creates_no_second_one_and_the_secret_is_shown_once()
    {
        var (gym, browser) = await SignedInAsync();
        using var _ = browser;
        var post = await browser.SubmitAsync("/settings/webhooks/new", ("Input.Url", "https://hooks.example.com/prg"));
        Assert.Equal("/settings/webhooks/new?created=true", post.Headers.Location!.OriginalString);
        var secret = Secret(await (await browser.FollowAsync(post)).Content.ReadAsStringAsync());
        Assert.StartsWith("whsec_", secret, StringComparison.Ordinal);
        var reload = await browser.GetPageAsync("/settings/webhooks/new?created=true");
        Assert.DoesNotContain(secret, reload, StringComparison.Ordinal);
        Assert.Contains("The signing secret was shown once", reload, StringComparison.Ordinal);
        Assert.Equal(1, await fx.WithDbAsync(db => db.WebhookSubscriptions.CountAsync(s => s.GymId == gym.GymId)));
    }

    [Fact]
    public async Task A_secret_whose_page_was_never_opened_is_not_shown_to_the_next_owner_signing_in_on_that_browser()
    {
        var (_, browser) = await SignedInAsync();
        using var _ = browser;
        var other = await fx.CreateGymAsync();
        // The redirect to the secret's page is never followed (a closed tab), then another gym's owner signs in there.
        var post = await browser.SubmitAsync("/settings/webhooks/new", ("Input.Url", "https://hooks.example.com/left-behind"));
        Assert.Equal(HttpStatusCode.Redirect, post.StatusCode);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync("/logout")).StatusCode);
        await browser.LoginAsync(other.OwnerEmail, other.OwnerPassword);

        var page = await browser.GetPageAsync("/settings/webhooks/new?created=true");
        Assert.DoesNotContain("whsec_", page, StringComparison.Ordinal);
        Assert.DoesNotContain("left-behind", page, StringComparison.Ordinal);
    }

    private static string Secret(string html) => WebUtility.HtmlDecode(SecretPattern().Match(html).Groups[1].Value);
}
