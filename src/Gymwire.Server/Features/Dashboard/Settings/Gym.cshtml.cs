using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>The gym's settings: its time zone (an IANA id), which every dashboard time, export day and report period follows.</summary>
public sealed partial class GymModel(GymwireDbContext db, GymTime time, TimeProvider clock, ILogger<GymModel> logger) : PageModel
{
    [BindProperty]
    public string TimeZone { get; set; } = GymTimeZones.Utc;

    public DateTime Now { get; } = clock.GetUtcNow().UtcDateTime;

    public void OnGet() => TimeZone = time.ZoneName;

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        if (GymTimeZones.TryFind(TimeZone, out var error) is not { } zone)
        {
            ModelState.AddModelError(nameof(TimeZone), error + ".");
            // The form again with the current zone selected: what was sent is not a choice in the list.
            TimeZone = time.ZoneName;
            return Page();
        }
        var gymId = User.GetGymId();
        var id = GymTimeZones.Name(zone);
        await db.Gyms.Where(g => g.Id == gymId).ExecuteUpdateAsync(s => s.SetProperty(g => g.TimeZone, id), ct);
        LogSaved(logger, gymId, id);
        TempData.SetFlash($"Time zone set to {id}. Times on the dashboard, export days and report periods follow it.");
        return Redirect("/settings/gym");
    }

    [LoggerMessage(EventId = 7043, Level = LogLevel.Information, Message = "Dashboard set the time zone of gym {GymId} to {TimeZone}")]
    private static partial void LogSaved(ILogger logger, Guid gymId, string timeZone);
}
