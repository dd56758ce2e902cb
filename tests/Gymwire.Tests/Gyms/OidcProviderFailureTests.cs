using System.Net;
using Gymwire.Tests.Foundation;
using Gymwire.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Gymwire.Tests.Gyms;

/// <summary>
/// OpenID Connect settings the server cannot use stop it from starting, naming the setting; a provider that refuses the
/// client or cannot be reached while the browser is sent to it lands the owner on the login page, logged as a warning.
/// </summary>
public abstract class OidcProviderFailureTests(OidcGymwire fx)
{
    public sealed class Sqlite(SqliteOidcGymwire f) : OidcProviderFailureTests(f), IClassFixture<SqliteOidcGymwire>;
    public sealed class Postgres(PostgresOidcGymwire f) : OidcProviderFailureTests(f), IClassFixture<PostgresOidcGymwire>;

    private static OidcProvider Provider => OidcProvider.Instance;

    [Fact]
    public async Task A_bad_or_half_configured_provider_stops_serve_with_one_error_line_naming_the_setting()
    {
        (string Setting, string[] Arguments)[] cases =
        [
            // Without RequireHttpsMetadata=false an http:// authority failed every request, /healthz included.
            ("Authentication:Oidc:Authority", ["--Authentication:Oidc:Authority=http://127.0.0.1:9", "--Authentication:Oidc:ClientId=gymwire", "--Authentication:Oidc:ClientSecret=s"]),
            ("Authentication:Oidc:Authority", ["--Authentication:Oidc:Authority=not-a-url", "--Authentication:Oidc:ClientId=gymwire", "--Authentication:Oidc:ClientSecret=s"]),
            // Half a configuration used to leave sign-in silently off.
            ("Authentication:Oidc:ClientId", ["--Authentication:Oidc:Authority=https://accounts.example.com"]),
            ("Authentication:Oidc:Authority", ["--Authentication:Oidc:ClientId=gymwire", "--Authentication:Oidc:ClientSecret=s"]),
            ("Authentication:Oidc:ClientSecret", ["--Authentication:Oidc:Authority=https://accounts.example.com", "--Authentication:Oidc:ClientId=gymwire"]),
        ];
        foreach (var (setting, arguments) in cases)
        {
            var (code, _, stderr) = await Cli.RunAsync(fx, ["serve", "--urls=http://127.0.0.1:0", .. arguments]);
            Assert.True(code == 2, $"{string.Join(' ', arguments)}: exit {code}, {stderr}");
            Assert.StartsWith("error: invalid configuration: ", stderr.Trim(), StringComparison.Ordinal);
            Assert.Contains(setting, stderr, StringComparison.Ordinal);
            Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
    }

    [Fact]
    public async Task A_wrong_client_secret_sends_the_owner_back_to_the_login_page_with_a_warning()
    {
        const string secret = "not-the-client-secret-8d41";
        var (response, logs) = await ChallengeAsync($"--Authentication:Oidc:ClientSecret={secret}");
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/login?oidc=failed", response.Headers.Location?.OriginalString);
        var warning = Assert.Single(logs.Lines, l => l.StartsWith("Warning Gymwire.Oidc:", StringComparison.Ordinal));
        Assert.Contains(Provider.Issuer, warning, StringComparison.Ordinal);
        Assert.Contains("invalid_client", warning, StringComparison.Ordinal);
        Assert.DoesNotContain(logs.Lines, l => l.Contains(secret, StringComparison.Ordinal));
        logs.AssertNoErrorsSince();
    }

    [Fact]
    public async Task An_unreachable_provider_sends_the_owner_back_to_the_login_page_with_a_warning()
    {
        var (response, logs) = await ChallengeAsync("--Authentication:Oidc:Authority=https://127.0.0.1:1");
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/login?oidc=failed", response.Headers.Location?.OriginalString);
        var warning = Assert.Single(logs.Lines, l => l.StartsWith("Warning Gymwire.Oidc:", StringComparison.Ordinal));
        Assert.Contains("https://127.0.0.1:1", warning, StringComparison.Ordinal);
        Assert.Contains("refused", warning, StringComparison.OrdinalIgnoreCase);
        logs.AssertNoErrorsSince();
    }

    /// <summary>Starts a server on the fixture's database with the provider's settings and <paramref name="settings"/>, and asks it to sign in.</summary>
    private async Task<(HttpResponseMessage Response, TestLogSink Logs)> ChallengeAsync(params string[] settings)
    {
        var logs = new TestLogSink();
        var builder = GymwireApp.CreateBuilder([.. fx.Arguments(fx.ConnectionString), .. settings], b => b.Logging.AddProvider(logs));
        await using var app = GymwireApp.Build(builder);
        await app.StartAsync();
        try
        {
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(address) };
            return (await http.GetAsync("/login/oidc"), logs);
        }
        finally
        {
            await app.StopAsync();
        }
    }
}
