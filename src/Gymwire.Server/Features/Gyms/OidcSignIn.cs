using System.Text.Encodings.Web;
using Gymwire.Features.Dashboard;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authentication.OpenIdConnect;
using Microsoft.AspNetCore.Http.Extensions;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace Gymwire.Features.Gyms;

/// <summary>
/// The <c>Authentication:Oidc</c> section: sign-in with an OpenID Connect provider (Google, Entra, Keycloak, Clerk…) beside
/// the built-in accounts. Off unless <see cref="Authority"/>, <see cref="ClientId"/> and <see cref="ClientSecret"/> are set; some
/// but not all of them stop the server from starting (docs/configuration.md).
/// </summary>
public sealed class OidcOptions
{
    public const string Section = "Authentication:Oidc";

    /// <summary>The provider's issuer URL; its discovery document is read from <c>/.well-known/openid-configuration</c>.</summary>
    public string? Authority { get; set; }

    public string? ClientId { get; set; }

    public string? ClientSecret { get; set; }

    /// <summary>
    /// The <c>aud</c> the management API requires of a provider's JWT: an API (resource) registered at the provider for
    /// Gymwire, never the client id, which is the audience of every ID token the provider issues to the dashboard. Unset,
    /// the API accepts no provider JWTs at all; the dashboard's sign-in works either way.
    /// </summary>
    public string? Audience { get; set; }

    /// <summary>The provider's name on the login page's button ("Sign in with …").</summary>
    public string DisplayName { get; set; } = "OpenID Connect";

    /// <summary>Off only for a provider on loopback (tests); metadata is then read over plain HTTP.</summary>
    public bool RequireHttpsMetadata { get; set; } = true;

    public bool Enabled => !string.IsNullOrWhiteSpace(Authority) && !string.IsNullOrWhiteSpace(ClientId);

    /// <summary>Whether the management API accepts the provider's JWTs: only for an audience of its own.</summary>
    public bool ApiEnabled => Enabled && !string.IsNullOrWhiteSpace(Audience);

    /// <summary>An audience equal to the client id would let the provider's ID tokens through as API credentials.</summary>
    public bool AudienceIsClientId =>
        Enabled && !string.IsNullOrWhiteSpace(Audience) && string.Equals(Audience.Trim(), ClientId!.Trim(), StringComparison.Ordinal);

    /// <summary>
    /// What stops the server from starting: a half-configured provider would leave sign-in silently off, and an Authority
    /// the handler cannot use would fail every request (the handler is built for each one), not just the sign-in.
    /// </summary>
    public IEnumerable<string> Problems()
    {
        (string Name, string? Value)[] required = [(nameof(Authority), Authority), (nameof(ClientId), ClientId), (nameof(ClientSecret), ClientSecret)];
        var anySet = required.Any(r => !string.IsNullOrWhiteSpace(r.Value)) || !string.IsNullOrWhiteSpace(Audience);
        foreach (var (name, value) in required)
        {
            if (anySet && string.IsNullOrWhiteSpace(value))
            {
                yield return $"{Section}:{name} is not set: sign-in with OpenID Connect needs {Section}:Authority, ClientId and ClientSecret " +
                             "(leave them all unset to turn it off)";
            }
        }
        if (string.IsNullOrWhiteSpace(Authority))
        {
            yield break;
        }
        if (!Uri.TryCreate(Authority.Trim(), UriKind.Absolute, out var authority) || authority.Scheme is not ("https" or "http"))
        {
            yield return $"{Section}:Authority must be the provider's issuer URL, such as https://accounts.example.com, not '{Authority}'";
        }
        else if (authority.Scheme == "http" && RequireHttpsMetadata)
        {
            yield return $"{Section}:Authority must be an https:// URL, not '{Authority}' " +
                         $"({Section}:RequireHttpsMetadata=false allows http:// for a provider on loopback only)";
        }
        if (AudienceIsClientId)
        {
            yield return AudienceIsClientIdError;
        }
    }

    public const string AudienceIsClientIdError =
        "Authentication:Oidc:Audience must not equal Authentication:Oidc:ClientId: every ID token the provider issues to the dashboard " +
        "has the client id as its audience, so the management API would accept ID tokens. Set it to the audience (API identifier) " +
        "the provider puts in access tokens for Gymwire's API, or leave it unset to accept no provider JWTs on the API.";
}

internal sealed class OidcOptionsValidator : IValidateOptions<OidcOptions>
{
    public ValidateOptionsResult Validate(string? name, OidcOptions options) =>
        options.Problems().ToList() is { Count: > 0 } problems ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
}

/// <summary>
/// OpenID Connect sign-in. The browser flow (authorization code with PKCE) lands in Identity's external cookie, then
/// <c>/login/oidc/complete</c> maps the identity to an owner and starts an ordinary dashboard session (a row in
/// <c>owner_sessions</c>). With <see cref="OidcOptions.Audience"/> set, the management API accepts the provider's JWTs in
/// <c>Authorization: Bearer</c>, validated by JwtBearer (issuer, audience, signature, lifetime), as the owner's session.
/// </summary>
public static class OidcSetup
{
    public const string BrowserScheme = "oidc";
    public const string JwtScheme = "oidc-jwt";
    public const string LoginPath = "/login/oidc";
    public const string CompletePath = "/login/oidc/complete";
    /// <summary>Where the provider sends the browser back: the handler's default, the redirect URI to register.</summary>
    public const string CallbackPath = "/signin-oidc";

    public static IServiceCollection AddOidcSignIn(this IServiceCollection services, IConfiguration configuration)
    {
        var options = configuration.GetSection(OidcOptions.Section).Get<OidcOptions>() ?? new OidcOptions();
        services.AddSingleton(options);
        services.AddScoped<OidcOwnerLinks>();
        services.AddOptions<OidcOptions>().BindConfiguration(OidcOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<OidcOptions>, OidcOptionsValidator>();
        if (!options.Enabled)
        {
            return services;
        }
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<OpenIdConnectOptions>, OpenIdConnectPostConfigureOptions>());
        var authentication = services.AddAuthentication()
            .AddRemoteScheme<OpenIdConnectOptions, OidcHandler>(BrowserScheme, options.DisplayName, o =>
            {
                o.Authority = options.Authority;
                o.ClientId = options.ClientId;
                o.ClientSecret = options.ClientSecret;
                o.RequireHttpsMetadata = options.RequireHttpsMetadata;
                o.CallbackPath = CallbackPath;
                o.ResponseType = "code";
                o.UsePkce = true;
                // The code comes back on a top-level GET, so the correlation and nonce cookies can be SameSite=Lax and need
                // no Secure flag on a plain-HTTP loopback install (SameSite=None, the form_post default, requires Secure).
                o.ResponseMode = "query";
                o.CorrelationCookie.SameSite = SameSiteMode.Lax;
                o.CorrelationCookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
                o.NonceCookie.SameSite = SameSiteMode.Lax;
                o.NonceCookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
                o.Scope.Clear();
                o.Scope.Add("openid");
                o.Scope.Add("email");
                o.Scope.Add("profile");
                o.MapInboundClaims = false;
                o.GetClaimsFromUserInfoEndpoint = true;
                // The owner mapping trusts an email only when the provider says it verified it (from the ID token or userinfo).
                o.ClaimActions.MapUniqueJsonKey("email_verified", "email_verified");
                o.SaveTokens = false;
                o.SignInScheme = IdentityConstants.ExternalScheme;
                // The provider's tokens and the browser's cookies live in real time, whatever clock the server is given.
                o.TimeProvider = TimeProvider.System;
                o.Events.OnRemoteFailure = context =>
                {
                    OidcLog.ProviderFailed(context.HttpContext.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(LogCategory),
                        options.Authority!, Reason(context.Failure, context.HttpContext));
                    context.Response.Redirect(FailedPath);
                    context.HandleResponse();
                    return Task.CompletedTask;
                };
            });
        if (!options.ApiEnabled || options.AudienceIsClientId)
        {
            // No audience of the API's own: a provider JWT on the API is refused, saying why, instead of validated.
            services.AddSingleton<IBearerTokenValidator, OidcJwtRefusal>();
            return services;
        }
        authentication.AddJwtBearer(JwtScheme, o =>
            {
                o.Authority = options.Authority;
                o.Audience = options.Audience;
                o.RequireHttpsMetadata = options.RequireHttpsMetadata;
                o.MapInboundClaims = false;
                o.TimeProvider = TimeProvider.System;
            });
        services.AddSingleton<IBearerTokenValidator, OidcJwtValidator>();
        return services;
    }

    public static IEndpointRouteBuilder MapOidcSignIn(this IEndpointRouteBuilder app)
    {
        if (!app.ServiceProvider.GetRequiredService<OidcOptions>().Enabled)
        {
            return app;
        }
        app.MapGet(LoginPath, ChallengeAsync).AllowAnonymous().ExcludeFromDescription();
        app.MapGet(CompletePath, CompleteAsync).AllowAnonymous().ExcludeFromDescription();
        return app;
    }

    /// <summary>
    /// Sends the browser to the provider. The handler talks to the provider first (its discovery document, and the pushed
    /// authorization request where the provider offers one), so a provider that is down or refuses the client (a wrong
    /// secret, an unknown redirect URI) fails here rather than on the way back: the login page says so, as it does then.
    /// </summary>
    private static async Task ChallengeAsync(string? returnUrl, HttpContext http, OidcOptions options, ILoggerFactory loggers)
    {
        var properties = new AuthenticationProperties { RedirectUri = CompletePath + "?returnUrl=" + Uri.EscapeDataString(LoginModel.SafeLocalUrl(returnUrl)) };
        try
        {
            await http.ChallengeAsync(BrowserScheme, properties);
        }
        catch (Exception e) when (IsProviderFailure(e, http) && !http.Response.HasStarted)
        {
            OidcLog.ProviderFailed(loggers.CreateLogger(LogCategory), options.Authority!, Reason(e, http));
            http.Response.Redirect(FailedPath);
        }
    }

    private const string LogCategory = "Gymwire.Oidc";
    private const string FailedPath = "/login?oidc=failed";

    /// <summary>
    /// The provider's refusal (a protocol error), its discovery document unreadable (the handler's InvalidOperationException),
    /// the provider unreachable, or its answer timing out; not the browser going away.
    /// </summary>
    private static bool IsProviderFailure(Exception e, HttpContext http) =>
        e is OpenIdConnectProtocolException or InvalidOperationException or HttpRequestException or IOException
        || (e is OperationCanceledException && !http.RequestAborted.IsCancellationRequested);

    /// <summary>
    /// Each message of the exception and its causes: the provider's error and description, or the connection's failure.
    /// None holds the client secret, which only travels in the request's body.
    /// The redirect URI this request made follows, as the provider must have it registered: it comes from the request's
    /// scheme and host, so a proxy that passes neither on makes one the provider does not know.
    /// </summary>
    private static string Reason(Exception? e, HttpContext http)
    {
        var reasons = new List<string>();
        for (; e is not null; e = e.InnerException)
        {
            reasons.Add(Explained(e.Message));
        }
        var redirectUri = UriHelper.BuildAbsolute(http.Request.Scheme, http.Request.Host, http.Request.PathBase, CallbackPath);
        return (reasons.Count == 0 ? "unknown" : string.Join(" <- ", reasons)) + $" (redirect URI {redirectUri})";
    }

    /// <summary>The framework's terse reasons for a callback it refuses, with what they mean for the operator.</summary>
    private static string Explained(string message) => message switch
    {
        "Correlation failed." => message + " (the browser has no sign-in in progress for this callback: it was replayed, " +
                                 "opened in another browser, or the browser did not keep the sign-in's cookie)",
        _ when message.Contains("message.State", StringComparison.Ordinal) => message + " (the callback's state was not issued " +
                                 "by this server: a forged or altered callback, or the data protection keys changed since the sign-in began)",
        _ => message,
    };

    /// <summary>After the provider: the external identity becomes an owner's dashboard session, or the login page says why not.</summary>
    private static async Task<IResult> CompleteAsync(string? returnUrl, HttpContext http, OidcOwnerLinks links, DashboardSessions sessions,
        ILoggerFactory loggers, CancellationToken ct)
    {
        var external = await http.AuthenticateAsync(IdentityConstants.ExternalScheme);
        await http.SignOutAsync(IdentityConstants.ExternalScheme);
        if (!external.Succeeded || external.Principal is null)
        {
            return TypedResults.Redirect("/login?oidc=failed");
        }
        var owner = await links.FindOwnerAsync(external.Principal, ct);
        var logger = loggers.CreateLogger(LogCategory);
        if (owner is null)
        {
            OidcLog.NoOwner(logger);
            return TypedResults.Redirect("/login?oidc=unknown");
        }
        await sessions.SignInAsync(owner, ct);
        OidcLog.SignedIn(logger, owner.Id);
        return TypedResults.Redirect(LoginModel.SafeLocalUrl(returnUrl));
    }
}

/// <summary>
/// The framework's OpenID Connect handler, whose warnings and errors (a provider's refusal, its response unreadable, a
/// callback without its correlation cookie) are logged at <c>Information</c>: each of them ends in
/// <see cref="OidcLog.ProviderFailed"/>, one warning with the same reason, and is a setting, the provider or a stray
/// callback rather than a defect of the server.
/// </summary>
public sealed class OidcHandler(IOptionsMonitor<OpenIdConnectOptions> options, ILoggerFactory logger, HtmlEncoder htmlEncoder, UrlEncoder encoder)
    : OpenIdConnectHandler(options, new InformationOnly(logger), htmlEncoder, encoder)
{
    private sealed class InformationOnly(ILoggerFactory inner) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => new Logger(inner.CreateLogger(categoryName));

        public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

        public void Dispose()
        {
            // The application's logger factory, not this wrapper's to dispose.
        }

        private sealed class Logger(ILogger inner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => inner.BeginScope(state);

            public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(Capped(logLevel));

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                inner.Log(Capped(logLevel), eventId, state, exception, formatter);

            private static LogLevel Capped(LogLevel level) => level is LogLevel.Warning or LogLevel.Error or LogLevel.Critical ? LogLevel.Information : level;
        }
    }
}

/// <summary>
/// Maps a provider identity to an owner: first by its link (issuer and subject in <c>owner_logins</c>), then, once, by the
/// email the provider says it has verified, which links the subject for next time. An unverified email never matches:
/// anyone can put any address on an account at some providers.
/// </summary>
public sealed class OidcOwnerLinks(UserManager<Owner> users, GymwireDbContext db)
{
    public const string LinkDisplayName = "OpenID Connect";

    public async Task<Owner?> FindOwnerAsync(ClaimsPrincipal principal, CancellationToken ct)
    {
        var subject = principal.FindFirst("sub");
        if (subject is null || string.IsNullOrEmpty(subject.Issuer) || subject.Value.Length > 200)
        {
            return null;
        }
        // The issuer is part of the link, so a subject at another provider (after a configuration change) never matches.
        var provider = subject.Issuer;
        var linked = await users.FindByLoginAsync(provider, subject.Value);
        if (linked is not null)
        {
            return linked;
        }
        var email = principal.FindFirstValue("email");
        var verified = string.Equals(principal.FindFirstValue("email_verified"), "true", StringComparison.OrdinalIgnoreCase);
        if (!verified || string.IsNullOrWhiteSpace(email) || email.Length > 320)
        {
            return null;
        }
        var owner = await users.FindByEmailAsync(email);
        if (owner is null)
        {
            return null;
        }
        IdentityResult added;
        try
        {
            added = await users.AddLoginAsync(owner, new UserLoginInfo(provider, subject.Value, LinkDisplayName));
        }
        catch (DbUpdateException)
        {
            added = IdentityResult.Failed();
        }
        if (added.Succeeded)
        {
            return owner;
        }
        // A concurrent first sign-in linked it already (a duplicate key, or the owner row's concurrency stamp changed under
        // us). The failed insert and owner update are still tracked by this request's context, and its next save would
        // replay them; forget them, then trust only the link that is now stored.
        foreach (var entry in db.ChangeTracker.Entries().Where(e =>
                     e.Entity is IdentityUserLogin<Guid> || (e.Entity is Owner o && o.Id == owner.Id)).ToList())
        {
            entry.State = EntityState.Detached;
        }
        var stored = await users.FindByLoginAsync(provider, subject.Value);
        return stored?.Id == owner.Id ? stored : null;
    }
}

/// <summary>A provider's JWT on an API that takes none (no <c>Authentication:Oidc:Audience</c>): refused, saying so.</summary>
public sealed class OidcJwtRefusal : IBearerTokenValidator
{
    public string Prefix => "eyJ";

    public ValueTask<BearerValidation> ValidateAsync(ReadOnlyMemory<char> token, HttpContext context) =>
        ValueTask.FromResult(BearerValidation.Fail(
            "This server's API accepts no OpenID Connect tokens (Authentication:Oidc:Audience is not set); use a session token or an API key"));
}

/// <summary>A provider's JWT (a JWS always begins <c>eyJ</c>, the encoding of <c>{"</c>) as the owner's session on the API.</summary>
public sealed class OidcJwtValidator : IBearerTokenValidator
{
    public string Prefix => "eyJ";

    public async ValueTask<BearerValidation> ValidateAsync(ReadOnlyMemory<char> token, HttpContext context)
    {
        var result = await context.AuthenticateAsync(OidcSetup.JwtScheme);
        if (!result.Succeeded || result.Principal is null)
        {
            return BearerValidation.Fail(result.Failure switch
            {
                SecurityTokenInvalidIssuerException => "The token's issuer is not this server's OpenID Connect provider",
                SecurityTokenInvalidAudienceException => "The token's audience is not this server's API",
                SecurityTokenExpiredException => "The token has expired; sign in again",
                SecurityTokenSignatureKeyNotFoundException or SecurityTokenInvalidSignatureException =>
                    "The token's signature is not the OpenID Connect provider's",
                _ => "Invalid OpenID Connect token",
            });
        }
        var links = context.RequestServices.GetRequiredService<OidcOwnerLinks>();
        var owner = await links.FindOwnerAsync(result.Principal, context.RequestAborted);
        if (owner is null)
        {
            return BearerValidation.Fail("No owner account matches this OpenID Connect identity (a verified email, or a prior dashboard sign-in)");
        }
        var identity = new ClaimsIdentity(
        [
            new Claim(GymwireClaims.ActorId, owner.Id.ToString()),
            new Claim(GymwireClaims.GymId, owner.GymId.ToString()),
            new Claim(GymwireClaims.Actor, GymwireClaims.OwnerActor),
        ], BearerAuthenticationHandler.SchemeName);
        return BearerValidation.Success(new ClaimsPrincipal(identity));
    }
}

internal static partial class OidcLog
{
    [LoggerMessage(EventId = 7040, Level = LogLevel.Information, Message = "Owner {OwnerId} signed in to the dashboard with OpenID Connect")]
    public static partial void SignedIn(ILogger logger, Guid ownerId);

    [LoggerMessage(EventId = 7041, Level = LogLevel.Warning, Message = "OpenID Connect sign-in refused: no owner has that identity or verified email")]
    public static partial void NoOwner(ILogger logger);

    [LoggerMessage(EventId = 7047, Level = LogLevel.Warning, Message = "OpenID Connect sign-in with {Authority} failed: {Reason}")]
    public static partial void ProviderFailed(ILogger logger, string authority, string reason);
}
