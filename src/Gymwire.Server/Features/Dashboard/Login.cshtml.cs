using System.ComponentModel.DataAnnotations;
using Gymwire.Features.Gyms;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard;

/// <summary>Owner sign-in with the dashboard cookie. Failures count toward Identity's lockout, as the API's login does.</summary>
public sealed partial class LoginModel(GymProvisioning gyms, UserManager<Owner> users, SignInManager<Owner> signIn, ILogger<LoginModel> logger)
    : PageModel
{
    public const string InvalidCredentials = "Invalid email or password.";
    public const string LockedOut = "Too many failed sign-in attempts. Try again later.";

    [BindProperty]
    public LoginInput Input { get; set; } = new();

    [BindProperty(SupportsGet = true)]
    public string? ReturnUrl { get; set; }

    public async Task<IActionResult> OnGetAsync(CancellationToken ct)
    {
        if (!await gyms.AnyGymAsync(ct))
        {
            return RedirectToPage("/Setup");
        }
        var session = await HttpContext.AuthenticateAsync(IdentityConstants.ApplicationScheme);
        return session.Succeeded ? LocalRedirect(SafeReturnUrl) : Page();
    }

    public async Task<IActionResult> OnPostAsync()
    {
        if (!ModelState.IsValid)
        {
            return Page();
        }
        var owner = await users.FindByEmailAsync(Input.Email);
        if (owner is null)
        {
            // Spend the time of a real check, so response time does not reveal which emails have accounts.
            users.PasswordHasher.VerifyHashedPassword(new Owner(), DummyHash.Value, Input.Password);
            LogUnknownAccount(logger);
            ModelState.AddModelError(string.Empty, InvalidCredentials);
            return Page();
        }
        var result = await signIn.PasswordSignInAsync(owner, Input.Password, isPersistent: false, lockoutOnFailure: true);
        if (result.Succeeded)
        {
            LogSignedIn(logger, owner.Id);
            return LocalRedirect(SafeReturnUrl);
        }
        if (result.IsLockedOut)
        {
            LogLockedOut(logger, owner.Id);
            ModelState.AddModelError(string.Empty, LockedOut);
            return Page();
        }
        LogWrongPassword(logger, owner.Id);
        ModelState.AddModelError(string.Empty, InvalidCredentials);
        return Page();
    }

    private string SafeReturnUrl => ReturnUrl is { Length: > 0 } url && Url.IsLocalUrl(url) ? url : "/settings/integrations";

    [LoggerMessage(EventId = 7020, Level = LogLevel.Information, Message = "Owner {OwnerId} signed in to the dashboard")]
    private static partial void LogSignedIn(ILogger logger, Guid ownerId);

    [LoggerMessage(EventId = 7021, Level = LogLevel.Warning, Message = "Dashboard sign-in failed for owner {OwnerId}: wrong password")]
    private static partial void LogWrongPassword(ILogger logger, Guid ownerId);

    [LoggerMessage(EventId = 7022, Level = LogLevel.Warning, Message = "Dashboard sign-in refused for owner {OwnerId}: locked out")]
    private static partial void LogLockedOut(ILogger logger, Guid ownerId);

    [LoggerMessage(EventId = 7023, Level = LogLevel.Warning, Message = "Dashboard sign-in failed: no owner has that email")]
    private static partial void LogUnknownAccount(ILogger logger);

    private static class DummyHash
    {
        public static readonly string Value = new PasswordHasher<Owner>().HashPassword(new Owner(), "not-a-real-password");
    }
}

public sealed class LoginInput
{
    [Required(ErrorMessage = "Enter your email.")]
    [EmailAddress(ErrorMessage = "Enter a valid email address.")]
    [StringLength(320)]
    public string Email { get; set; } = "";

    [Required(ErrorMessage = "Enter your password.")]
    [StringLength(256)]
    [DataType(DataType.Password)]
    public string Password { get; set; } = "";
}
