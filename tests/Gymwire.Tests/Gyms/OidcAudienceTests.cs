using System.Net;
using Gymwire.Tests.Dashboard;
using Gymwire.Tests.Infrastructure;
using Microsoft.Extensions.Options;

namespace Gymwire.Tests.Gyms;

/// <summary>
/// Without <c>Authentication:Oidc:Audience</c> the management API takes no provider JWTs: an ID token (whose audience is
/// the client id) must never pass as an API credential, and an audience equal to the client id is refused at start.
/// </summary>
public abstract class OidcAudienceTests(OidcWithoutAudienceGymwire fx)
{
    public sealed class Sqlite(SqliteOidcWithoutAudience f) : OidcAudienceTests(f), IClassFixture<SqliteOidcWithoutAudience>;
    public sealed class Postgres(PostgresOidcWithoutAudience f) : OidcAudienceTests(f), IClassFixture<PostgresOidcWithoutAudience>;

    private static OidcProvider Provider => OidcProvider.Instance;

    [Fact]
    public async Task Without_an_audience_the_api_refuses_the_providers_id_token_and_the_dashboard_still_offers_sign_in()
    {
        var gym = await fx.CreateGymAsync();
        var (accessToken, idToken) = await Provider.SignInAsync(gym.OwnerEmail);
        foreach (var token in new[] { idToken, accessToken })
        {
            using var api = fx.Client(token);
            var error = await (await api.GetAsync("/api/gym/api-keys")).AssertErrorAsync(HttpStatusCode.Unauthorized);
            Assert.Contains("Authentication:Oidc:Audience", error, StringComparison.Ordinal);
        }
        // The dashboard's sign-in is unaffected: its button is there and sends the browser to the provider.
        using var browser = new DashboardClient(fx);
        Assert.Contains("Sign in with Test Provider", await browser.GetPageAsync("/login"), StringComparison.Ordinal);
        var challenge = await browser.GetAsync("/login/oidc");
        Assert.Equal(HttpStatusCode.Redirect, challenge.StatusCode);
        Assert.StartsWith(Provider.Issuer, challenge.Headers.Location!.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_audience_equal_to_the_client_id_stops_the_server_from_starting()
    {
        var builder = GymwireApp.CreateBuilder([.. fx.Arguments(fx.ConnectionString), $"--Authentication:Oidc:Audience={Provider.ClientId}"]);
        builder.Logging.ClearProviders();
        await using var app = GymwireApp.Build(builder);
        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("Authentication:Oidc:Audience", e.Message, StringComparison.Ordinal);
        Assert.Contains("Authentication:Oidc:ClientId", e.Message, StringComparison.Ordinal);
    }
}

/// <summary>A Gymwire signing owners in with <see cref="OidcProvider"/>, configured without <c>Authentication:Oidc:Audience</c>.</summary>
public abstract class OidcWithoutAudienceGymwire(Store store) : GymwireFixture(store)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() =>
        OidcProvider.Instance.Settings().Where(s => s.Key != "Authentication:Oidc:Audience");
}

public sealed class SqliteOidcWithoutAudience() : OidcWithoutAudienceGymwire(Store.Sqlite);

public sealed class PostgresOidcWithoutAudience() : OidcWithoutAudienceGymwire(Store.Postgres);
