using System.Security.Claims;
using Gymwire.Data;
using Gymwire.Infrastructure;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Gyms;

public sealed record LoginRequest(string? Email, string? Password);

public sealed record LoginResponse(string Token, string TokenType, DateTime ExpiresAt, Guid GymId, Guid OwnerId);

/// <summary>Who the caller is: the gym, and the owner or API key calling (Zapier's connection test).</summary>
public sealed record MeResponse(Guid GymId, string GymName, string Actor, Guid ActorId, string? KeyName, string[] Scopes);

/// <summary>Owner sign-in for the API (bearer session tokens) and the caller's identity.</summary>
public static class AuthEndpoints
{
    public static IEndpointRouteBuilder MapAuth(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api").WithTags("Auth");
        group.MapPost("/auth/login", Login).AllowAnonymous();
        group.MapPost("/auth/logout", Logout).RequireAuthorization(Policies.Owner);
        group.MapGet("/me", Me).RequireAuthorization(Policies.Read);
        return app;
    }

    internal static async Task<Results<Ok<LoginResponse>, BadRequest<ErrorResponse>, JsonHttpResult<ErrorResponse>>> Login(
        LoginRequest request, UserManager<Owner> users, GymwireDbContext db, TimeProvider clock, IOptions<AuthOptions> options, CancellationToken ct)
    {
        var v = new RequestValidator().Required(request.Email, "email", 320).Required(request.Password, "password", 256);
        if (v.Error is { } invalid)
        {
            return ApiErrors.BadRequest(invalid);
        }
        var owner = await users.FindByEmailAsync(request.Email!);
        if (owner is null)
        {
            // Spend the same time as a real check, so response time does not reveal which emails exist.
            users.PasswordHasher.VerifyHashedPassword(new Owner(), DummyHash.Value, request.Password!);
            return ApiErrors.Status(401, "Invalid email or password");
        }
        if (await users.IsLockedOutAsync(owner))
        {
            return ApiErrors.Status(429, "Too many failed sign-in attempts; try again later");
        }
        if (!await users.CheckPasswordAsync(owner, request.Password!))
        {
            await users.AccessFailedAsync(owner);
            return ApiErrors.Status(401, "Invalid email or password");
        }
        await users.ResetAccessFailedCountAsync(owner);

        var now = clock.GetUtcNow().UtcDateTime;
        var token = Secrets.NewHexToken(OwnerSessionValidator.TokenPrefix);
        var session = new OwnerSession
        {
            Id = Guid.CreateVersion7(now),
            OwnerId = owner.Id,
            GymId = owner.GymId,
            TokenHash = Secrets.Sha256(token),
            CreatedAt = now,
            ExpiresAt = now + options.Value.SessionLifetime,
        };
        db.OwnerSessions.Add(session);
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(new LoginResponse(token, "Bearer", session.ExpiresAt, owner.GymId, owner.Id));
    }

    internal static async Task<NoContent> Logout(ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (Guid.TryParse(user.FindFirstValue(OwnerSessionValidator.SessionIdClaim), out var sessionId))
        {
            var now = clock.GetUtcNow().UtcDateTime;
            await db.OwnerSessions.Where(s => s.Id == sessionId && s.RevokedAt == null)
                .ExecuteUpdateAsync(s => s.SetProperty(x => x.RevokedAt, now), ct);
        }
        return TypedResults.NoContent();
    }

    internal static async Task<Ok<MeResponse>> Me(ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct)
    {
        var gymId = user.GetGymId();
        var gymName = await db.Gyms.Where(g => g.Id == gymId).Select(g => g.Name).FirstAsync(ct);
        var scopes = user.IsOwner() ? Scopes.All : user.FindAll(GymwireClaims.Scope).Select(c => c.Value).ToArray();
        return TypedResults.Ok(new MeResponse(gymId, gymName, user.FindFirstValue(GymwireClaims.Actor)!, user.GetActorId(),
            user.FindFirstValue(GymwireClaims.KeyName), scopes));
    }

    private static class DummyHash
    {
        public static readonly string Value = new PasswordHasher<Owner>().HashPassword(new Owner(), "not-a-real-password");
    }
}
