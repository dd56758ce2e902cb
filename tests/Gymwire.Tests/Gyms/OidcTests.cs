using System.Net;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Gyms;

/// <summary>
/// The management API accepts a real OpenID Connect provider's JWTs (tools/oidc-provider on loopback) as the owner's
/// session, mapped to the owner by verified email and then by the linked subject; anything else is a 401 in the error shape.
/// </summary>
public abstract class OidcTests(OidcGymwire fx)
{
    public sealed class Sqlite(SqliteOidcGymwire f) : OidcTests(f), IClassFixture<SqliteOidcGymwire>;
    public sealed class Postgres(PostgresOidcGymwire f) : OidcTests(f), IClassFixture<PostgresOidcGymwire>;

    private static OidcProvider Provider => OidcProvider.Instance;

    [Fact]
    public async Task A_providers_jwt_is_the_owners_session_on_the_management_api()
    {
        var gym = await fx.CreateGymAsync();
        var other = await fx.CreateGymAsync();
        using (var owner = gym.Owner())
        {
            await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Zapier" })).AssertStatusAsync(HttpStatusCode.Created);
        }
        using (var owner = other.Owner())
        {
            await (await owner.PostJsonAsync("/api/gym/api-keys", new { name = "Other gym's key" })).AssertStatusAsync(HttpStatusCode.Created);
        }
        var (accessToken, _) = await Provider.SignInAsync(gym.OwnerEmail);
        Assert.StartsWith("eyJ", accessToken, StringComparison.Ordinal);

        using var api = fx.Client(accessToken);
        var keys = await (await api.GetAsync("/api/gym/api-keys")).AssertStatusAsync(HttpStatusCode.OK);
        var names = keys.GetProperty("keys").EnumerateArray().Select(k => k.GetProperty("name").GetString()).ToList();
        Assert.Equal(["Zapier"], names);
        var me = await (await api.GetAsync("/api/me")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(gym.GymId, me.GetProperty("gym_id").GetGuid());
        Assert.Equal("owner", me.GetProperty("actor").GetString());

        // The first use linked the provider's subject to the owner (issuer and subject, in owner_logins).
        var link = await fx.WithDbAsync(db => db.UserLogins.SingleAsync(l => l.LoginProvider == Provider.Issuer && l.ProviderKey != ""
            && db.Users.Any(u => u.Id == l.UserId && u.GymId == gym.GymId)));
        Assert.Equal(Provider.Issuer, link.LoginProvider);
    }

    [Fact]
    public async Task A_jwt_from_another_issuer_or_for_another_audience_is_refused_with_401()
    {
        var gym = await fx.CreateGymAsync();
        var (foreign, _) = await Provider.SignInAsync(gym.OwnerEmail, atOtherIssuer: true);
        using (var api = fx.Client(foreign))
        {
            var response = await api.GetAsync("/api/gym/api-keys");
            var error = await response.AssertErrorAsync(HttpStatusCode.Unauthorized);
            Assert.Contains("issuer", error, StringComparison.Ordinal);
            Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
        }
        // The ID token is the provider's too, but for the client (aud = client id), not for the API.
        var (_, idToken) = await Provider.SignInAsync(gym.OwnerEmail);
        using (var api = fx.Client(idToken))
        {
            var error = await (await api.GetAsync("/api/gym/api-keys")).AssertErrorAsync(HttpStatusCode.Unauthorized);
            Assert.Contains("audience", error, StringComparison.Ordinal);
        }
        // A token altered after signing.
        var (token, _) = await Provider.SignInAsync(gym.OwnerEmail);
        var parts = token.Split('.');
        var forged = parts[0] + "." + parts[1] + "." + parts[2][..^4] + (parts[2].EndsWith("AAAA", StringComparison.Ordinal) ? "BBBB" : "AAAA");
        using (var api = fx.Client(forged))
        {
            await (await api.GetAsync("/api/gym/api-keys")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        }
        // Nothing was linked by the refused tokens.
        Assert.Equal(0, await fx.WithDbAsync(db => db.UserLogins.CountAsync(l => db.Users.Any(u => u.Id == l.UserId && u.GymId == gym.GymId))));
    }

    [Fact]
    public async Task A_valid_jwt_without_an_owner_or_with_an_unverified_email_is_refused()
    {
        var gym = await fx.CreateGymAsync();
        var (stranger, _) = await Provider.SignInAsync($"nobody-{Guid.NewGuid():N}@example.com");
        using (var api = fx.Client(stranger))
        {
            var error = await (await api.GetAsync("/api/gym/api-keys")).AssertErrorAsync(HttpStatusCode.Unauthorized);
            Assert.Contains("No owner account", error, StringComparison.Ordinal);
        }
        // The provider does not vouch for this address: it must not open the owner's account, even if an owner had it.
        var unverifiedEmail = "unverified-" + gym.OwnerEmail;
        await fx.WithDbAsync(async db =>
        {
            var owner = await db.Users.SingleAsync(u => u.GymId == gym.GymId);
            owner.Email = unverifiedEmail;
            owner.NormalizedEmail = unverifiedEmail.ToUpperInvariant();
            return await db.SaveChangesAsync();
        });
        var (unverified, _) = await Provider.SignInAsync(unverifiedEmail);
        using (var api = fx.Client(unverified))
        {
            await (await api.GetAsync("/api/gym/api-keys")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        }
    }
}
