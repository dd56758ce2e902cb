using System.Security.Claims;
using Gymwire.Data;
using Gymwire.Infrastructure;
using Gymwire.Infrastructure.Auth;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Features.Gyms;

/// <summary>Owner API sessions: <c>gws_</c> + 64 hex, stored as SHA-256, revoked on logout.</summary>
public sealed class OwnerSessionValidator(TimeProvider clock) : IBearerTokenValidator
{
    public const string TokenPrefix = "gws_";
    public const string SessionIdClaim = "session_id";

    public string Prefix => TokenPrefix;

    public async Task<BearerValidation> ValidateAsync(string token, HttpContext context)
    {
        if (token.Length != TokenPrefix.Length + 64)
        {
            return BearerValidation.Fail("Invalid session token");
        }
        var hash = Secrets.Sha256(token);
        var db = context.RequestServices.GetRequiredService<GymwireDbContext>();
        var session = await db.OwnerSessions.AsNoTracking()
            .Where(s => s.TokenHash == hash)
            .Select(s => new { s.Id, s.OwnerId, s.GymId, s.ExpiresAt, s.RevokedAt })
            .FirstOrDefaultAsync(context.RequestAborted);
        if (session is null || session.RevokedAt is not null)
        {
            return BearerValidation.Fail("Invalid or revoked session token");
        }
        if (session.ExpiresAt <= clock.GetUtcNow().UtcDateTime)
        {
            return BearerValidation.Fail("Session token expired; log in again");
        }
        var identity = new ClaimsIdentity(
        [
            new Claim(GymwireClaims.ActorId, session.OwnerId.ToString()),
            new Claim(GymwireClaims.GymId, session.GymId.ToString()),
            new Claim(GymwireClaims.Actor, GymwireClaims.OwnerActor),
            new Claim(SessionIdClaim, session.Id.ToString()),
        ], BearerAuthenticationHandler.SchemeName);
        return BearerValidation.Success(new ClaimsPrincipal(identity));
    }
}
