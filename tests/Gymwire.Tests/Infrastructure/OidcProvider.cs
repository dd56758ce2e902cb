using System.Diagnostics;
using System.Net;
using System.Text.Json;

namespace Gymwire.Tests.Infrastructure;

/// <summary>
/// A real OpenID Connect provider on loopback (npm oidc-provider, tools/oidc-provider/provider.mjs), one per test process:
/// three issuers with the same client, the second standing for "another provider", the third offering no pushed
/// authorization requests (PAR, which the first offers, as oidc-provider does by default). Its sign-in form takes any email.
/// The node process ends when this process does (its standard input closes).
/// </summary>
public sealed class OidcProvider
{
    private static readonly Lazy<OidcProvider> Shared = new(Start, LazyThreadSafetyMode.ExecutionAndPublication);

    private OidcProvider(string issuer, string otherIssuer, string noParIssuer, string clientId, string clientSecret, string audience)
    {
        Issuer = issuer;
        OtherIssuer = otherIssuer;
        NoParIssuer = noParIssuer;
        ClientId = clientId;
        ClientSecret = clientSecret;
        Audience = audience;
    }

    public static OidcProvider Instance => Shared.Value;

    public string Issuer { get; }
    public string OtherIssuer { get; }
    /// <summary>A provider whose discovery document has no <c>pushed_authorization_request_endpoint</c>.</summary>
    public string NoParIssuer { get; }
    public string ClientId { get; }
    public string ClientSecret { get; }
    /// <summary>The management API's audience: access tokens asked for it are JWTs.</summary>
    public string Audience { get; }

    /// <summary>The settings that configure a Gymwire for this provider, "Test Provider" on the login page.</summary>
    public IEnumerable<KeyValuePair<string, string>> Settings() =>
    [
        new("Authentication:Oidc:Authority", Issuer),
        new("Authentication:Oidc:ClientId", ClientId),
        new("Authentication:Oidc:ClientSecret", ClientSecret),
        new("Authentication:Oidc:Audience", Audience),
        new("Authentication:Oidc:DisplayName", "Test Provider"),
        new("Authentication:Oidc:RequireHttpsMetadata", "false"),
    ];

    private static OidcProvider Start()
    {
        var tool = Path.Combine(ExternalTool.RepositoryRoot, "tools", "oidc-provider");
        if (!Directory.Exists(Path.Combine(tool, "node_modules")))
        {
            throw new InvalidOperationException("tools/oidc-provider has no node_modules: scripts/test runs `npm ci` there first");
        }
        var start = new ProcessStartInfo("node")
        {
            WorkingDirectory = tool, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        start.ArgumentList.Add("provider.mjs");
        var process = Process.Start(start)!;
        process.ErrorDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                process.Kill();
            }
            catch (InvalidOperationException)
            {
            }
        };
        var line = process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)).GetAwaiter().GetResult()
                   ?? throw new InvalidOperationException("the OpenID Connect provider exited before it started");
        using var doc = JsonDocument.Parse(line);
        var r = doc.RootElement;
        return new OidcProvider(r.GetProperty("issuer").GetString()!, r.GetProperty("other_issuer").GetString()!, r.GetProperty("no_par_issuer").GetString()!,
            r.GetProperty("client_id").GetString()!, r.GetProperty("client_secret").GetString()!, r.GetProperty("audience").GetString()!);
    }

    /// <summary>
    /// Signs <paramref name="email"/> in at the provider as an app would (authorization code flow, over HTTP without a browser)
    /// and returns the access token for the management API (a JWT) and the ID token.
    /// </summary>
    public async Task<(string AccessToken, string IdToken)> SignInAsync(string email, bool atOtherIssuer = false)
    {
        var issuer = new Uri(atOtherIssuer ? OtherIssuer : Issuer);
        const string redirectUri = "http://127.0.0.1:9/signin-oidc";
        using var http = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false }) { BaseAddress = issuer };
        var response = await http.GetAsync($"/auth?client_id={ClientId}&response_type=code&scope=openid%20email%20profile" +
                                           $"&redirect_uri={Uri.EscapeDataString(redirectUri)}&state=test-state&nonce=test-nonce&resource={Uri.EscapeDataString(Audience)}");
        var back = await FollowSignInAsync(http, response, email, next => next.ToString().StartsWith(redirectUri, StringComparison.Ordinal));
        var code = System.Web.HttpUtility.ParseQueryString(back.Query)["code"] ?? throw new InvalidOperationException($"no code in {back}");
        var token = await http.PostAsync("/token", new FormUrlEncodedContent(
        [
            new("grant_type", "authorization_code"), new("code", code!), new("redirect_uri", redirectUri),
            new("client_id", ClientId), new("client_secret", ClientSecret), new("resource", Audience),
        ]));
        var body = await token.Content.ReadAsStringAsync();
        Assert.True(token.IsSuccessStatusCode, body);
        using var json = JsonDocument.Parse(body);
        return (json.RootElement.GetProperty("access_token").GetString()!, json.RootElement.GetProperty("id_token").GetString()!);
    }

    /// <summary>
    /// Follows the provider's redirects from <paramref name="response"/>, signing in at its form as <paramref name="email"/>
    /// (or pressing Cancel, when null), until a redirect leaves for a URL <paramref name="arrived"/> accepts: the client's
    /// redirect URI, returned not yet loaded.
    /// </summary>
    public static async Task<Uri> FollowSignInAsync(HttpClient http, HttpResponseMessage response, string? email, Func<Uri, bool> arrived)
    {
        for (var hop = 0; hop < 10; hop++)
        {
            var location = response.Headers.Location
                           ?? throw new InvalidOperationException($"the provider answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            var next = new Uri(response.RequestMessage!.RequestUri!, location);
            if (arrived(next))
            {
                return next;
            }
            response = next.AbsolutePath.StartsWith("/interaction/", StringComparison.Ordinal)
                ? await http.PostAsync(next, new FormUrlEncodedContent(email is null ? [new("cancel", "1")] : [new("email", email)]))
                : await http.GetAsync(next);
        }
        throw new InvalidOperationException("the provider never sent the browser back");
    }
}

/// <summary>A Gymwire configured to sign owners in with <see cref="OidcProvider"/>.</summary>
public abstract class OidcGymwire(Store store) : GymwireFixture(store)
{
    protected override IEnumerable<KeyValuePair<string, string>> Settings() => OidcProvider.Instance.Settings();
}

public sealed class SqliteOidcGymwire() : OidcGymwire(Store.Sqlite);

public sealed class PostgresOidcGymwire() : OidcGymwire(Store.Postgres);
