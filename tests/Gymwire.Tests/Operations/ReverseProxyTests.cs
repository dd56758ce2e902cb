using System.Net;
using Gymwire.Tests.Gyms;
using Gymwire.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Tests.Operations;

/// <summary>
/// Behind a TLS-terminating reverse proxy (<c>ForwardedHeaders:TrustedProxies</c>, the HTTPS redirect and HSTS on): what the
/// proxy forwards counts only when the TCP peer is a configured proxy. Then the dashboard's cookies are Secure, the
/// redirect leaves requests the proxy received over HTTPS alone, and the sign-in limits count the forwarded client
/// address; from any other peer the same headers change nothing. The limits live in the database: both stores.
/// </summary>
public abstract class ReverseProxyTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteBehindTlsProxy f) : ReverseProxyTests(f), IClassFixture<SqliteBehindTlsProxy>;
    public sealed class Postgres(PostgresBehindTlsProxy f) : ReverseProxyTests(f), IClassFixture<PostgresBehindTlsProxy>;

    [Fact]
    public async Task The_dashboard_cookies_are_secure_behind_the_trusted_proxy()
    {
        var gym = await fx.CreateGymAsync();
        var cookies = await Gymwire.Tests.Dashboard.ForwardedLogin.SignInAsync(fx, gym, forwardedProto: "https");
        Assert.Contains(cookies, c => c.StartsWith("gymwire_session=", StringComparison.Ordinal));
        Assert.All(cookies, c => Assert.Contains("; secure", c, StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task Requests_the_proxy_got_over_http_are_redirected_except_health_probes_and_https_ones_get_hsts()
    {
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = fx.BaseAddress };
        using var plain = new HttpRequestMessage(HttpMethod.Get, "/api/gym/members");
        plain.Headers.Host = "gym.example.com";
        plain.Headers.Add("X-Forwarded-Proto", "http");
        var redirected = await http.SendAsync(plain);
        Assert.Equal(HttpStatusCode.TemporaryRedirect, redirected.StatusCode);
        Assert.Equal("https://gym.example.com/api/gym/members", redirected.Headers.Location!.ToString());

        // Not the health endpoint: a load balancer probes the node over plain HTTP, and must learn whether it is healthy.
        foreach (var method in new[] { HttpMethod.Get, HttpMethod.Head })
        {
            using var probe = new HttpRequestMessage(method, "/healthz");
            probe.Headers.Host = "gym.example.com";
            probe.Headers.Add("X-Forwarded-Proto", "http");
            var probed = await http.SendAsync(probe);
            Assert.Equal(HttpStatusCode.OK, probed.StatusCode);
            Assert.False(probed.Headers.Contains("Strict-Transport-Security"));
        }

        using var secure = new HttpRequestMessage(HttpMethod.Get, "/healthz");
        secure.Headers.Host = "gym.example.com";
        secure.Headers.Add("X-Forwarded-Proto", "https");
        var answer = await http.SendAsync(secure);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.StartsWith("max-age=", string.Join(",", answer.Headers.GetValues("Strict-Transport-Security")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_sign_in_limit_counts_the_forwarded_client_not_the_proxy()
    {
        var blocked = Gyms.BehindProxy.NewAddress();
        var other = Gyms.BehindProxy.NewAddress();
        using (var client = fx.ClientFrom(blocked))
        {
            for (var i = 0; i < BehindTlsProxy.ClientLimit; i++)
            {
                await (await client.PostJsonAsync("/api/auth/login", new { email = $"x{i}-{Guid.NewGuid():N}@example.com", password = "wrong-password-1" }))
                    .AssertErrorAsync(HttpStatusCode.Unauthorized);
            }
            await (await client.PostJsonAsync("/api/auth/login", new { email = $"y-{Guid.NewGuid():N}@example.com", password = "wrong-password-1" }))
                .AssertErrorAsync(HttpStatusCode.TooManyRequests);
        }
        // Another client behind the same proxy is not blocked, and the proxy's own address was never counted.
        using (var client = fx.ClientFrom(other))
        {
            await (await client.PostJsonAsync("/api/auth/login", new { email = $"z-{Guid.NewGuid():N}@example.com", password = "wrong-password-1" }))
                .AssertErrorAsync(HttpStatusCode.Unauthorized);
        }
        Assert.False(await fx.WithDbAsync(db => db.SignInThrottles.AnyAsync(t => t.Subject == "client:127.0.0.1")));
        Assert.True(await fx.WithDbAsync(db => db.SignInThrottles.AnyAsync(t => t.Subject == "client:" + blocked)));
    }
}

/// <summary>From a peer that is not a configured proxy, X-Forwarded-For and X-Forwarded-Proto change nothing.</summary>
public abstract class UntrustedProxyTests(GymwireFixture fx)
{
    public sealed class Sqlite(SqliteBehindOtherProxy f) : UntrustedProxyTests(f), IClassFixture<SqliteBehindOtherProxy>;
    public sealed class Postgres(PostgresBehindOtherProxy f) : UntrustedProxyTests(f), IClassFixture<PostgresBehindOtherProxy>;

    [Fact]
    public async Task Forwarded_headers_from_a_peer_outside_the_configured_proxies_are_ignored()
    {
        var gym = await fx.CreateGymAsync();
        var cookies = await Gymwire.Tests.Dashboard.ForwardedLogin.SignInAsync(fx, gym, forwardedProto: "https");
        Assert.Contains(cookies, c => c.StartsWith("gymwire_session=", StringComparison.Ordinal));
        Assert.All(cookies, c => Assert.DoesNotContain("; secure", c, StringComparison.OrdinalIgnoreCase));

        var spoofed = Gyms.BehindProxy.NewAddress();
        using var client = fx.Client();
        client.DefaultRequestHeaders.Add("X-Forwarded-For", spoofed);
        await (await client.PostJsonAsync("/api/auth/login", new { email = gym.OwnerEmail, password = "wrong-password-1" })).AssertErrorAsync(HttpStatusCode.Unauthorized);
        Assert.False(await fx.WithDbAsync(db => db.SignInThrottles.AnyAsync(t => t.Subject == "client:" + spoofed)));
        Assert.True(await fx.WithDbAsync(db => db.SignInThrottles.AnyAsync(t => t.Subject == "client:127.0.0.1")));
    }
}

public static class BehindTlsProxy
{
    public const int ClientLimit = 3;

    public static readonly KeyValuePair<string, string>[] Settings =
    [
        .. Gyms.BehindProxy.Settings,
        new("Https:Redirect", "true"),
        new("Https:Hsts", "true"),
        // Kestrel listens on plain HTTP only; the redirect needs the port the proxy serves HTTPS on.
        new("https_port", "443"),
        new("Auth:ClientMaxFailedAttempts", ClientLimit.ToString(System.Globalization.CultureInfo.InvariantCulture)),
    ];

    /// <summary>The fixture's clients come through the proxy over HTTPS, as a browser would, unless a test says otherwise.</summary>
    public sealed class ForwardedHttps() : DelegatingHandler(new HttpClientHandler())
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (!request.Headers.Contains("X-Forwarded-Proto"))
            {
                request.Headers.Add("X-Forwarded-Proto", "https");
            }
            return base.SendAsync(request, cancellationToken);
        }
    }
}

public sealed class SqliteBehindTlsProxy() : GymwireFixture(Store.Sqlite)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => BehindTlsProxy.Settings;

    protected override HttpMessageHandler CreateHandler() => new BehindTlsProxy.ForwardedHttps();
}

public sealed class PostgresBehindTlsProxy() : GymwireFixture(Store.Postgres)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => BehindTlsProxy.Settings;

    protected override HttpMessageHandler CreateHandler() => new BehindTlsProxy.ForwardedHttps();
}

/// <summary>A proxy is configured, but it is not the loopback peer the tests connect from.</summary>
public sealed class SqliteBehindOtherProxy() : GymwireFixture(Store.Sqlite)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => [new("ForwardedHeaders:TrustedProxies:0", "10.0.0.0/8")];
}

public sealed class PostgresBehindOtherProxy() : GymwireFixture(Store.Postgres)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => [new("ForwardedHeaders:TrustedProxies:0", "10.0.0.0/8")];
}
