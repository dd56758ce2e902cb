using System.ComponentModel.DataAnnotations;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard;

/// <summary>Owner sign-in with the dashboard cookie, under the same lockout and throttles as the API's login.</summary>
public sealed partial class LoginModel(
    GymProvisioning gyms, OwnerSignIn ownerSignIn, DashboardSessions sessions, OidcOptions oidc, ILogger<LoginModel> logger)
    : PageModel
{
    public const string InvalidCredentials = "Invalid email or password.";

    /// <summary>"Sign in with …" is offered when an OpenID Connect provider is configured.</summary>
    public OidcOptions Oidc => oidc;

    /// <summary>Why an OpenID Connect sign-in came back here (<c>?oidc=failed|unknown</c>).</summary>
    [BindProperty(Name = "oidc", SupportsGet = true)]
    public string? OidcOutcome { get; set; }

    [BindProperty(Name = "reset", SupportsGet = true)]
    public string? Reset { get; set; }

    public bool PasswordWasReset => Reset == "done" && Request.Method == HttpMethods.Get;

    public string? OidcMessage => OidcOutcome switch
    {
        "unknown" => $"No owner account matches that {oidc.DisplayName} account. Sign in with your email and password, or ask the server's operator.",
        "failed" => $"Signing in with {oidc.DisplayName} did not complete. Try again.",
        _ => null,
    };

    /// <summary>What a throttled sign-in sees: how long to wait, in whole minutes (the lock is per account and per address, and ends).</summary>
    public static string TooManyAttempts(TimeSpan wait)
    {
        var minutes = Math.Max(1, (int)Math.Ceiling(wait.TotalMinutes));
        return $"Too many attempts, try again in {minutes} minute{(minutes == 1 ? "" : "s")}.";
    }

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
        return session.Succeeded ? Redirect(SafeReturnUrl) : Page();
    }

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        if (!ModelState.IsValid)
        {
            return Page();
        }
        var result = await ownerSignIn.SignInAsync(Input.Email, Input.Password, HttpContext.Connection.RemoteIpAddress, ct);
        switch (result.Outcome)
        {
            case SignInOutcome.Succeeded:
                await sessions.SignInAsync(result.Owner!, ct);
                LogSignedIn(logger, result.Owner!.Id);
                return Redirect(SafeReturnUrl);
            case SignInOutcome.Invalid when result.Owner is { } owner:
                LogWrongPassword(logger, owner.Id);
                ModelState.AddModelError(string.Empty, InvalidCredentials);
                return Page();
            case SignInOutcome.Invalid:
                LogUnknownAccount(logger);
                ModelState.AddModelError(string.Empty, InvalidCredentials);
                return Page();
            default:
                LogThrottled(logger, result.Outcome);
                Response.StatusCode = StatusCodes.Status429TooManyRequests;
                Response.Headers.RetryAfter = result.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
                ModelState.AddModelError(string.Empty, result.Outcome == SignInOutcome.Busy
                    ? "Too many sign-ins at once. Try again in a few seconds."
                    : TooManyAttempts(result.RetryAfter));
                return Page();
        }
    }

    /// <summary>A local path only (never another site), percent-encoded so any character it carries is a valid Location header.</summary>
    private string SafeReturnUrl => ReturnUrl is { Length: > 0 } url && Url.IsLocalUrl(url) && !url.Any(char.IsControl)
        ? EncodeNonAscii(url)
        : "/settings/integrations";

    /// <summary><see cref="SafeReturnUrl"/> outside a page: a path on this server ("/x", not "//host" or "/\\host"), or the default.</summary>
    public static string SafeLocalUrl(string? url) =>
        url is { Length: > 0 } && url[0] == '/' && (url.Length == 1 || url[1] is not ('/' or '\\')) && !url.Any(char.IsControl)
            ? EncodeNonAscii(url)
            : "/settings/integrations";

    internal static string EncodeNonAscii(string url)
    {
        if (url.All(char.IsAscii))
        {
            return url;
        }
        var builder = new System.Text.StringBuilder(url.Length * 3);
        foreach (var b in System.Text.Encoding.UTF8.GetBytes(url))
        {
            // ASCII characters are single UTF-8 bytes below 0x80, so they pass through unchanged.
            if (b < 0x80)
            {
                builder.Append((char)b);
            }
            else
            {
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }
        return builder.ToString();
    }

    [LoggerMessage(EventId = 7020, Level = LogLevel.Information, Message = "Owner {OwnerId} signed in to the dashboard")]
    private static partial void LogSignedIn(ILogger logger, Guid ownerId);

    [LoggerMessage(EventId = 7021, Level = LogLevel.Warning, Message = "Dashboard sign-in failed for owner {OwnerId}: wrong password")]
    private static partial void LogWrongPassword(ILogger logger, Guid ownerId);

    [LoggerMessage(EventId = 7023, Level = LogLevel.Warning, Message = "Dashboard sign-in failed: no owner has that email")]
    private static partial void LogUnknownAccount(ILogger logger);

    [LoggerMessage(EventId = 7022, Level = LogLevel.Warning, Message = "Dashboard sign-in refused: {Outcome}")]
    private static partial void LogThrottled(ILogger logger, SignInOutcome outcome);
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
