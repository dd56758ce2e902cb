using System.Net;
using Gymwire.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Gyms;

/// <summary>
/// The dashboard's "Sign in with …" end to end over HTTP, through the real provider: with and without pushed
/// authorization requests, and every way the provider's callback can go wrong (the owner refused at the provider, a state
/// Gymwire never issued, a callback replayed). A callback that does not sign in lands on the login page with a plain
/// message, logs one warning, and creates no session.
/// </summary>
public abstract class OidcBrowserSignInTests(OidcGymwire fx)
{
    public sealed class Sqlite(SqliteOidcGymwire f) : OidcBrowserSignInTests(f), IClassFixture<SqliteOidcGymwire>;
    public sealed class Postgres(PostgresOidcGymwire f) : OidcBrowserSignInTests(f), IClassFixture<PostgresOidcGymwire>;

    private static OidcProvider Provider => OidcProvider.Instance;

    private const string Failed = "Signing in with Test Provider did not complete. Try again.";

    [Fact]
    public async Task An_owner_signs_in_through_a_provider_with_pushed_authorization_requests()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new OidcBrowser(fx.BaseAddress);
        var toProvider = await browser.GetAsync("/login/oidc");
        // The request was pushed to the provider first: the browser carries only its request_uri.
        Assert.Contains("request_uri=", toProvider.Headers.Location!.Query, StringComparison.Ordinal);
        var callback = await browser.SignInAtProviderAsync(toProvider, gym.OwnerEmail);
        await browser.AssertSignedInAsync(callback);
    }

    [Fact]
    public async Task An_owner_signs_in_through_a_provider_without_pushed_authorization_requests()
    {
        var gym = await fx.CreateGymAsync();
        var logs = new TestLogSink();
        await using var server = await StartAsync(logs, $"--Authentication:Oidc:Authority={Provider.NoParIssuer}");
        using var browser = new OidcBrowser(server.Address);
        var toProvider = await browser.GetAsync("/login/oidc");
        var location = toProvider.Headers.Location!;
        Assert.StartsWith(Provider.NoParIssuer + "/auth?", location.ToString(), StringComparison.Ordinal);
        // A plain authorization request, still with PKCE.
        var query = System.Web.HttpUtility.ParseQueryString(location.Query);
        Assert.Null(query["request_uri"]);
        Assert.Equal("S256", query["code_challenge_method"]);
        Assert.False(string.IsNullOrEmpty(query["code_challenge"]));
        Assert.Equal(new Uri(server.Address, "/signin-oidc").ToString(), query["redirect_uri"]);
        var callback = await browser.SignInAtProviderAsync(toProvider, gym.OwnerEmail);
        await browser.AssertSignedInAsync(callback);
        Assert.Contains(logs.Lines, l => l.StartsWith("Information Gymwire.Oidc:", StringComparison.Ordinal) && l.Contains("signed in", StringComparison.Ordinal));
        Assert.DoesNotContain(logs.Lines, l => l.StartsWith("Warning ", StringComparison.Ordinal) || l.StartsWith("Error ", StringComparison.Ordinal));

        // Without PAR the provider sees an unknown redirect URI only when the browser arrives, and answers it there
        // itself: it never sends the browser to a URI it does not know.
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(server.Address, "/login/oidc"));
        request.Headers.Host = $"localhost:{server.Address.Port}";
        var wrong = await browser.SendAsync(request);
        Assert.StartsWith(Provider.NoParIssuer + "/auth?", wrong.Headers.Location!.ToString(), StringComparison.Ordinal);
        var atProvider = await browser.GetAsync(wrong.Headers.Location!.ToString());
        Assert.Equal(HttpStatusCode.BadRequest, atProvider.StatusCode);
        Assert.Contains("redirect_uri", await atProvider.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_owner_who_refuses_at_the_provider_sees_the_login_page_and_is_not_signed_in()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new OidcBrowser(fx.BaseAddress);
        var sessions = await SessionCountAsync(gym);
        var lines = fx.Logs.Lines.Count;
        var callback = await browser.SignInAtProviderAsync(await browser.GetAsync("/login/oidc"), email: null);
        var query = System.Web.HttpUtility.ParseQueryString(callback.Query);
        Assert.Equal("access_denied", query["error"]);
        Assert.False(string.IsNullOrEmpty(query["state"]));

        await browser.AssertRefusedAsync(callback);
        AssertOneWarning(lines, "access_denied");
        Assert.Equal(sessions, await SessionCountAsync(gym));
    }

    [Fact]
    public async Task A_callback_with_a_state_gymwire_never_issued_is_refused()
    {
        var gym = await fx.CreateGymAsync();
        using var browser = new OidcBrowser(fx.BaseAddress);
        // A correlation cookie of a sign-in the browser did start, so only the state is wrong.
        await browser.GetAsync("/login/oidc");
        var sessions = await SessionCountAsync(gym);
        var lines = fx.Logs.Lines.Count;
        await browser.AssertRefusedAsync(new Uri(fx.BaseAddress, "/signin-oidc?code=made-up-code&state=never-issued-state"));
        AssertOneWarning(lines, "not issued by this server");
        Assert.Equal(sessions, await SessionCountAsync(gym));

        // No state at all, and an error with a made-up state: the same.
        lines = fx.Logs.Lines.Count;
        await browser.AssertRefusedAsync(new Uri(fx.BaseAddress, "/signin-oidc?code=made-up-code"));
        AssertOneWarning(lines, "not issued by this server");
        lines = fx.Logs.Lines.Count;
        await browser.AssertRefusedAsync(new Uri(fx.BaseAddress, "/signin-oidc?error=access_denied&state=never-issued-state"));
        AssertOneWarning(lines, "not issued by this server");
        Assert.Equal(sessions, await SessionCountAsync(gym));
    }

    [Fact]
    public async Task A_callback_replayed_after_a_successful_sign_in_signs_nobody_in()
    {
        var gym = await fx.CreateGymAsync();
        Uri callback;
        using (var owner = new OidcBrowser(fx.BaseAddress))
        {
            callback = await owner.SignInAtProviderAsync(await owner.GetAsync("/login/oidc"), gym.OwnerEmail);
            await owner.AssertSignedInAsync(callback);
            var sessions = await SessionCountAsync(gym);

            // The owner's own browser again (its Back button): the sign-in is over, the callback is not accepted twice.
            var lines = fx.Logs.Lines.Count;
            var again = await owner.GetAsync(callback.PathAndQuery);
            Assert.Equal(HttpStatusCode.Redirect, again.StatusCode);
            Assert.Equal("/login?oidc=failed", again.Headers.Location?.OriginalString);
            AssertOneWarning(lines, "replayed");
            Assert.Equal(sessions, await SessionCountAsync(gym));
        }
        // Someone else's browser with the URL (from a log or the history): nothing signs in.
        using var other = new OidcBrowser(fx.BaseAddress);
        var before = await SessionCountAsync(gym);
        var start = fx.Logs.Lines.Count;
        await other.AssertRefusedAsync(callback);
        AssertOneWarning(start, "replayed");
        Assert.Equal(before, await SessionCountAsync(gym));
    }

    [Fact]
    public async Task A_redirect_uri_the_provider_does_not_know_sends_the_owner_back_with_a_warning_naming_it()
    {
        // A proxy that does not pass the Host header on: Gymwire builds its callback URL from the host it was given.
        using var browser = new OidcBrowser(fx.BaseAddress);
        var lines = fx.Logs.Lines.Count;
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(fx.BaseAddress, "/login/oidc"));
        request.Headers.Host = $"localhost:{fx.BaseAddress.Port}";
        var response = await browser.SendAsync(request);
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/login?oidc=failed", response.Headers.Location?.OriginalString);
        AssertOneWarning(lines, "redirect_uri");
        AssertOneWarning(lines, $"http://localhost:{fx.BaseAddress.Port}/signin-oidc");
    }

    /// <summary>One warning by Gymwire.Oidc since line <paramref name="start"/>, saying <paramref name="reason"/>; nothing above Information else.</summary>
    private void AssertOneWarning(int start, string reason)
    {
        var lines = fx.Logs.Lines.Skip(start).ToList();
        var warnings = lines.Where(l => l.StartsWith("Warning ", StringComparison.Ordinal)).ToList();
        Assert.True(warnings.Count == 1, string.Join('\n', warnings));
        var warning = warnings[0];
        Assert.StartsWith("Warning Gymwire.Oidc:", warning, StringComparison.Ordinal);
        Assert.True(warning.Contains(reason, StringComparison.Ordinal), warning);
        fx.Logs.AssertNoErrorsSince(start);
    }

    private Task<int> SessionCountAsync(TestGym gym) =>
        fx.WithDbAsync(db => db.OwnerSessions.CountAsync(s => db.Users.Any(u => u.Id == s.OwnerId && u.GymId == gym.GymId)));

    /// <summary>A second server on the fixture's database, with the provider's settings and <paramref name="settings"/>.</summary>
    private async Task<RunningServer> StartAsync(TestLogSink logs, params string[] settings)
    {
        var builder = GymwireApp.CreateBuilder([.. fx.Arguments(fx.ConnectionString), .. settings], b => b.Logging.AddProvider(logs));
        var app = GymwireApp.Build(builder);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new RunningServer(app, new Uri(address));
    }

    private sealed record RunningServer(WebApplication App, Uri Address) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }
    }

    /// <summary>A browser over HTTP: one cookie jar for Gymwire and the provider (both on 127.0.0.1, as a browser keeps them), redirects followed by hand.</summary>
    private sealed class OidcBrowser(Uri gymwire) : IDisposable
    {
        private readonly HttpClient _http = new(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false });

        public Task<HttpResponseMessage> GetAsync(string pathOrUrl) => _http.GetAsync(new Uri(gymwire, pathOrUrl));

        public Task<HttpResponseMessage> SendAsync(HttpRequestMessage request) => _http.SendAsync(request);

        /// <summary>
        /// Follows Gymwire's redirect to the provider, signs in there as <paramref name="email"/> (or presses Cancel, when
        /// null), and returns the URL on Gymwire the provider sends the browser back to, not yet loaded.
        /// </summary>
        public async Task<Uri> SignInAtProviderAsync(HttpResponseMessage toProvider, string? email)
        {
            Assert.True(toProvider.StatusCode == HttpStatusCode.Redirect, $"GET /login/oidc: {(int)toProvider.StatusCode} {await toProvider.Content.ReadAsStringAsync()}");
            return await OidcProvider.FollowSignInAsync(_http, toProvider, email, next => next.Authority == gymwire.Authority);
        }

        /// <summary>The callback ends in a dashboard session: the integrations page loads.</summary>
        public async Task AssertSignedInAsync(Uri callback)
        {
            var response = await _http.GetAsync(callback);
            Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"callback: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            var complete = response.Headers.Location!.OriginalString;
            Assert.StartsWith("/login/oidc/complete", complete, StringComparison.Ordinal);
            response = await GetAsync(complete);
            Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
            Assert.Equal("/settings/integrations", response.Headers.Location?.OriginalString);
            var page = await GetAsync("/settings/integrations");
            Assert.True(page.StatusCode == HttpStatusCode.OK, $"{(int)page.StatusCode} {page.Headers.Location}");
        }

        /// <summary>The callback lands on the login page, which says so plainly (no stack trace), and nothing is signed in.</summary>
        public async Task AssertRefusedAsync(Uri callback)
        {
            var response = await _http.GetAsync(callback);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"callback: {(int)response.StatusCode} {body}");
            Assert.Equal("/login?oidc=failed", response.Headers.Location?.OriginalString);
            var login = await GetAsync("/login?oidc=failed");
            var html = await login.Content.ReadAsStringAsync();
            Assert.True(login.StatusCode == HttpStatusCode.OK, $"{(int)login.StatusCode} {login.Headers.Location} {html}");
            Assert.Contains(WebUtility.HtmlEncode(Failed), html, StringComparison.Ordinal);
            Assert.DoesNotContain("Exception", html, StringComparison.Ordinal);
            var dashboard = await GetAsync("/settings/integrations");
            Assert.Equal(HttpStatusCode.Redirect, dashboard.StatusCode);
            Assert.Contains("/login", dashboard.Headers.Location?.OriginalString, StringComparison.Ordinal);
        }

        public void Dispose() => _http.Dispose();
    }
}
