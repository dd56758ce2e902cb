using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard;

/// <summary>The page a reset link opens: a new password, once, while the link is unexpired and unused.</summary>
public sealed class ResetPasswordModel(PasswordResets resets) : PageModel
{
    [BindProperty(SupportsGet = true)]
    public string? Token { get; set; }

    public bool LinkValid { get; private set; }

    public string? OwnerEmail { get; private set; }

    public async Task<IActionResult> OnGetAsync(CancellationToken ct)
    {
        var owner = await resets.FindOwnerAsync(Token, ct);
        LinkValid = owner is not null;
        OwnerEmail = owner?.Email;
        if (!LinkValid)
        {
            Response.StatusCode = StatusCodes.Status400BadRequest;
        }
        return Page();
    }

    public async Task<IActionResult> OnPostAsync([FromForm] string? newPassword, CancellationToken ct)
    {
        var owner = await resets.FindOwnerAsync(Token, ct);
        if (owner is null)
        {
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return Page();
        }
        LinkValid = true;
        OwnerEmail = owner.Email;
        if (string.IsNullOrEmpty(newPassword) || newPassword.Length > 256)
        {
            ModelState.AddModelError(string.Empty, "Enter a new password (at most 256 characters).");
            return Page();
        }
        var error = await resets.ResetAsync(Token, newPassword, ct);
        if (error == PasswordResets.InvalidLink)
        {
            LinkValid = false;
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return Page();
        }
        if (error is not null)
        {
            Response.StatusCode = StatusCodes.Status400BadRequest;
            ModelState.AddModelError(string.Empty, error);
            return Page();
        }
        return Redirect("/login?reset=done");
    }
}
