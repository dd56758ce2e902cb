using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>Change password (needs the current one; ends every other session) and sign out everywhere.</summary>
public sealed partial class SecurityModel(
    OwnerSignIn signIn, UserManager<Owner> users, GymwireDbContext db, TimeProvider clock, DashboardSessions sessions, ILogger<SecurityModel> logger)
    : PageModel
{
    public bool Changed { get; private set; }

    public void OnGet()
    {
    }

    public async Task<IActionResult> OnPostPasswordAsync([FromForm] string? currentPassword, [FromForm] string? newPassword, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(currentPassword) || string.IsNullOrEmpty(newPassword) || currentPassword.Length > 256 || newPassword.Length > 256)
        {
            ModelState.AddModelError(string.Empty, "Enter your current password and a new one (at most 256 characters).");
            return Page();
        }
        var owner = await users.FindByIdAsync(User.GetActorId().ToString());
        if (owner is null)
        {
            return Redirect("/login");
        }
        var (error, status) = await signIn.ChangePasswordAsync(owner, currentPassword, newPassword, DashboardSessions.SessionId(User),
            HttpContext, ct);
        if (error is not null)
        {
            Response.StatusCode = status;
            ModelState.AddModelError(string.Empty, error.EndsWith('.') ? error : error + ".");
            return Page();
        }
        LogPasswordChanged(logger, owner.Id);
        Changed = true;
        return Page();
    }

    public async Task<IActionResult> OnPostSignOutEverywhereAsync(CancellationToken ct)
    {
        var ownerId = User.GetActorId();
        await OwnerSessions.RevokeAllAsync(db, ownerId, keep: null, clock.GetUtcNow().UtcDateTime, ct);
        await sessions.SignOutAsync(HttpContext, ct);
        LogSignedOutEverywhere(logger, ownerId);
        return Redirect("/login");
    }

    [LoggerMessage(EventId = 7054, Level = LogLevel.Information, Message = "Owner {OwnerId} changed their password; other sessions revoked")]
    private static partial void LogPasswordChanged(ILogger logger, Guid ownerId);

    [LoggerMessage(EventId = 7055, Level = LogLevel.Information, Message = "Owner {OwnerId} signed out everywhere")]
    private static partial void LogSignedOutEverywhere(ILogger logger, Guid ownerId);
}
