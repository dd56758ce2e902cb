using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Identity;

namespace Gymwire.Features.Dashboard;

/// <summary>
/// Dashboard cookies are server-side sessions: each names a row in <c>owner_sessions</c>, checked on every request, so
/// logout, "sign out everywhere" and a password change end it on every node at once. The row's expiry is the absolute
/// lifetime (<c>Auth:DashboardSessionLifetime</c>); the cookie's own sliding expiry is <c>Auth:DashboardIdleTimeout</c>.
/// </summary>
public sealed class DashboardSessions(SignInManager<Owner> signIn, GymwireDbContext db, TimeProvider clock, IOptions<AuthOptions> options)
{
    public async Task SignInAsync(Owner owner, CancellationToken ct)
    {
        var session = OwnerSessions.AddForCookie(db, owner, clock.GetUtcNow().UtcDateTime, options.Value.DashboardSessionLifetime);
        await db.SaveChangesAsync(ct);
        await signIn.SignInWithClaimsAsync(owner, isPersistent: false, [new Claim(OwnerSessionValidator.SessionIdClaim, session.Id.ToString())]);
    }

    public async Task SignOutAsync(HttpContext http, CancellationToken ct)
    {
        if (SessionId(http.User) is { } id)
        {
            await OwnerSessions.RevokeAsync(db, id, clock.GetUtcNow().UtcDateTime, ct);
        }
        await signIn.SignOutAsync();
    }

    public static Guid? SessionId(ClaimsPrincipal? user) =>
        Guid.TryParse(user?.FindFirstValue(OwnerSessionValidator.SessionIdClaim), out var id) ? id : null;

    /// <summary>The cookie's <c>OnValidatePrincipal</c>: refuses a cookie whose session row is gone, revoked or past its absolute expiry.</summary>
    public static async Task ValidateAsync(CookieValidatePrincipalContext context)
    {
        var services = context.HttpContext.RequestServices;
        var now = services.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime;
        var principal = context.Principal;
        if (SessionId(principal) is { } sessionId
            && Guid.TryParse(principal!.FindFirstValue(GymwireClaims.ActorId), out var ownerId)
            && await OwnerSessions.IsActiveAsync(services.GetRequiredService<GymwireDbContext>(), sessionId, ownerId, now, context.HttpContext.RequestAborted))
        {
            return;
        }
        context.RejectPrincipal();
        await context.HttpContext.SignOutAsync(IdentityConstants.ApplicationScheme);
    }
}
