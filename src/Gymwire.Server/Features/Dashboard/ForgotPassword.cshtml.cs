using System.ComponentModel.DataAnnotations;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard;

/// <summary>
/// Asks for a reset link by email; without SMTP, says plainly that the operator's CLI resets passwords. Requests are
/// limited per email address and per client address (counted for the cluster where rate limits are), whether or not
/// the account exists, so the form can neither flood an owner's inbox nor tell which addresses have accounts.
/// </summary>
public sealed class ForgotPasswordModel(PasswordResets resets, IRateLimitStore limits) : PageModel
{
    /// <summary>Reset links one email address may be sent per <see cref="Window"/>.</summary>
    public const int PerEmail = 3;

    /// <summary>Requests one client address may make per <see cref="Window"/>.</summary>
    public const int PerClient = 10;

    public static readonly TimeSpan Window = TimeSpan.FromHours(1);

    [BindProperty]
    [Required(ErrorMessage = "Enter your email.")]
    [EmailAddress(ErrorMessage = "Enter a valid email address.")]
    [StringLength(320)]
    public string Email { get; set; } = "";

    public bool CanEmail => resets.CanEmail;

    public bool Sent { get; private set; }

    /// <summary>Set when a limit refused the request: the message shown instead of the form.</summary>
    public string? Throttled { get; private set; }

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
        var email = Email.Trim();
        // By the client's address as sign-in counts it (an IPv6 client by its /64, which it can fill with addresses).
        var client = OwnerSignIn.ClientSubject(HttpContext.Connection.RemoteIpAddress);
        var byClient = await limits.TryAcquireAsync("forgot-password|" + client, PerClient, Window, ct);
        if (!byClient.Admitted)
        {
            return Refused(byClient);
        }
        var byEmail = await limits.TryAcquireAsync("forgot-password|email:" + email.ToUpperInvariant(), PerEmail, Window, ct);
        if (!byEmail.Admitted)
        {
            return Refused(byEmail);
        }
        await resets.RequestAsync(email);
        Sent = true;
        return Page();
    }

    private PageResult Refused(RateLimitDecision decision)
    {
        Response.StatusCode = StatusCodes.Status429TooManyRequests;
        Response.Headers.RetryAfter = decision.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        var minutes = Math.Max(1, (int)Math.Ceiling(decision.RetryAfter.TotalMinutes));
        Throttled = $"Too many reset requests. Try again in {minutes} minute{(minutes == 1 ? "" : "s")}.";
        return Page();
    }
}
