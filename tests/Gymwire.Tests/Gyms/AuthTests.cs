using System.Net;
using System.Net.Http.Headers;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Gyms;

/// <summary>Behind a trusted proxy (loopback), so each test can sign in from its own client address with X-Forwarded-For.</summary>
public sealed class SqliteGymwireBehindProxy() : GymwireFixture(Store.Sqlite)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => BehindProxy.Settings;
}

public sealed class PostgresGymwireBehindProxy() : GymwireFixture(Store.Postgres)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => BehindProxy.Settings;
}

public static class BehindProxy
{
    public static readonly KeyValuePair<string, string>[] Settings =
        [new("ForwardedHeaders:TrustedProxies:0", "127.0.0.1"), new("ForwardedHeaders:TrustedProxies:1", "::1")];

    /// <summary>A client whose requests come, through the trusted proxy, from <paramref name="address"/>.</summary>
    public static HttpClient ClientFrom(this GymwireFixture fx, string address, string? bearer = null)
    {
        var client = fx.Client(bearer);
        client.DefaultRequestHeaders.Add("X-Forwarded-For", address);
        return client;
    }

    private static int _next;

    /// <summary>A documentation-range address (198.18.0.0/15) no other test uses.</summary>
    public static string NewAddress()
    {
        var n = Interlocked.Increment(ref _next);
        return $"198.18.{n / 250}.{n % 250 + 1}";
    }
}

public abstract class AuthTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteGymwireBehindProxy f) : AuthTests(f), IClassFixture<SqliteGymwireBehindProxy>;
    public sealed class Postgres(PostgresGymwireBehindProxy f) : AuthTests(f), IClassFixture<PostgresGymwireBehindProxy>;

    private static object Login(string email, string password) => new { email, password };

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
        Assert.Contains("try again later", await locked.AssertErrorAsync(HttpStatusCode.TooManyRequests), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Concurrent_wrong_passwords_lock_the_account_exactly_as_sequential_ones_do()
    {
        var gym = await fx.CreateGymAsync();
        // From 25 addresses at once, so that no address reaches its own limit: only the email's count is at stake.
        var clients = Enumerable.Range(0, 25).Select(_ => fx.ClientFrom(BehindProxy.NewAddress())).ToList();
        var responses = await Task.WhenAll(clients.Select(c => c.PostJsonAsync("/api/auth/login", Login(gym.OwnerEmail, "wrong-password-1"))));
        clients.ForEach(c => c.Dispose());
        using var client = fx.ClientFrom(BehindProxy.NewAddress());
        // Exactly MaxFailedAttempts (10) passwords are checked; the others find the account locked without a check.
        Assert.Equal(10, responses.Count(r => r.StatusCode == HttpStatusCode.Unauthorized));
        Assert.Equal(15, responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests));
        var locked = await client.PostJsonAsync("/api/auth/login", Login(gym.OwnerEmail, gym.OwnerPassword));
        Assert.Contains("try again later", await locked.AssertErrorAsync(HttpStatusCode.TooManyRequests), StringComparison.Ordinal);
        Assert.NotNull(locked.Headers.RetryAfter?.Delta);

        fx.Clock.Advance(TimeSpan.FromMinutes(15) + TimeSpan.FromSeconds(1));
        await (await client.PostJsonAsync("/api/auth/login", Login(gym.OwnerEmail, gym.OwnerPassword))).AssertStatusAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Spraying_many_emails_from_one_address_gets_429_with_retry_after()
    {
        var gym = await fx.CreateGymAsync();
        using var sprayer = fx.ClientFrom(BehindProxy.NewAddress());
        for (var i = 0; i < 20; i++)
        {
            var email = i == 7 ? gym.OwnerEmail : $"someone-{i}-{Guid.NewGuid():N}@example.com";
            await (await sprayer.PostJsonAsync("/api/auth/login", Login(email, "wrong-password-1"))).AssertErrorAsync(HttpStatusCode.Unauthorized);
        }
        var refused = await sprayer.PostJsonAsync("/api/auth/login", Login($"next-{Guid.NewGuid():N}@example.com", "wrong-password-1"));
        Assert.Contains("from this address", await refused.AssertErrorAsync(HttpStatusCode.TooManyRequests), StringComparison.Ordinal);
        Assert.InRange(refused.Headers.RetryAfter!.Delta!.Value, TimeSpan.FromMinutes(59), TimeSpan.FromHours(1));
        // Even the right password is not checked from that address now; another address is unaffected.
        await (await sprayer.PostJsonAsync("/api/auth/login", Login(gym.OwnerEmail, gym.OwnerPassword))).AssertErrorAsync(HttpStatusCode.TooManyRequests);
        using var owner = fx.ClientFrom(BehindProxy.NewAddress());
        await (await owner.PostJsonAsync("/api/auth/login", Login(gym.OwnerEmail, gym.OwnerPassword))).AssertStatusAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Unknown_email_and_wrong_password_get_the_same_answers_through_the_lockout()
    {
        var gym = await fx.CreateGymAsync();
        var unknown = $"nobody-{Guid.NewGuid():N}@example.com";
        using var one = fx.ClientFrom(BehindProxy.NewAddress());
        using var another = fx.ClientFrom(BehindProxy.NewAddress());
        for (var i = 0; i < 11; i++)
        {
            var known = await one.PostJsonAsync("/api/auth/login", Login(gym.OwnerEmail, "wrong-password-1"));
            var nobody = await another.PostJsonAsync("/api/auth/login", Login(unknown, "wrong-password-1"));
            Assert.Equal(known.StatusCode, nobody.StatusCode);
            Assert.Equal(await known.Content.ReadAsStringAsync(), await nobody.Content.ReadAsStringAsync());
            Assert.Equal(known.Headers.RetryAfter?.Delta, nobody.Headers.RetryAfter?.Delta);
            Assert.Equal(i < 10 ? HttpStatusCode.Unauthorized : HttpStatusCode.TooManyRequests, known.StatusCode);
        }
    }

    [Fact]
    public async Task Owner_signs_in_after_the_lockout_even_under_a_sustained_attack()
    {
        // The rule: one address can lock an email at most once per Auth:ClientLockoutDuration (1 h), because its failures,
        // including those refused during the lock, block the address itself after Auth:ClientMaxFailedAttempts (20).
        var gym = await fx.CreateGymAsync();
        using var attacker = fx.ClientFrom(BehindProxy.NewAddress());
        using var owner = fx.ClientFrom(BehindProxy.NewAddress());
        for (var minute = 0; minute < 16; minute++)
        {
            for (var i = 0; i < 10; i++)
            {
                var guess = await attacker.PostJsonAsync("/api/auth/login", Login(gym.OwnerEmail, $"guess-{minute}-{i}-password"));
                Assert.NotEqual(HttpStatusCode.OK, guess.StatusCode);
            }
            if (minute < 15)
            {
                await (await owner.PostJsonAsync("/api/auth/login", Login(gym.OwnerEmail, gym.OwnerPassword))).AssertErrorAsync(HttpStatusCode.TooManyRequests);
            }
            fx.Clock.Advance(TimeSpan.FromMinutes(1));
        }
        await (await owner.PostJsonAsync("/api/auth/login", Login(gym.OwnerEmail, gym.OwnerPassword))).AssertStatusAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Change_password_needs_the_current_one_and_ends_every_other_session()
    {
        var gym = await fx.CreateGymAsync();
        using var anonymous = fx.ClientFrom(BehindProxy.NewAddress());
        var other = (await (await anonymous.PostJsonAsync("/api/auth/login", Login(gym.OwnerEmail, gym.OwnerPassword))).AssertStatusAsync(HttpStatusCode.OK))
            .GetProperty("token").GetString();
        using var browser = new Gymwire.Tests.Dashboard.DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        using var current = gym.Owner();

        await (await current.PostJsonAsync("/api/auth/password", new { current_password = "wrong-password-1", new_password = "a-new-password-2" }))
            .AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await current.PostJsonAsync("/api/auth/password", new { current_password = gym.OwnerPassword, new_password = "short" }))
            .AssertErrorAsync(HttpStatusCode.BadRequest);
        await (await fx.Client(other).GetAsync("/api/me")).AssertStatusAsync(HttpStatusCode.OK);

        Assert.Equal(HttpStatusCode.NoContent,
            (await current.PostJsonAsync("/api/auth/password", new { current_password = gym.OwnerPassword, new_password = "a-new-password-2" })).StatusCode);
        await (await current.GetAsync("/api/me")).AssertStatusAsync(HttpStatusCode.OK);
        await (await fx.Client(other).GetAsync("/api/me")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync("/settings/integrations")).StatusCode);
        await (await anonymous.PostJsonAsync("/api/auth/login", Login(gym.OwnerEmail, gym.OwnerPassword))).AssertErrorAsync(HttpStatusCode.Unauthorized);
        await (await anonymous.PostJsonAsync("/api/auth/login", Login(gym.OwnerEmail, "a-new-password-2"))).AssertStatusAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Sign_out_everywhere_ends_every_session_of_the_owner_only()
    {
        var gym = await fx.CreateGymAsync();
        var neighbour = await fx.CreateGymAsync();
        using var browser = new Gymwire.Tests.Dashboard.DashboardClient(fx);
        await browser.LoginAsync(gym.OwnerEmail, gym.OwnerPassword);
        using var anonymous = fx.Client();
        var other = (await (await anonymous.PostJsonAsync("/api/auth/login", Login(gym.OwnerEmail, gym.OwnerPassword))).JsonAsync()).GetProperty("token").GetString();

        using var owner = gym.Owner();
        Assert.Equal(HttpStatusCode.NoContent, (await owner.PostAsync("/api/auth/logout-everywhere", null)).StatusCode);
        await (await owner.GetAsync("/api/me")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        await (await fx.Client(other).GetAsync("/api/me")).AssertErrorAsync(HttpStatusCode.Unauthorized);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync("/settings/integrations")).StatusCode);
        await (await neighbour.Owner().GetAsync("/api/me")).AssertStatusAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Trusted_proxy_headers_give_the_client_address_and_secure_cookies()
    {
        var gym = await fx.CreateGymAsync();
        var address = BehindProxy.NewAddress();
        using var client = fx.ClientFrom(address);
        await (await client.PostJsonAsync("/api/auth/login", Login(gym.OwnerEmail, "wrong-password-1"))).AssertErrorAsync(HttpStatusCode.Unauthorized);
        Assert.True(await fx.WithDbAsync(db => db.SignInThrottles.AnyAsync(t => t.Subject == "client:" + address)));

        var cookies = await Gymwire.Tests.Dashboard.ForwardedLogin.SignInAsync(fx, gym, forwardedProto: "https");
        Assert.All(cookies, c => Assert.Contains("; secure", c, StringComparison.OrdinalIgnoreCase));
        Assert.Contains(cookies, c => c.StartsWith("gymwire_session=", StringComparison.Ordinal));
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
    public async Task An_owner_email_longer_than_the_accounts_table_holds_is_400_and_creates_nothing()
    {
        var email = "o@" + string.Join('.', Enumerable.Repeat(new string('a', 50), 5)) + ".example.com";
        Assert.Equal(268, email.Length);
        await using var scope = fx.Services.CreateAsyncScope();
        var (created, status, error) = await scope.ServiceProvider.GetRequiredService<Gymwire.Features.Gyms.GymProvisioning>()
            .CreateAsync("Long email gym", email, "long-email-password-1", CancellationToken.None);
        Assert.Equal(((Gymwire.Features.Gyms.ProvisionedGym?)null, 400), (created, status));
        Assert.Contains("owner_email", error, StringComparison.Ordinal);
        Assert.False(await fx.WithDbAsync(db => db.Gyms.AnyAsync(g => g.Name == "Long email gym")));
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
