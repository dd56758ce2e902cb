using System.Security.Cryptography;
using Gymwire.Features.Dashboard.Integrations;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Http.Extensions;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.ApplicationParts;
using Microsoft.AspNetCore.Mvc.Core.Infrastructure;
using Microsoft.AspNetCore.Mvc.Filters;
using Microsoft.AspNetCore.Mvc.ViewFeatures;

namespace Gymwire.Features.Dashboard;

/// <summary>Authorization policy of the dashboard pages.</summary>
public static class DashboardPolicies
{
    /// <summary>An owner signed in with the dashboard cookie. The API never accepts this cookie.</summary>
    public const string Owner = "dashboard-owner";
}

/// <summary>
/// The owner dashboard: Razor Pages under <c>Features/Dashboard</c>, signed in with the Identity application
/// cookie. The API keeps <c>Bearer</c> as its only scheme, so a browser session can never call the API
/// (no CSRF through the API) and API errors stay JSON; only the pages challenge with a redirect to <c>/login</c>.
/// </summary>
public static class DashboardSetup
{
    public const string CookieName = "gymwire_session";
    public const string AntiforgeryCookieName = "gymwire_antiforgery";

    public static IServiceCollection AddDashboard(this IServiceCollection services)
    {
        new IdentityBuilder(typeof(Owner), services)
            .AddSignInManager()
            .AddClaimsPrincipalFactory<OwnerClaimsPrincipalFactory>();
        services.AddAuthentication().AddIdentityCookies();
        services.ConfigureApplicationCookie(o =>
        {
            o.Cookie.Name = CookieName;
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Lax;
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            o.LoginPath = "/login";
            o.LogoutPath = "/logout";
            o.AccessDeniedPath = "/login";
            o.ReturnUrlParameter = "returnUrl";
            o.SlidingExpiration = true;
            // Replaces Identity's security-stamp check: the session row is checked on every request instead.
            o.Events.OnValidatePrincipal = DashboardSessions.ValidateAsync;
            // Signing in on /login, the handler would itself redirect to ?returnUrl= as given, unencoded (a non-ASCII path made
            // an invalid Location header: a 500 after the sign-in). The login page redirects, to a checked and encoded URL.
            o.Events.OnRedirectToReturnUrl = _ => Task.CompletedTask;
        });
        services.AddOptions<CookieAuthenticationOptions>(IdentityConstants.ApplicationScheme)
            .Configure<IOptions<AuthOptions>>((o, auth) => o.ExpireTimeSpan = auth.Value.DashboardIdleTimeout);
        services.AddScoped<DashboardSessions>();
        services.AddScoped<GymTime>();
        services.AddScoped<Settings.WebhookHealthQueries>();
        services.AddAntiforgery(o =>
        {
            o.Cookie.Name = AntiforgeryCookieName;
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
        });
        // The one-time messages and shown-once secrets after a redirect (Flash.cs) travel in this cookie: Secure
        // behind TLS like the others, deletion included.
        services.Configure<Microsoft.AspNetCore.Mvc.CookieTempDataProviderOptions>(o =>
        {
            o.Cookie.Name = "gymwire_flash";
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
        });
        services.AddAuthorizationBuilder().AddPolicy(DashboardPolicies.Owner, p => p
            .AddAuthenticationSchemes(IdentityConstants.ApplicationScheme)
            .RequireAuthenticatedUser()
            .RequireClaim(GymwireClaims.GymId)
            .RequireClaim(GymwireClaims.Actor, GymwireClaims.OwnerActor));
        services.AddRazorPages(o =>
        {
            o.RootDirectory = "/Features/Dashboard";
            o.Conventions.AuthorizeFolder("/", DashboardPolicies.Owner);
            // Until the first gym exists; from another machine than the server only with the set-up token (SetupToken).
            o.Conventions.AllowAnonymousToPage("/Setup");
            o.Conventions.AllowAnonymousToPage("/Login");
            o.Conventions.AllowAnonymousToPage("/ForgotPassword");
            o.Conventions.AllowAnonymousToPage("/ResetPassword");
            o.Conventions.AllowAnonymousToPage("/NotFound");
            o.Conventions.ConfigureFilter(new DashboardHeadersFilter());
            o.Conventions.ConfigureFilter(new GymTimeFilter());
            o.Conventions.ConfigureFilter(new ExpiredFormFilter());
            o.Conventions.ConfigureFilter(new NoHandlerFilter());
        }).ConfigureApplicationPartManager(AddServerAssembly);
        services.AddIntegrationStatuses();
        services.AddSingleton<DashboardRateLimits>();
        services.AddOptions<SetupOptions>().BindConfiguration(SetupOptions.Section);
        services.AddSingleton<SetupToken>();
        services.AddHostedService<SetupTokenAtStart>();
        return services;
    }

    // MVC looks for pages in the entry assembly; when tests host the server in-process, that is the test runner.
    private static void AddServerAssembly(ApplicationPartManager manager)
    {
        var assembly = typeof(DashboardSetup).Assembly;
        if (manager.ApplicationParts.OfType<AssemblyPart>().Any(p => p.Assembly == assembly))
        {
            return;
        }
        foreach (var part in ApplicationPartFactory.GetApplicationPartFactory(assembly).GetApplicationParts(assembly))
        {
            manager.ApplicationParts.Add(part);
        }
    }

    public static IEndpointRouteBuilder MapDashboard(this IEndpointRouteBuilder app)
    {
        app.MapRazorPages();
        app.MapGet(DashboardAssets.CssPath, DashboardAssets.ServeCss).AllowAnonymous().ExcludeFromDescription();
        app.MapGet(DashboardAssets.JsPath, DashboardAssets.ServeJs).AllowAnonymous().ExcludeFromDescription();
        return app;
    }
}

/// <summary>Adds the gym and the actor to the cookie principal, so the helpers in <see cref="GymwireClaims"/> work on it.</summary>
public sealed class OwnerClaimsPrincipalFactory(UserManager<Owner> users, IOptions<IdentityOptions> options)
    : UserClaimsPrincipalFactory<Owner>(users, options)
{
    protected override async Task<ClaimsIdentity> GenerateClaimsAsync(Owner user)
    {
        var identity = await base.GenerateClaimsAsync(user);
        identity.AddClaim(new Claim(GymwireClaims.GymId, user.GymId.ToString()));
        identity.AddClaim(new Claim(GymwireClaims.Actor, GymwireClaims.OwnerActor));
        return identity;
    }
}

/// <summary>
/// Security headers on every dashboard page: only the server's own stylesheet and script may load, no framing,
/// forms post only to Gymwire itself.
/// </summary>
internal sealed class DashboardHeadersFilter : IResultFilter
{
    public void OnResultExecuting(ResultExecutingContext context)
    {
        var headers = context.HttpContext.Response.Headers;
        headers.ContentSecurityPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; " +
                                        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "same-origin";
        // What antiforgery sets on a page with a form; set on every page, it leaves antiforgery nothing to override (and warn about).
        headers.CacheControl = "no-cache, no-store";
        headers.Pragma = "no-cache";
    }

    public void OnResultExecuted(ResultExecutedContext context)
    {
    }
}

/// <summary>
/// A form posted with a missing or stale antiforgery token (a tab left open past a restart, or across a sign-out and
/// back in) goes back to its page with a message instead of a bare 400. The handler never ran, so nothing changed.
/// </summary>
internal sealed class ExpiredFormFilter : IAlwaysRunResultFilter
{
    public const string Message = "That form had expired, so nothing was saved. Please try again.";

    public void OnResultExecuting(ResultExecutingContext context)
    {
        if (context.Result is not IAntiforgeryValidationFailedResult)
        {
            return;
        }
        var http = context.HttpContext;
        var tempData = http.RequestServices.GetRequiredService<ITempDataDictionaryFactory>().GetTempData(http);
        tempData.SetProblem(Message);
        // Saved here: the antiforgery check stops the request before the filter that saves TempData runs.
        tempData.Save();
        var url = UriHelper.BuildRelative(http.Request.PathBase, http.Request.Path, http.Request.QueryString);
        // A path that a browser would read as another host ("//host", "/\host") goes home instead.
        context.Result = new RedirectResult(url.StartsWith("//", StringComparison.Ordinal) || url.StartsWith("/\\", StringComparison.Ordinal) ? "/" : url);
    }

    public void OnResultExecuted(ResultExecutedContext context)
    {
    }
}

/// <summary>
/// The dashboard's stylesheet and its one small script, embedded in the executable so a single-file deployment
/// serves them without a wwwroot folder. Their URLs carry a content hash, so browsers may cache them for good.
/// </summary>
public static class DashboardAssets
{
    public const string CssPath = "/assets/dashboard.css";
    public const string JsPath = "/assets/dashboard.js";

    private static readonly Asset Css = new("Gymwire.Dashboard.dashboard.css", "text/css; charset=utf-8");
    private static readonly Asset Js = new("Gymwire.Dashboard.dashboard.js", "text/javascript; charset=utf-8");

    public static string CssUrl => $"{CssPath}?v={Css.Hash}";

    public static string JsUrl => $"{JsPath}?v={Js.Hash}";

    internal static IResult ServeCss(HttpContext context) => Css.Serve(context);

    internal static IResult ServeJs(HttpContext context) => Js.Serve(context);

    private sealed class Asset(string resourceName, string contentType)
    {
        private readonly Lazy<(byte[] Bytes, string Hash)> _content = new(() =>
        {
            using var stream = typeof(DashboardAssets).Assembly.GetManifestResourceStream(resourceName)
                ?? throw new InvalidOperationException($"The dashboard asset {resourceName} is not embedded in the executable.");
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var bytes = copy.ToArray();
            return (bytes, Convert.ToHexStringLower(SHA256.HashData(bytes))[..12]);
        });

        public string Hash => _content.Value.Hash;

        public IResult Serve(HttpContext context)
        {
            var (bytes, hash) = _content.Value;
            var etag = $"\"{hash}\"";
            context.Response.Headers.ETag = etag;
            context.Response.Headers.CacheControl = "public, max-age=31536000, immutable";
            context.Response.Headers.XContentTypeOptions = "nosniff";
            if (context.Request.Headers.IfNoneMatch == etag)
            {
                return TypedResults.StatusCode(StatusCodes.Status304NotModified);
            }
            return TypedResults.Bytes(bytes, contentType);
        }
    }
}
