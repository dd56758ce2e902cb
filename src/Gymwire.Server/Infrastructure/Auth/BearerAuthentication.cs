using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.Extensions.Options;

namespace Gymwire.Infrastructure.Auth;

/// <summary>
/// Validates one kind of bearer token, recognised by its prefix (<c>cs_</c> API keys, <c>gws_</c>
/// owner sessions). Features register their own; the handler picks by prefix.
/// </summary>
public interface IBearerTokenValidator
{
    string Prefix { get; }

    /// <summary>A principal for a valid token, or a client-facing reason it was refused.</summary>
    Task<BearerValidation> ValidateAsync(string token, HttpContext context);
}

public readonly record struct BearerValidation(ClaimsPrincipal? Principal, string? Failure)
{
    public static BearerValidation Success(ClaimsPrincipal principal) => new(principal, null);
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
        var token = value["Bearer ".Length..].Trim();
        foreach (var validator in _validators)
        {
            if (token.StartsWith(validator.Prefix, StringComparison.Ordinal))
            {
                var result = await validator.ValidateAsync(token, Context);
                return result.Principal is { } principal
                    ? AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName))
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

    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
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

public sealed class GymwireAuthorizationHandler : IAuthorizationHandler
{
    public Task HandleAsync(AuthorizationHandlerContext context)
    {
        var user = context.User;
        // The policy's requirements, not PendingRequirements (which Succeed changes): no copy per request.
        foreach (var requirement in context.Requirements)
        {
            switch (requirement)
            {
                case ScopeRequirement scope when user.HasScope(scope.Scope):
                case OwnerRequirement when user.IsOwner():
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
        return services;
    }

    // The API's policies name no scheme: Bearer is the default scheme, so the authentication middleware has
    // already set HttpContext.User from it. A policy that named it would make the policy evaluator authenticate
    // again (cached, but each request still merged the principal into a new one): a share of every API request,
    // measured (docs/benchmark-findings.md, M2). The dashboard's policy names its cookie scheme, which is not the default.
    private static AuthorizationPolicyBuilder Api(AuthorizationPolicyBuilder policy) =>
        policy.RequireAuthenticatedUser().RequireClaim(GymwireClaims.GymId);
}
