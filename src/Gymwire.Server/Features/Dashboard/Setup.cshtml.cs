using System.ComponentModel.DataAnnotations;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard;

/// <summary>
/// First run: on an empty database, creates the gym and its owner, then signs the owner in. Gone afterwards. Open as it
/// is only from the server's own machine (loopback); from anywhere else it asks for the one-time token that
/// <see cref="SetupToken"/> writes to a file on the server, so that whoever finds a new server first cannot claim it.
/// </summary>
public sealed partial class SetupModel(GymProvisioning gyms, GymwireDbContext db, SetupToken setupToken, UserManager<Owner> users,
    DashboardSessions sessions, ILogger<SetupModel> logger)
    : PageModel
{
    public const string TokenRefused = "The set-up token is missing or wrong: nothing was created.";

    [BindProperty]
    public SetupInput Input { get; set; } = new();

    /// <summary>The request does not come from the server's own machine, so the form asks for the set-up token.</summary>
    public bool NeedsToken { get; private set; }

    /// <summary>Where the set-up token is (null when the server could not write it).</summary>
    public string? TokenFile { get; private set; }

    public async Task<IActionResult> OnGetAsync(CancellationToken ct)
    {
        if (await gyms.AnyGymAsync(ct))
        {
            return await AlreadySetUpAsync(ct);
        }
        await AskForTokenAsync(ct);
        return Page();
    }

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        if (await gyms.AnyGymAsync(ct))
        {
            return await AlreadySetUpAsync(ct);
        }
        await AskForTokenAsync(ct);
        if (NeedsToken && !await setupToken.MatchesAsync(db, Input.Token, ct))
        {
            ModelState.Clear();
            ModelState.AddModelError("Input.Token", TokenRefused);
            Input.Token = null;
            var refused = Page();
            refused.StatusCode = StatusCodes.Status403Forbidden;
            return refused;
        }
        if (GymTimeZones.TryFind(Input.TimeZone, out var zoneError) is null)
        {
            ModelState.AddModelError("Input.TimeZone", zoneError + ".");
            Input.TimeZone = GymTimeZones.Utc;
        }
        if (!ModelState.IsValid)
        {
            return Page();
        }
        // Checked and created in one transaction: of set-ups racing on any number of nodes, one creates the gym.
        var (gym, _, error) = await gyms.CreateFirstAsync(Input.GymName, Input.Email, Input.Password, Input.TimeZone, ct);
        if (gym is null)
        {
            if (await gyms.AnyGymAsync(ct))
            {
                return await AlreadySetUpAsync(ct);
            }
            ModelState.AddModelError(string.Empty, error ?? "The gym could not be created.");
            return Page();
        }
        LogGymSetUp(logger, gym.GymId, gym.OwnerId);
        await setupToken.DeleteAsync(db, ct);
        var owner = await users.FindByIdAsync(gym.OwnerId.ToString());
        await sessions.SignInAsync(owner!, ct);
        return RedirectToPage("/Settings/Integrations");
    }

    private async Task AskForTokenAsync(CancellationToken ct)
    {
        NeedsToken = !SetupToken.IsLocal(HttpContext);
        if (NeedsToken)
        {
            // Written at start; again here if that failed, or if the file has gone since.
            TokenFile = await setupToken.EnsureAsync(db, ct);
        }
    }

    /// <summary>The page's answer once a gym exists: the sign-in page. The token file has no use any more.</summary>
    private async Task<IActionResult> AlreadySetUpAsync(CancellationToken ct)
    {
        await setupToken.DeleteAsync(db, ct);
        return RedirectToPage("/Login");
    }

    [LoggerMessage(EventId = 7010, Level = LogLevel.Information, Message = "First-run set-up created gym {GymId} with owner {OwnerId}")]
    private static partial void LogGymSetUp(ILogger logger, Guid gymId, Guid ownerId);
}

public sealed class SetupInput
{
    /// <summary>The one-time set-up token (<see cref="SetupToken"/>); asked for only from another machine than the server.</summary>
    [Display(Name = "Set-up token")]
    public string? Token { get; set; }


    [Required(ErrorMessage = "Enter the gym's name.")]
    [StringLength(200, ErrorMessage = "The gym's name must be at most 200 characters.")]
    [Display(Name = "Gym name")]
    public string GymName { get; set; } = "";

    /// <summary>An IANA id (<see cref="GymTimeZones"/>); the page preselects the browser's.</summary>
    public string TimeZone { get; set; } = GymTimeZones.Utc;

    [Required(ErrorMessage = "Enter the owner's email.")]
    [EmailAddress(ErrorMessage = "Enter a valid email address.")]
    [StringLength(GymProvisioning.OwnerEmailMaxLength)]
    [Display(Name = "Owner email")]
    public string Email { get; set; } = "";

    [Required(ErrorMessage = "Choose a password.")]
    [StringLength(256, MinimumLength = 10, ErrorMessage = "The password must be at least 10 characters.")]
    [DataType(DataType.Password)]
    public string Password { get; set; } = "";

    [Required(ErrorMessage = "Confirm the password.")]
    [Compare(nameof(Password), ErrorMessage = "The passwords do not match.")]
    [DataType(DataType.Password)]
    [Display(Name = "Confirm password")]
    public string ConfirmPassword { get; set; } = "";
}
