using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gymwire.Infrastructure.Auth;

/// <summary>
/// Validates one kind of bearer token, recognised by its prefix (<c>cs_</c> API keys, <c>gws_</c>
/// owner sessions). Features register their own; the handler picks by prefix.
/// </summary>
public interface IBearerTokenValidator
{
    string Prefix { get; }

    /// <summary>
    /// A ticket for a valid token, or a client-facing reason it was refused. The token is a slice of the header (no copy
    /// per request); the result a value task, since a cached API key answers synchronously.
    /// </summary>
    ValueTask<BearerValidation> ValidateAsync(ReadOnlyMemory<char> token, HttpContext context);
}

public readonly record struct BearerValidation(AuthenticationTicket? Ticket, string? Failure)
{
    public static BearerValidation Success(ClaimsPrincipal principal) => new(new AuthenticationTicket(principal, BearerAuthenticationHandler.SchemeName), null);

    /// <summary>
    /// A ticket the validator keeps and hands to every request of the same token (see <c>ApiKeyValidator</c>):
    /// concurrent requests share it, its principal and its properties, so nothing may change them.
    /// </summary>
    public static BearerValidation Success(AuthenticationTicket ticket) => new(ticket, null);

    public static BearerValidation Fail(string reason) => new(null, reason);
}

/// <summary><c>Authorization: Bearer …</c> for the API: API keys and owner session tokens.</summary>
public sealed class BearerAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    IEnumerable<IBearerTokenValidator> validators)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Bearer";
    internal const string MissingMessage = "Missing API key: send 'Authorization: Bearer cs_...'";

    private readonly IBearerTokenValidator[] _validators = validators.ToArray();

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization;
        if (header.Count == 0)
        {
            return AuthenticateResult.NoResult();
        }
        if (header.Count > 1)
        {
            return AuthenticateResult.Fail("Send exactly one Authorization header");
        }
        var value = header[0] ?? "";
        if (!value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return AuthenticateResult.Fail("The Authorization header must be 'Bearer <key>'");
        }
        var token = value.AsMemory("Bearer ".Length).Trim();
        foreach (var validator in _validators)
        {
            if (token.Span.StartsWith(validator.Prefix, StringComparison.Ordinal))
            {
                var result = await validator.ValidateAsync(token, Context);
                return result.Ticket is { } ticket
                    ? AuthenticateResult.Success(ticket)
                    : AuthenticateResult.Fail(result.Failure ?? "Invalid credentials");
            }
        }
        return AuthenticateResult.Fail("Invalid API key");
    }
}

/// <summary>Writes 401 and 403 in the error shape, with the reason the request was refused.</summary>
public sealed class JsonAuthorizationResultHandler : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler _default = new();

    // An authorized request goes straight on, as the default handler would send it: no async frame of this handler
    // around the rest of the pipeline, and no call into the default handler, which allocates its failure path's
    // closure on every call.
    public Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult) =>
        authorizeResult.Succeeded ? next(context) : RefuseAsync(next, context, policy, authorizeResult);

    private async Task RefuseAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (policy.AuthenticationSchemes.Count > 0 && !policy.AuthenticationSchemes.Contains(BearerAuthenticationHandler.SchemeName))
        {
            // The dashboard's cookie policy: its scheme challenges with a redirect to the login page.
            await _default.HandleAsync(next, context, policy, authorizeResult);
            return;
        }
        if (authorizeResult.Challenged)
        {
            // The handler caches its result per request, so this re-reads the reason rather than re-validating.
            var failure = (await context.AuthenticateAsync(BearerAuthenticationHandler.SchemeName)).Failure?.Message;
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await ApiErrors.WriteAsync(context, StatusCodes.Status401Unauthorized, failure ?? BearerAuthenticationHandler.MissingMessage);
            return;
        }
        if (authorizeResult.Forbidden)
        {
            var reason = authorizeResult.AuthorizationFailure?.FailureReasons.FirstOrDefault()?.Message ?? "Forbidden";
            await ApiErrors.WriteAsync(context, StatusCodes.Status403Forbidden, reason);
            return;
        }
        await _default.HandleAsync(next, context, policy, authorizeResult);
    }
}

/// <summary>Requires a scope: owners have every scope; API keys need it granted.</summary>
public sealed class ScopeRequirement(string scope) : IAuthorizationRequirement
{
    public string Scope { get; } = scope;
}

/// <summary>Requires an owner session: API keys, whatever their scopes, are refused.</summary>
public sealed class OwnerRequirement : IAuthorizationRequirement;

/// <summary>Requires an authenticated principal of a gym (every API policy has it).</summary>
public sealed class GymRequirement : IAuthorizationRequirement;

public sealed class GymwireAuthorizationHandler : IAuthorizationHandler
{
    public Task HandleAsync(AuthorizationHandlerContext context)
    {
        var user = context.User;
        // The policy's requirements, not PendingRequirements (which Succeed changes): no copy per request. They are the
        // policy's list: indexed, no boxed enumerator.
        var requirements = context.Requirements as IReadOnlyList<IAuthorizationRequirement> ?? [.. context.Requirements];
        for (var i = 0; i < requirements.Count; i++)
        {
            var requirement = requirements[i];
            switch (requirement)
            {
                case ScopeRequirement scope when user.HasScope(scope.Scope):
                case OwnerRequirement when user.IsOwner():
                // The claim's own identity is authenticated: no anonymous identity beside it can satisfy this.
                case GymRequirement when user.FindFirst(GymwireClaims.GymId) is { Subject.IsAuthenticated: true }:
                    context.Succeed(requirement);
                    break;
                case ScopeRequirement scope:
                    context.Fail(new AuthorizationFailureReason(this, $"This API key lacks the '{scope.Scope}' scope"));
                    break;
                case OwnerRequirement:
                    context.Fail(new AuthorizationFailureReason(this, "This endpoint requires an owner session; API keys cannot use it"));
                    break;
                default:
                    break;
            }
        }
        return Task.CompletedTask;
    }
}

public static class AuthSetup
{
    public static IServiceCollection AddGymwireAuth(this IServiceCollection services)
    {
        services.AddAuthentication(BearerAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, BearerAuthenticationHandler>(BearerAuthenticationHandler.SchemeName, null);
        services.AddSingleton<IAuthorizationHandler, GymwireAuthorizationHandler>();
        services.AddSingleton<IAuthorizationMiddlewareResultHandler, JsonAuthorizationResultHandler>();
        services.AddAuthorizationBuilder()
            .AddPolicy(Policies.Read, p => Api(p).AddRequirements(new ScopeRequirement(Scopes.Read)))
            .AddPolicy(Policies.Write, p => Api(p).AddRequirements(new ScopeRequirement(Scopes.Write)))
            .AddPolicy(Policies.Owner, p => Api(p).AddRequirements(new OwnerRequirement()));
        // The framework registers its authorization services as transient: every authorized request resolved a policy
        // evaluator, an authorization service, a handler provider (with the handlers' array and a pass-through handler),
        // an evaluator and a context factory anew. They keep no state and Gymwire's handlers are singletons, so one
        // instance of each serves every request (docs/benchmark-findings.md, M2).
        services.Replace(ServiceDescriptor.Singleton<IAuthorizationPolicyProvider, DefaultAuthorizationPolicyProvider>());
        services.Replace(ServiceDescriptor.Singleton<IAuthorizationHandlerProvider, DefaultAuthorizationHandlerProvider>());
        services.Replace(ServiceDescriptor.Singleton<IAuthorizationEvaluator, DefaultAuthorizationEvaluator>());
        services.Replace(ServiceDescriptor.Singleton<IAuthorizationHandlerContextFactory, DefaultAuthorizationHandlerContextFactory>());
        services.Replace(ServiceDescriptor.Singleton<IAuthorizationService, DefaultAuthorizationService>());
        services.Replace(ServiceDescriptor.Singleton<IPolicyEvaluator, PolicyEvaluator>());
        return services;
    }

    // The API's policies name no scheme: Bearer is the default scheme, so the authentication middleware has
    // already set HttpContext.User from it. A policy that named it would make the policy evaluator authenticate
    // again (cached, but each request still merged the principal into a new one): a share of every API request,
    // measured (docs/benchmark-findings.md, M2). The dashboard's policy names its cookie scheme, which is not the default.
    // GymRequirement is RequireAuthenticatedUser and RequireClaim(gym_id) in one check by Gymwire's handler: those two
    // are handlers of their own, each run through LINQ iterators and claim enumerators on every request.
    private static AuthorizationPolicyBuilder Api(AuthorizationPolicyBuilder policy) =>
        policy.AddRequirements(new GymRequirement());
}
