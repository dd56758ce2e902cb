using System.ComponentModel.DataAnnotations;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard;

/// <summary>First run: on an empty database, creates the gym and its owner, then signs the owner in. Gone afterwards.</summary>
public sealed partial class SetupModel(GymProvisioning gyms, UserManager<Owner> users, DashboardSessions sessions, ILogger<SetupModel> logger)
    : PageModel
{
    // Two browsers posting the first set-up at once must not create two gyms (within one node; set-up is a one-off).
    private static readonly SemaphoreSlim FirstRun = new(1, 1);

    [BindProperty]
    public SetupInput Input { get; set; } = new();

    public async Task<IActionResult> OnGetAsync(CancellationToken ct) =>
        await gyms.AnyGymAsync(ct) ? RedirectToPage("/Login") : Page();

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        if (GymTimeZones.TryFind(Input.TimeZone, out var zoneError) is null)
        {
            ModelState.AddModelError("Input.TimeZone", zoneError + ".");
            Input.TimeZone = GymTimeZones.Utc;
        }
        if (!ModelState.IsValid)
        {
            return await gyms.AnyGymAsync(ct) ? RedirectToPage("/Login") : Page();
        }
        await FirstRun.WaitAsync(ct);
        try
        {
            if (await gyms.AnyGymAsync(ct))
            {
                return RedirectToPage("/Login");
            }
            var (gym, _, error) = await gyms.CreateAsync(Input.GymName, Input.Email, Input.Password, Input.TimeZone, ct);
            if (gym is null)
            {
                ModelState.AddModelError(string.Empty, error ?? "The gym could not be created.");
                return Page();
            }
            LogGymSetUp(logger, gym.GymId, gym.OwnerId);
            var owner = await users.FindByIdAsync(gym.OwnerId.ToString());
            await sessions.SignInAsync(owner!, ct);
            return RedirectToPage("/Settings/Integrations");
        }
        finally
        {
            FirstRun.Release();
        }
    }

    [LoggerMessage(EventId = 7010, Level = LogLevel.Information, Message = "First-run set-up created gym {GymId} with owner {OwnerId}")]
    private static partial void LogGymSetUp(ILogger logger, Guid gymId, Guid ownerId);
}

public sealed class SetupInput
{
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
