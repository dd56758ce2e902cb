using Microsoft.AspNetCore.Identity;

namespace Gymwire.Features.Gyms;

public sealed record LoginRequest(string? Email, string? Password);

public sealed record ChangePasswordRequest(string? CurrentPassword, string? NewPassword);

public sealed record LoginResponse(string Token, string TokenType, DateTime ExpiresAt, Guid GymId, Guid OwnerId);

/// <summary>Who the caller is: the gym, and the owner or API key calling (Zapier's connection test).</summary>
public sealed record MeResponse(Guid GymId, string GymName, string Actor, Guid ActorId, string? KeyName, string[] Scopes);

/// <summary>Owner sign-in for the API (bearer session tokens) and the caller's identity.</summary>
public static class AuthEndpoints
{
    public static IEndpointRouteBuilder MapAuth(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api").WithTags("Auth");
        group.MapPost("/auth/login", Login).AllowAnonymous().WithNoStore();
        group.MapPost("/auth/logout", Logout).RequireAuthorization(Policies.Owner);
        group.MapPost("/auth/logout-everywhere", LogoutEverywhere).RequireAuthorization(Policies.Owner);
        group.MapPost("/auth/password", ChangePassword).RequireAuthorization(Policies.Owner);
        group.MapGet("/me", Me).RequireAuthorization(Policies.Read);
        return app;
    }

    internal static async Task<Results<Ok<LoginResponse>, BadRequest<ErrorResponse>, JsonHttpResult<ErrorResponse>>> Login(
        LoginRequest request, OwnerSignIn signIn, GymwireDbContext db, TimeProvider clock, IOptions<AuthOptions> options,
        HttpContext http, CancellationToken ct)
    {
        var v = new RequestValidator().Required(request.Email, "email", 320).Required(request.Password, "password", 256);
        if (v.Error is { } invalid)
        {
            return ApiErrors.BadRequest(invalid);
        }
        var result = await signIn.SignInAsync(request.Email!, request.Password!, http.Connection.RemoteIpAddress, ct);
        if (result is not { Outcome: SignInOutcome.Succeeded, Owner: { } owner })
        {
            return Refused(http, result);
        }
        var now = clock.GetUtcNow().UtcDateTime;
        var token = Secrets.NewHexToken(OwnerSessionValidator.TokenPrefix);
        var session = OwnerSessions.Add(db, owner, token, now, options.Value.SessionLifetime);
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(new LoginResponse(token, "Bearer", session.ExpiresAt, owner.GymId, owner.Id));
    }

    /// <summary>The answer to a refused sign-in: the same for a wrong password and an unknown email.</summary>
    internal static JsonHttpResult<ErrorResponse> Refused(HttpContext http, SignInResult result)
    {
        if (result.Outcome == SignInOutcome.Invalid)
        {
            return ApiErrors.Status(StatusCodes.Status401Unauthorized, InvalidCredentials);
        }
        http.Response.Headers.RetryAfter = result.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        return ApiErrors.Status(StatusCodes.Status429TooManyRequests, OwnerSignIn.TooManyMessage(result));
    }

    public const string InvalidCredentials = "Invalid email or password";

    internal static async Task<NoContent> Logout(ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (Guid.TryParse(user.FindFirstValue(OwnerSessionValidator.SessionIdClaim), out var sessionId))
        {
            await OwnerSessions.RevokeAsync(db, sessionId, clock.GetUtcNow().UtcDateTime, ct);
        }
        return TypedResults.NoContent();
    }

    /// <summary>Sign out everywhere: every API session and dashboard cookie of the owner, this one included.</summary>
    internal static async Task<NoContent> LogoutEverywhere(ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        await OwnerSessions.RevokeAllAsync(db, user.GetActorId(), keep: null, clock.GetUtcNow().UtcDateTime, ct);
        return TypedResults.NoContent();
    }

    /// <summary>Changes the owner's password: needs the current one (counted toward the lockout) and ends every other session.</summary>
    internal static async Task<Results<NoContent, BadRequest<ErrorResponse>, JsonHttpResult<ErrorResponse>>> ChangePassword(
        ChangePasswordRequest request, ClaimsPrincipal user, OwnerSignIn signIn, UserManager<Owner> users, HttpContext http, CancellationToken ct)
    {
        var v = new RequestValidator().Required(request.CurrentPassword, "current_password", 256).Required(request.NewPassword, "new_password", 256);
        if (v.Error is { } invalid)
        {
            return ApiErrors.BadRequest(invalid);
        }
        var owner = await users.FindByIdAsync(user.GetActorId().ToString());
        if (owner is null)
        {
            return ApiErrors.Status(StatusCodes.Status401Unauthorized, "Invalid or revoked session token");
        }
        var (error, status) = await signIn.ChangePasswordAsync(owner, request.CurrentPassword!, request.NewPassword!,
            Guid.TryParse(user.FindFirstValue(OwnerSessionValidator.SessionIdClaim), out var id) ? id : null, http, ct);
        return error is null ? TypedResults.NoContent() : ApiErrors.Status(status, error);
    }

    internal static async Task<Ok<MeResponse>> Me(ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct)
    {
        var gymId = user.GetGymId();
        var gymName = await db.Gyms.Where(g => g.Id == gymId).Select(g => g.Name).FirstAsync(ct);
        var scopes = user.IsOwner() ? Scopes.All : user.FindAll(GymwireClaims.Scope).Select(c => c.Value).ToArray();
        return TypedResults.Ok(new MeResponse(gymId, gymName, user.FindFirstValue(GymwireClaims.Actor)!, user.GetActorId(),
            user.FindFirstValue(GymwireClaims.KeyName), scopes));
    }
}
