using System.Net;
using System.Net.Http.Headers;
using Gymwire.Tests.Infrastructure;

namespace Gymwire.Tests.Foundation;

public abstract class AuthTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwire f) : AuthTests(f), IClassFixture<SqliteGymwire>;
    public sealed class Postgres(PostgresGymwire f) : AuthTests(f), IClassFixture<PostgresGymwire>;

    [Fact]
    public async Task Login_returns_a_bearer_session_that_reaches_the_owners_gym()
    {
        var gym = await fx.CreateGymAsync("Alpha BJJ");
        Assert.StartsWith("gws_", gym.OwnerToken, StringComparison.Ordinal);
        var me = await (await gym.Owner().GetAsync("/api/me")).AssertStatusAsync(HttpStatusCode.OK);
        Assert.Equal(gym.GymId, me.GetProperty("gym_id").GetGuid());
        Assert.Equal("Alpha BJJ", me.GetProperty("gym_name").GetString());
        Assert.Equal("owner", me.GetProperty("actor").GetString());
    }

    [Fact]
    public async Task Wrong_password_and_unknown_email_get_the_same_401()
    {
        var gym = await fx.CreateGymAsync();
        using var client = fx.Client();
        var wrong = await client.PostJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = "wrong-password-1" });
        var unknown = await client.PostJsonAsync("/api/auth/login", new { email = "nobody@example.com", password = "wrong-password-1" });
        Assert.Equal(await wrong.AssertErrorAsync(HttpStatusCode.Unauthorized), await unknown.AssertErrorAsync(HttpStatusCode.Unauthorized));
    }

    [Fact]
    public async Task Repeated_failures_lock_the_account()
    {
        var gym = await fx.CreateGymAsync();
        using var client = fx.Client();
        for (var i = 0; i < 10; i++)
        {
            await (await client.PostJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = "wrong-password-1" }))
                .AssertErrorAsync(HttpStatusCode.Unauthorized);
        }
        var locked = await client.PostJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = gym.OwnerPassword });
        // Identity times lockouts with the system clock, not TimeProvider, so expiry (Auth:LockoutDuration) is not asserted here.
        Assert.Contains("try again later", await locked.AssertErrorAsync(HttpStatusCode.TooManyRequests), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Logout_revokes_the_session_at_once()
    {
        var gym = await fx.CreateGymAsync();
        using var owner = gym.Owner();
        Assert.Equal(HttpStatusCode.NoContent, (await owner.PostAsync("/api/auth/logout", null)).StatusCode);
        await (await owner.GetAsync("/api/gym/members")).AssertErrorAsync(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Expired_session_gets_401()
    {
        var gym = await fx.CreateGymAsync();
        fx.Clock.Advance(TimeSpan.FromDays(7) + TimeSpan.FromSeconds(1));
        var message = await (await gym.Owner().GetAsync("/api/gym/members")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        Assert.Contains("expired", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Basic dXNlcjpwYXNz")]
    [InlineData("Bearer")]
    [InlineData("Bearer gws_0000")]
    [InlineData("Bearer gws_0000000000000000000000000000000000000000000000000000000000000000")]
    [InlineData("Bearer something-else")]
    public async Task Missing_or_bad_credentials_get_401_in_the_error_shape(string? authorization)
    {
        using var client = fx.Client();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/gym/members");
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }
        var response = await client.SendAsync(request);
        await response.AssertErrorAsync(HttpStatusCode.Unauthorized);
        Assert.Contains(response.Headers.WwwAuthenticate, h => h.Scheme == "Bearer");
    }

    [Fact]
    public async Task Login_validates_its_body()
    {
        using var client = fx.Client();
        var message = await (await client.PostJsonAsync("/api/auth/login", new { email = "a@example.com" })).AssertErrorAsync(HttpStatusCode.BadRequest);
        Assert.Contains("password", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Owner_cannot_be_created_twice_with_one_email()
    {
        var gym = await fx.CreateGymAsync();
        await using var scope = fx.Services.CreateAsyncScope();
        var (created, status, error) = await scope.ServiceProvider.GetRequiredService<Gymwire.Features.Gyms.GymProvisioning>()
            .CreateAsync("Second", gym.OwnerEmail, "another-password-1", CancellationToken.None);
        Assert.Null(created);
        Assert.Equal(409, status);
        Assert.NotNull(error);
    }

    [Fact]
    public async Task Passwords_and_session_tokens_are_not_stored_in_plain_text()
    {
        var gym = await fx.CreateGymAsync();
        var dump = await DatabaseDump.AllTextAsync(fx);
        Assert.DoesNotContain(gym.OwnerPassword, dump, StringComparison.Ordinal);
        Assert.DoesNotContain(gym.OwnerToken, dump, StringComparison.Ordinal);
        Assert.DoesNotContain(gym.OwnerToken[4..], dump, StringComparison.Ordinal);
        _ = new AuthenticationHeaderValue("Bearer", gym.OwnerToken);
    }
}
