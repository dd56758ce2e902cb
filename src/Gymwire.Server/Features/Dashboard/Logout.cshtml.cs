using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard;

/// <summary>Logout is a POST with an antiforgery token, so another site cannot sign an owner out; GET only asks.</summary>
public sealed class LogoutModel(DashboardSessions sessions) : PageModel
{
    public void OnGet()
    {
    }

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        await sessions.SignOutAsync(HttpContext, ct);
        return RedirectToPage("/Login");
    }
}
