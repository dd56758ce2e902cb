using System.ComponentModel.DataAnnotations;
using Gymwire.Features.Gyms;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard;

/// <summary>Asks for a reset link by email; without SMTP, says plainly that the operator's CLI resets passwords.</summary>
public sealed class ForgotPasswordModel(PasswordResets resets) : PageModel
{
    [BindProperty]
    [Required(ErrorMessage = "Enter your email.")]
    [EmailAddress(ErrorMessage = "Enter a valid email address.")]
    [StringLength(320)]
    public string Email { get; set; } = "";

    public bool CanEmail => resets.CanEmail;

    public bool Sent { get; private set; }

    public string LifetimeText => resets.Lifetime.TotalMinutes is var m && m % 60 == 0
        ? $"{m / 60:0} hour{(m == 60 ? "" : "s")}"
        : $"{m:0} minutes";

    public void OnGet()
    {
    }

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        if (!CanEmail)
        {
            return Page();
        }
        if (!ModelState.IsValid)
        {
            return Page();
        }
        await resets.RequestAsync(Email.Trim(), ct);
        Sent = true;
        return Page();
    }
}
