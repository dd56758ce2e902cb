using System.Net;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Dashboard;

public abstract class DashboardAuthTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : DashboardAuthTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : DashboardAuthTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task Api_still_answers_401_json_and_never_redirects()
    {
        await fx.CreateGymAsync();
        using var client = fx.Client();
        var response = await client.GetAsync("/api/gym/members");
        await response.AssertErrorAsync(HttpStatusCode.Unauthorized);
        Assert.Null(response.Headers.Location);
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
    }

    [Fact]
    public async Task Dashboard_cookie_does_not_authenticate_the_api()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var response = await browser.GetAsync("/api/me");
        await response.AssertErrorAsync(HttpStatusCode.Unauthorized);
        Assert.Null(response.Headers.Location);
    }

    [Fact]
    public async Task Pages_redirect_to_login_when_signed_out()
    {
        await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        var response = await browser.GetAsync("/settings/integrations");
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/login?returnUrl=%2Fsettings%2Fintegrations", response.Headers.Location!.PathAndQuery);
    }

    [Fact]
    public async Task Login_sets_an_httponly_lax_session_cookie_and_opens_the_integrations()
    {
        var gym = await fx.CreateGymAsync("Cookie Gym");
        using var browser = new DashboardClient(fx);
        var response = await browser.SubmitAsync("/login", ("Input.Email", gym.OwnerEmail), ("Input.Password", gym.OwnerPassword));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/settings/integrations", response.Headers.Location!.OriginalString);
        var setCookie = response.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("gymwire_session=", StringComparison.Ordinal));
        Assert.Contains("httponly", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=lax", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("secure", setCookie.Replace("httponly", "", StringComparison.OrdinalIgnoreCase), StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("expires", setCookie, StringComparison.OrdinalIgnoreCase); // a browser-session cookie

        var html = await browser.GetPageAsync("/settings/integrations");
        foreach (var tile in new[] { "Payments", "SMS", "Email", "Accounting export", "Zapier / Make webhooks" })
        {
            Assert.Contains($">{tile}</h2>", html, StringComparison.Ordinal);
        }
        Assert.Contains("Cookie Gym", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Each_tile_configures_on_its_own_page_and_unknown_integrations_are_404()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var html = await browser.GetPageAsync("/settings/integrations");
        foreach (var key in new[] { "payments", "sms", "email", "accounting", "automation" })
        {
            Assert.Contains("Not Connected", await browser.GetPageAsync($"/settings/integrations/{key}"), StringComparison.Ordinal);
        }
        foreach (var key in new[] { "payments", "sms", "email", "accounting" })
        {
            Assert.Contains($"href=\"/settings/integrations/{key}\"", html, StringComparison.Ordinal);
        }
        // Zapier and Make connect with webhooks (or API keys): that tile configures on the Webhooks page.
        Assert.Matches("href=\"/settings/webhooks\"\\s+aria-label=\"Configure Zapier / Make webhooks\"", html);
        Assert.Equal(HttpStatusCode.NotFound, (await browser.GetAsync("/settings/integrations/nope")).StatusCode);
    }

    [Fact]
    public async Task Return_url_is_followed_only_when_local()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        var token = DashboardClient.Token(await browser.GetPageAsync("/login"));
        var response = await browser.PostFormAsync("/login?returnUrl=https%3A%2F%2Fevil.example%2F",
            ("Input.Email", gym.OwnerEmail), ("Input.Password", gym.OwnerPassword), ("__RequestVerificationToken", token));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/settings/integrations", response.Headers.Location!.OriginalString);
    }

    [Fact]
    public async Task Wrong_password_shows_an_error_and_signs_nobody_in()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        var response = await browser.SubmitAsync("/login", ("Input.Email", gym.OwnerEmail), ("Input.Password", "wrong-password-1"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("Invalid email or password.", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(response.Headers.TryGetValues("Set-Cookie", out var cookies) && cookies.Any(c => c.StartsWith("gymwire_session=", StringComparison.Ordinal)));
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync("/settings/integrations")).StatusCode);
        await browser.SubmitAsync("/login", ("Input.Email", gym.OwnerEmail), ("Input.Password", gym.OwnerPassword));
        var logs = string.Join("\n", fx.Logs.Lines);
        Assert.Contains("Dashboard sign-in failed for owner", logs, StringComparison.Ordinal);
        Assert.DoesNotContain("wrong-password-1", logs, StringComparison.Ordinal);
        Assert.DoesNotContain(gym.OwnerPassword, logs, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Repeated_wrong_passwords_lock_the_account()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        for (var i = 0; i < 10; i++)
        {
            await browser.SubmitAsync("/login", ("Input.Email", gym.OwnerEmail), ("Input.Password", "wrong-password-1"));
        }
        var response = await browser.SubmitAsync("/login", ("Input.Email", gym.OwnerEmail), ("Input.Password", gym.OwnerPassword));
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter?.Delta);
        Assert.Contains("Too many attempts, try again in", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_cookie_captured_before_logout_is_refused_after_it()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var captured = browser.Cookies.GetCookieHeader(fx.BaseAddress);
        Assert.Equal(HttpStatusCode.OK, (await Replay(captured, "/settings/integrations")).StatusCode);

        Assert.Equal(HttpStatusCode.Redirect, (await browser.SubmitAsync("/logout")).StatusCode);
        var replayed = await Replay(captured, "/settings/integrations");
        Assert.Equal(HttpStatusCode.Redirect, replayed.StatusCode);
        Assert.Equal("/login", replayed.Headers.Location!.AbsolutePath);
    }

    [Fact]
    public async Task Dashboard_sessions_end_at_their_absolute_lifetime_however_active()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        // Active every 8 hours (inside the 12-hour sliding expiry) for a week: Auth:DashboardSessionLifetime (7 days) still ends it.
        for (var elapsed = TimeSpan.FromHours(8); elapsed < TimeSpan.FromDays(7); elapsed += TimeSpan.FromHours(8))
        {
            fx.Clock.Advance(TimeSpan.FromHours(8));
            await browser.GetPageAsync("/settings/integrations");
        }
        fx.Clock.Advance(TimeSpan.FromHours(8));
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync("/settings/integrations")).StatusCode);
    }

    [Fact]
    public async Task Changing_the_password_in_the_dashboard_ends_the_other_sessions_and_keeps_this_one()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        using var otherBrowser = new DashboardClient(fx);
        await otherBrowser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);

        var wrong = await browser.SubmitAsync("/settings/security?handler=Password", ("CurrentPassword", "wrong-password-1"), ("NewPassword", "a-new-password-2"));
        Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
        Assert.Contains("current password is incorrect", await wrong.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await otherBrowser.GetPageAsync("/settings/integrations");

        var changed = await browser.SubmitAsync("/settings/security?handler=Password", ("CurrentPassword", gym.OwnerPassword), ("NewPassword", "a-new-password-2"));
        Assert.Equal(HttpStatusCode.OK, changed.StatusCode);
        Assert.Contains("Your password was changed", await changed.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await browser.GetPageAsync("/settings/integrations");
        Assert.Equal(HttpStatusCode.Redirect, (await otherBrowser.GetAsync("/settings/integrations")).StatusCode);
        await (await gym.Owner().GetAsync("/api/me")).AssertErrorAsync(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Sign_out_everywhere_in_the_dashboard_ends_every_session()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        using var otherBrowser = new DashboardClient(fx);
        await otherBrowser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var response = await browser.SubmitAsync("/settings/security?handler=SignOutEverywhere");
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync("/settings/integrations")).StatusCode);
        Assert.Equal(HttpStatusCode.Redirect, (await otherBrowser.GetAsync("/settings/integrations")).StatusCode);
        await (await gym.Owner().GetAsync("/api/me")).AssertErrorAsync(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Return_url_with_non_ascii_characters_signs_in_without_a_500()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        var token = DashboardClient.Token(await browser.GetPageAsync("/login?returnUrl=/%C3%A9"));
        var response = await browser.PostFormAsync("/login?returnUrl=/%C3%A9",
            ("Input.Email", gym.OwnerEmail), ("Input.Password", gym.OwnerPassword), ("__RequestVerificationToken", token));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/%C3%A9", response.Headers.Location!.OriginalString);
        await browser.GetPageAsync("/settings/integrations");
        // Signed in already: the login page sends the owner on, to the same encoded local path.
        var again = await browser.GetAsync("/login?returnUrl=/%C3%A9?x=%C3%BC");
        Assert.Equal(HttpStatusCode.Redirect, again.StatusCode);
        Assert.Equal("/%C3%A9?x=%C3%BC", again.Headers.Location!.OriginalString);
        Assert.Equal("/settings/integrations", (await browser.GetAsync("/login?returnUrl=//evil.example/%C3%A9")).Headers.Location!.OriginalString);
    }

    [Fact]
    public async Task Forwarded_headers_from_an_unconfigured_proxy_are_ignored()
    {
        var gym = await fx.CreateGymAsync();
        var cookies = await ForwardedLogin.SignInAsync(fx, gym, forwardedProto: "https");
        Assert.Contains(cookies, c => c.StartsWith("gymwire_session=", StringComparison.Ordinal));
        Assert.All(cookies, c => Assert.DoesNotContain("; secure", c, StringComparison.OrdinalIgnoreCase));

        using var client = fx.Client();
        client.DefaultRequestHeaders.Add("X-Forwarded-For", "203.0.113.77");
        await (await client.PostJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = "wrong-password-1" })).AssertErrorAsync(HttpStatusCode.Unauthorized);
        Assert.False(await fx.WithDbAsync(db => db.SignInThrottles.AnyAsync(t => t.Subject == "client:203.0.113.77")));
        Assert.True(await fx.WithDbAsync(db => db.SignInThrottles.AnyAsync(t => t.Subject == "client:127.0.0.1")));
    }

    private async Task<HttpResponseMessage> Replay(string cookieHeader, string path)
    {
        using var http = new HttpClient(new HttpClientHandler { UseCookies = false, AllowAutoRedirect = false }) { BaseAddress = fx.BaseAddress };
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Add("Cookie", cookieHeader);
        return await http.SendAsync(request);
    }

    [Fact]
    public async Task A_post_without_its_antiforgery_token_signs_nobody_in_and_goes_back_to_the_form_with_a_message()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        await browser.GetPageAsync("/login"); // has the antiforgery cookie, but the form field is missing
        var response = await browser.PostFormAsync("/login", ("Input.Email", gym.OwnerEmail), ("Input.Password", gym.OwnerPassword));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/login", response.Headers.Location!.OriginalString);
        Assert.False(response.Headers.Contains("Set-Cookie") && response.Headers.GetValues("Set-Cookie").Any(c => c.StartsWith("gymwire_session=", StringComparison.Ordinal)));
        var page = await (await browser.FollowAsync(response)).Content.ReadAsStringAsync();
        Assert.Contains("That form had expired, so nothing was saved.", page, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync("/settings/integrations")).StatusCode);

        // A token that does not match the browser's cookie (replaced since the page was loaded) is as stale as none,
        // and the form keeps its return URL.
        var stale = DashboardClient.Token(await browser.GetPageAsync("/login"));
        using var other = new DashboardClient(fx);
        await other.GetPageAsync("/login");
        response = await other.PostFormAsync("/login?returnUrl=%2Fsettings%2Fwebhooks", ("Input.Email", gym.OwnerEmail), ("Input.Password", gym.OwnerPassword), ("__RequestVerificationToken", stale));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/login?returnUrl=%2Fsettings%2Fwebhooks", response.Headers.Location!.OriginalString);
        Assert.Contains("That form had expired", await (await other.FollowAsync(response)).Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Logout_requires_a_post_with_a_token_and_ends_the_session()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);

        var refused = await browser.PostFormAsync("/logout");
        Assert.Equal(HttpStatusCode.Redirect, refused.StatusCode);
        Assert.Equal("/logout", refused.Headers.Location!.OriginalString);
        await browser.GetPageAsync("/settings/integrations");

        var response = await browser.SubmitAsync("/logout");
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/login", response.Headers.Location!.OriginalString);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync("/settings/integrations")).StatusCode);
    }

    [Fact]
    public async Task Activity_shows_only_the_signed_in_gyms_events_newest_first()
    {
        var mine = await fx.CreateGymAsync();
        var other = await fx.CreateGymAsync();
        using var ownerA = mine.Owner();
        using var ownerB = other.Owner();
        await (await ownerA.PostJsonAsync("/api/gym/members", new { name = "First Member", user_id = "user_first" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await ownerA.PostJsonAsync("/api/gym/leads", new { first_name = "Lena", last_name = "Lead", email = "lena@example.com" })).AssertStatusAsync(HttpStatusCode.Created);
        await (await ownerB.PostJsonAsync("/api/gym/members", new { name = "Other Member", user_id = "user_other" })).AssertStatusAsync(HttpStatusCode.Created);

        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(mine.OwnerEmail, mine.OwnerPassword);
        var html = await browser.GetPageAsync("/activity");
        Assert.Contains("First Member", html, StringComparison.Ordinal);
        Assert.DoesNotContain("Other Member", html, StringComparison.Ordinal);
        var table = html[html.IndexOf("<table", StringComparison.Ordinal)..];
        Assert.True(table.IndexOf("lead.created", StringComparison.Ordinal) < table.IndexOf("member.joined", StringComparison.Ordinal), "newest first");

        var filtered = await browser.GetPageAsync("/activity?type=member.created");
        Assert.Contains("First Member", filtered, StringComparison.Ordinal);
        Assert.DoesNotContain("<code>lead.created</code>", filtered, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Activity_pages_through_older_events()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        for (var i = 0; i < 27; i++)
        {
            await fx.WithDbAsync(async db =>
            {
                db.OutboxEvents.Add(new Gymwire.Features.Events.OutboxEvent
                {
                    Id = Guid.NewGuid(), GymId = gym.GymId, Type = "member.joined", Data = $$"""{"user_id":"user_page_{{i:D2}}"}""", OccurredAt = DateTime.UtcNow,
                });
                return await db.SaveChangesAsync();
            });
        }
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var first = await browser.GetPageAsync("/activity");
        Assert.Contains("user_page_26", first, StringComparison.Ordinal);
        Assert.DoesNotContain("user_page_01", first, StringComparison.Ordinal);
        var older = System.Text.RegularExpressions.Regex.Match(first, "href=\"(/activity\\?before=\\d+)\" rel=\"next\"").Groups[1].Value;
        var second = await browser.GetPageAsync(older);
        Assert.Contains("user_page_01", second, StringComparison.Ordinal);
        Assert.Contains("user_page_00", second, StringComparison.Ordinal);
        Assert.DoesNotContain("user_page_02", second, StringComparison.Ordinal);
        Assert.DoesNotContain("rel=\"next\"", second, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Activity_sorts_by_when_events_happened_not_when_they_were_recorded()
    {
        var gym = await fx.CreateGymAsync();
        var now = fx.Clock.GetUtcNow().UtcDateTime;
        // Recorded in one order, happened in the reverse one (each later record happened a minute earlier), with two
        // events at the same instant at the page boundary.
        for (var i = 0; i < 27; i++)
        {
            var occurred = now - TimeSpan.FromMinutes(i == 25 ? 24 : i);
            await fx.WithDbAsync(async db =>
            {
                db.OutboxEvents.Add(new Gymwire.Features.Events.OutboxEvent
                {
                    Id = Guid.NewGuid(), GymId = gym.GymId, Type = "member.joined", Data = $$"""{"user_id":"user_time_{{i:D2}}"}""", OccurredAt = occurred,
                });
                return await db.SaveChangesAsync();
            });
        }
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        var first = await browser.GetPageAsync("/activity");
        var shown = System.Text.RegularExpressions.Regex.Matches(first, "user_time_(\\d\\d)").Select(m => m.Groups[1].Value).Distinct().ToList();
        // 24 and 25 happened at the same instant: the later record first.
        Assert.Equal([.. Enumerable.Range(0, 24).Select(i => i.ToString("D2", System.Globalization.CultureInfo.InvariantCulture)), "25"], shown);
        var older = System.Text.RegularExpressions.Regex.Match(first, "href=\"(/activity\\?before=\\d+)\" rel=\"next\"").Groups[1].Value;
        var second = await browser.GetPageAsync(older);
        Assert.Equal(["24", "26"], System.Text.RegularExpressions.Regex.Matches(second, "user_time_(\\d\\d)").Select(m => m.Groups[1].Value).Distinct().ToList());
    }

    [Fact]
    public async Task Pages_carry_security_headers_and_load_only_local_assets()
    {
        await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        var response = await browser.GetAsync("/login");
        Assert.Contains("default-src 'none'", response.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        var html = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("http://", html.Replace("http://www.w3.org", "", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.DoesNotContain("https://", html, StringComparison.Ordinal);
        var css = System.Text.RegularExpressions.Regex.Match(html, "href=\"(/assets/dashboard.css\\?v=[0-9a-f]+)\"").Groups[1].Value;
        var sheet = await browser.GetAsync(css);
        Assert.Equal(HttpStatusCode.OK, sheet.StatusCode);
        Assert.Equal("text/css", sheet.Content.Headers.ContentType!.MediaType);
        // The copy buttons' script: a local file, since the CSP allows no inline script.
        var js = System.Text.RegularExpressions.Regex.Match(html, "src=\"(/assets/dashboard.js\\?v=[0-9a-f]+)\"").Groups[1].Value;
        var script = await browser.GetAsync(js);
        Assert.Equal(HttpStatusCode.OK, script.StatusCode);
        Assert.Equal("text/javascript", script.Content.Headers.ContentType!.MediaType);
        Assert.Contains("script-src 'self'", response.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sessions_survive_a_restart_because_keys_are_in_the_database()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        Assert.True(await fx.WithDbAsync(db => db.DataProtectionKeys.AnyAsync()));
        await fx.RestartAsync();
        await browser.GetPageAsync("/settings/integrations");
    }
}
