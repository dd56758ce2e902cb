using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Gymwire.Features.Dashboard;
using Gymwire.Tests.Dashboard;
using Gymwire.Tests.Email;
using Gymwire.Tests.Foundation;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Gyms;

/// <summary>"Forgot password" by email (a sealed, single-use, expiring link) and the operator's <c>gymwire reset-password</c>.</summary>
public abstract partial class PasswordResetTests(SmtpFixture fx)
{
    public sealed class Sqlite(SqliteSmtp f) : PasswordResetTests(f), IClassFixture<SqliteSmtp>;
    public sealed class Postgres(PostgresSmtp f) : PasswordResetTests(f), IClassFixture<PostgresSmtp>;

    private const string NewPassword = "a-brand-new-password";

    private async Task<string> RequestLinkAsync(string email)
    {
        using var browser = new DashboardClient(fx);
        // The mail goes out after the page answers.
        var mail = fx.Smtp.NextAsync(m => m.To.Mailboxes.Any(a => a.Address == email));
        var response = await browser.SubmitAsync("/forgot-password", ("Email", email));
        var html = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("a link to reset its password is on its way", html, StringComparison.Ordinal);
        var message = await mail.WaitAsync(TimeSpan.FromSeconds(30));
        var link = LinkPattern().Match(message.TextBody ?? "");
        Assert.True(link.Success, message.TextBody);
        Assert.StartsWith(fx.BaseAddress.GetLeftPart(UriPartial.Authority) + "/reset-password?token=", link.Value, StringComparison.Ordinal);
        return new Uri(link.Value).PathAndQuery;
    }

    private static async Task<HttpResponseMessage> ResetAsync(DashboardClient browser, string path, string password)
    {
        var page = await browser.GetAsync(path);
        var html = await page.Content.ReadAsStringAsync();
        if (page.StatusCode != HttpStatusCode.OK)
        {
            return page;
        }
        var token = WebUtility.HtmlDecode(Regex.Match(html, "name=\"token\" value=\"([^\"]+)\"").Groups[1].Value);
        return await browser.PostFormAsync("/reset-password",
            ("token", token), ("NewPassword", password), ("__RequestVerificationToken", DashboardClient.Token(html)));
    }

    private async Task AssertLoginAsync(string email, string password, HttpStatusCode expected)
    {
        using var api = fx.Client();
        var login = await api.PostAsJsonAsync("/api/auth/login", new { email, password });
        Assert.Equal(expected, login.StatusCode);
    }

    [Fact]
    public async Task A_reset_link_sets_a_new_password_once_and_ends_every_session()
    {
        var gym = await fx.CreateGymAsync();
        var path = await RequestLinkAsync(gym.OwnerEmail);
        using var browser = new DashboardClient(fx);
        var done = await ResetAsync(browser, path, NewPassword);
        Assert.Equal(HttpStatusCode.Redirect, done.StatusCode);
        Assert.Equal("/login?reset=done", done.Headers.Location?.OriginalString);
        await AssertLoginAsync(gym.OwnerEmail, NewPassword, HttpStatusCode.OK);
        await AssertLoginAsync(gym.OwnerEmail, gym.OwnerPassword, HttpStatusCode.Unauthorized);
        // The session token from before the reset is over.
        using (var old = gym.Owner())
        {
            await (await old.GetAsync("/api/me")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        }

        // Used once: the same link is refused, by GET and by POST, and changes nothing.
        var again = await browser.GetAsync(path);
        Assert.Equal(HttpStatusCode.BadRequest, again.StatusCode);
        Assert.Contains("invalid, expired or already used", await again.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var token = Uri.UnescapeDataString(path[(path.IndexOf('=') + 1)..]);
        var html = await (await browser.GetAsync("/forgot-password")).Content.ReadAsStringAsync();
        var replay = await browser.PostFormAsync("/reset-password", ("token", token), ("NewPassword", "yet-another-password"),
            ("__RequestVerificationToken", DashboardClient.Token(html)));
        Assert.Equal(HttpStatusCode.BadRequest, replay.StatusCode);
        await AssertLoginAsync(gym.OwnerEmail, NewPassword, HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_reset_link_expires_and_a_forged_or_altered_one_is_refused()
    {
        var gym = await fx.CreateGymAsync();
        var path = await RequestLinkAsync(gym.OwnerEmail);
        using var browser = new DashboardClient(fx);

        foreach (var forged in new[]
                 {
                     "/reset-password?token=not-a-token",
                     "/reset-password",
                     path[..^6] + (path.EndsWith("AAAAAA", StringComparison.Ordinal) ? "BBBBBB" : "AAAAAA"),
                 })
        {
            var response = await browser.GetAsync(forged);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        }

        fx.Clock.Advance(TimeSpan.FromMinutes(61));
        var expired = await ResetAsync(browser, path, NewPassword);
        Assert.Equal(HttpStatusCode.BadRequest, expired.StatusCode);
        await AssertLoginAsync(gym.OwnerEmail, gym.OwnerPassword, HttpStatusCode.OK);

        // A newer link works; an older one dies with the password it was for.
        var newer = await RequestLinkAsync(gym.OwnerEmail);
        var older = await RequestLinkAsync(gym.OwnerEmail);
        Assert.Equal(HttpStatusCode.Redirect, (await ResetAsync(browser, newer, NewPassword)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await ResetAsync(browser, older, "third-password-here")).StatusCode);
    }

    [Fact]
    public async Task An_unknown_email_gets_the_same_answer_and_no_mail()
    {
        var before = fx.Smtp.Messages.Count;
        using var browser = new DashboardClient(fx);
        var response = await browser.SubmitAsync("/forgot-password", ("Email", $"nobody-{Guid.NewGuid():N}@example.com"));
        Assert.Contains("a link to reset its password is on its way", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(before, fx.Smtp.Messages.Count);
    }

    [Fact]
    public async Task The_page_answers_a_known_email_before_its_link_is_mailed()
    {
        fx.Clock.Advance(ForgotPasswordModel.Window);
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        var (arrived, release) = fx.Smtp.HoldNextMail();
        var mail = fx.Smtp.NextAsync(m => m.To.Mailboxes.Any(a => a.Address == gym.OwnerEmail));
        try
        {
            // Answered while the SMTP server holds the mail: a known address takes no longer than an unknown one.
            var response = await browser.SubmitAsync("/forgot-password", ("Email", gym.OwnerEmail)).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await arrived.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.False(mail.IsCompleted);
        }
        finally
        {
            release.TrySetResult();
        }
        Assert.Contains("/reset-password?token=", (await mail.WaitAsync(TimeSpan.FromSeconds(30))).TextBody, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_wants_a_login_gets_the_same_answer_for_a_known_and_an_unknown_email()
    {
        fx.Clock.Advance(ForgotPasswordModel.Window);
        var gym = await fx.CreateGymAsync();
        using var browser = new DashboardClient(fx);
        Interlocked.Exchange(ref fx.Smtp.RequireLoginNext, 1);
        var refused = fx.Smtp.NextRefusalAsync();
        try
        {
            foreach (var email in new[] { gym.OwnerEmail, $"nobody-{Guid.NewGuid():N}@example.com" })
            {
                var response = await browser.SubmitAsync("/forgot-password", ("Email", email));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Contains("a link to reset its password is on its way", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
            // The owner's link, sent after the answer, met the 530.
            await refused.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(0, fx.Smtp.RequireLoginNext);
            Assert.DoesNotContain(fx.Smtp.Messages, m => m.To.Mailboxes.Any(a => a.Address == gym.OwnerEmail));
        }
        finally
        {
            Interlocked.Exchange(ref fx.Smtp.RequireLoginNext, 0);
        }
    }

    [Fact]
    public async Task Reset_links_are_limited_per_email_address_whether_or_not_it_has_an_account()
    {
        // A window later every earlier request of this class has aged out.
        fx.Clock.Advance(ForgotPasswordModel.Window);
        var gym = await fx.CreateGymAsync();
        for (var i = 0; i < ForgotPasswordModel.PerEmail; i++)
        {
            await RequestLinkAsync(gym.OwnerEmail);
        }
        var before = fx.Smtp.Messages.Count;
        using var browser = new DashboardClient(fx);
        // The same address in other letters is the same address.
        var refused = await browser.SubmitAsync("/forgot-password", ("Email", gym.OwnerEmail.ToUpperInvariant()));
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("3600", refused.Headers.GetValues("Retry-After").Single());
        Assert.Contains("Too many reset requests. Try again in 60 minutes.", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(before, fx.Smtp.Messages.Count);

        // An address without an account is limited alike, so the limit tells nothing about accounts.
        var unknown = $"nobody-{Guid.NewGuid():N}@example.com";
        for (var i = 0; i < ForgotPasswordModel.PerEmail; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await browser.SubmitAsync("/forgot-password", ("Email", unknown))).StatusCode);
        }
        Assert.Equal(HttpStatusCode.TooManyRequests, (await browser.SubmitAsync("/forgot-password", ("Email", unknown))).StatusCode);

        // An hour later the owner may ask again.
        fx.Clock.Advance(ForgotPasswordModel.Window);
        await RequestLinkAsync(gym.OwnerEmail);
    }

    [Fact]
    public async Task Reset_requests_are_limited_per_client_address()
    {
        fx.Clock.Advance(ForgotPasswordModel.Window);
        using var browser = new DashboardClient(fx);
        for (var i = 0; i < ForgotPasswordModel.PerClient; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await browser.SubmitAsync("/forgot-password", ("Email", $"nobody-{Guid.NewGuid():N}@example.com"))).StatusCode);
        }
        var refused = await browser.SubmitAsync("/forgot-password", ("Email", $"nobody-{Guid.NewGuid():N}@example.com"));
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Contains("Too many reset requests.", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        fx.Clock.Advance(ForgotPasswordModel.Window);
    }

    [Fact]
    public async Task The_cli_sets_a_given_password_or_prints_a_new_one()
    {
        var gym = await fx.CreateGymAsync();
        var (code, stdout, stderr) = await Cli.RunAsync(fx, "reset-password", "--email", gym.OwnerEmail);
        Assert.True(code == 0, stderr);
        var printed = JsonDocument.Parse(stdout).RootElement.GetProperty("new_password").GetString()!;
        await AssertLoginAsync(gym.OwnerEmail, printed, HttpStatusCode.OK);
        await AssertLoginAsync(gym.OwnerEmail, gym.OwnerPassword, HttpStatusCode.Unauthorized);

        (code, stdout, stderr) = await Cli.RunAsync(fx, "reset-password", "--email", gym.OwnerEmail, "--password", NewPassword);
        Assert.True(code == 0, stderr);
        Assert.DoesNotContain(NewPassword, stdout, StringComparison.Ordinal);
        await AssertLoginAsync(gym.OwnerEmail, NewPassword, HttpStatusCode.OK);

        (code, _, stderr) = await Cli.RunAsync(fx, "reset-password", "--email", "nobody@example.com");
        Assert.Equal(1, code);
        Assert.Contains("No owner has the email", stderr, StringComparison.Ordinal);
        (code, _, stderr) = await Cli.RunAsync(fx, "reset-password", "--email", gym.OwnerEmail, "--password", "short");
        Assert.Equal(1, code);
        await AssertLoginAsync(gym.OwnerEmail, NewPassword, HttpStatusCode.OK);
    }

    [GeneratedRegex(@"http://\S+/reset-password\?token=\S+")]
    private static partial Regex LinkPattern();
}

/// <summary>Without SMTP the page explains the CLI instead of offering a form that could not work.</summary>
public sealed class ForgotPasswordWithoutEmailTests(SqliteGymwire fx) : IClassFixture<SqliteGymwire>
{
    [Fact]
    public async Task The_page_explains_the_cli_reset()
    {
        using var browser = new DashboardClient(fx);
        var html = await browser.GetPageAsync("/forgot-password");
        Assert.Contains("cannot send email", html, StringComparison.Ordinal);
        Assert.Contains("gymwire reset-password --email", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<form", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Browsers_get_an_html_404_and_api_clients_keep_the_json_error()
    {
        using var browser = new DashboardClient(fx);
        using var html = new HttpRequestMessage(HttpMethod.Get, new Uri(fx.BaseAddress, "/no/such/page"));
        html.Headers.Accept.ParseAdd("text/html,application/xhtml+xml,*/*;q=0.8");
        using var client = fx.Client();
        var page = await client.SendAsync(html);
        Assert.Equal(HttpStatusCode.NotFound, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("Page not found", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.NotNull(page.Headers.GetValues("Content-Security-Policy").Single());

        await (await client.GetAsync("/no/such/page")).AssertErrorAsync(HttpStatusCode.NotFound);
        using var api = new HttpRequestMessage(HttpMethod.Get, new Uri(fx.BaseAddress, "/api/no-such-thing"));
        api.Headers.Accept.ParseAdd("text/html");
        await (await client.SendAsync(api)).AssertErrorAsync(HttpStatusCode.NotFound);
        using var json = new HttpRequestMessage(HttpMethod.Get, new Uri(fx.BaseAddress, "/no/such/page"));
        json.Headers.Accept.ParseAdd("application/json");
        await (await client.SendAsync(json)).AssertErrorAsync(HttpStatusCode.NotFound);
    }
}
