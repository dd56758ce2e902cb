using Gymwire.Features.Email;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>Accounting export: the scheduled report's form (how often or off, to whom, in which format) and the last reports emailed.</summary>
public sealed partial class AccountingIntegrationModel(
    GymwireDbContext db, IEmailSender email, DashboardRateLimits limits, ReportScheduleService schedules, GymTime time, ILogger<AccountingIntegrationModel> logger) : PageModel
{
    public const string Off = "off";

    public bool EmailConfigured => email.IsConfigured;

    public ReportSchedule? Schedule { get; private set; }

    public IReadOnlyList<EmailDelivery> Reports { get; private set; } = [];

    /// <summary>
    /// Null when the form sent none (a browser leaves a disabled radio out): a validation error, never "off", which
    /// would delete the schedule.
    /// </summary>
    [BindProperty]
    public string? Frequency { get; set; }

    /// <summary>The addresses as typed: commas, semicolons or lines between them.</summary>
    [BindProperty]
    public string? Recipients { get; set; }

    [BindProperty]
    public string Format { get; set; } = ReportFormats.Csv;

    public async Task OnGetAsync(CancellationToken ct)
    {
        await LoadAsync(ct);
        Frequency = Schedule?.Frequency ?? Off;
        Format = Schedule?.Format ?? ReportFormats.Csv;
        // A schedule without chosen recipients goes to the owners: show who that is.
        var gymId = User.GetGymId();
        Recipients = Schedule?.Recipients is { } chosen
            ? string.Join("\n", ReportRecipients.Split(chosen))
            : string.Join("\n", await db.Users.AsNoTracking().Where(o => o.GymId == gymId && o.Email != null).OrderBy(o => o.CreatedAt).Select(o => o.Email!).ToListAsync(ct));
    }

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        var gymId = User.GetGymId();
        if (Frequency == Off)
        {
            // Stopping the schedule is destructive, limited as the API's DELETE /api/gym/exports/schedule is.
            if (!await limits.TryDeleteAsync(this, () => db.ReportSchedules.Where(s => s.GymId == gymId).ExecuteDeleteAsync(ct), ct))
            {
                await LoadAsync(ct);
                return Page();
            }
            LogTurnedOff(logger, gymId);
            TempData.SetFlash("Scheduled reports are off. CSV exports can still be downloaded from the Exports page.");
            return Redirect("/settings/integrations/accounting");
        }
        // Errors are shown in the form with what the owner typed, and nothing is saved.
        var recipients = ReportRecipients.Parse(Recipients, out var recipientsError);
        if (!ReportFrequencies.All.Contains(Frequency))
        {
            ModelState.AddModelError(string.Empty, "Choose daily, weekly, monthly or off.");
        }
        else if (!email.IsConfigured)
        {
            ModelState.AddModelError(string.Empty, "This server cannot send email, so reports cannot be emailed.");
        }
        if (recipientsError is not null)
        {
            ModelState.AddModelError(nameof(Recipients), recipientsError);
        }
        if (!ReportFormats.All.Contains(Format))
        {
            ModelState.AddModelError(nameof(Format), "Choose CSV files or an HTML summary.");
        }
        if (ModelState.IsValid && await limits.TryMutationAsync(this, ct) is { } limited)
        {
            ModelState.AddModelError(string.Empty, limited);
        }
        if (!ModelState.IsValid)
        {
            await LoadAsync(ct);
            return Page();
        }
        // One of ReportFrequencies.All here: anything else, a missing one included, was an error above.
        var frequency = Frequency!;
        var schedule = await schedules.SaveAsync(gymId, frequency, recipients, Format, ct);
        LogSaved(logger, gymId, frequency, recipients!.Count, Format);
        var next = ReportFrequencies.Next(schedule.Frequency, schedule.ReportedThrough, time.Zone);
        TempData.SetFlash($"Saved: a {Frequency} report ({(Format == ReportFormats.Html ? "HTML summary" : "CSV files")}) is emailed to {string.Join(", ", recipients)} after {time.Time(next)}.");
        return Redirect("/settings/integrations/accounting");
    }

    private async Task LoadAsync(CancellationToken ct)
    {
        var gymId = User.GetGymId();
        Schedule = await db.ReportSchedules.AsNoTracking().FirstOrDefaultAsync(s => s.GymId == gymId, ct);
        Reports = await db.EmailDeliveries.AsNoTracking().Where(d => d.GymId == gymId && d.Kind == "report")
            .OrderByDescending(d => d.CreatedAt).ThenByDescending(d => d.Id).Take(5).ToListAsync(ct);
    }

    // The addresses are personal data: the log says how many, not which.
    [LoggerMessage(EventId = 7042, Level = LogLevel.Information, Message = "Dashboard set the scheduled report of gym {GymId} to {Frequency}, {Count} recipient(s), {Format}")]
    private static partial void LogSaved(ILogger logger, Guid gymId, string frequency, int count, string format);

    [LoggerMessage(EventId = 7046, Level = LogLevel.Information, Message = "Dashboard turned off the scheduled report of gym {GymId}")]
    private static partial void LogTurnedOff(ILogger logger, Guid gymId);
}
