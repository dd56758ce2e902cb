using Gymwire.Features.Email;
using Gymwire.Features.Exports;
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

    /// <summary>Send to the gym's owners, whoever they are at the time (a checkbox: absent when unticked).</summary>
    [BindProperty]
    public bool SendToOwners { get; set; }

    /// <summary>Other addresses, as typed: commas, semicolons or lines between them.</summary>
    [BindProperty]
    public string? Recipients { get; set; }

    /// <summary>The owners' addresses now, to show who "the gym's owners" is.</summary>
    public IReadOnlyList<string> Owners { get; private set; } = [];

    [BindProperty]
    public string Format { get; set; } = ReportFormats.Csv;

    /// <summary>The QuickBooks file's dates, <c>mdy</c> or <c>dmy</c>; null (a form without the field) keeps what is stored.</summary>
    [BindProperty]
    public string? QuickBooksDateOrder { get; set; }

    public async Task OnGetAsync(CancellationToken ct)
    {
        await LoadAsync(ct);
        Frequency = Schedule?.Frequency ?? Off;
        Format = Schedule?.Format ?? ReportFormats.Csv;
        QuickBooksDateOrder = Schedule?.QuickBooksDateOrder ?? AccountingExports.MonthFirst;
        // The owners stay a choice of their own, never copied into the addresses, so an owner added later is included.
        SendToOwners = Schedule?.SendToOwners ?? true;
        Recipients = string.Join("\n", ReportRecipients.Split(Schedule?.Recipients));
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
        string? recipientsError = null;
        IReadOnlyList<string>? others = SendToOwners && string.IsNullOrWhiteSpace(Recipients) ? [] : ReportRecipients.Parse(Recipients, out recipientsError);
        if (!SendToOwners && recipientsError is not null && string.IsNullOrWhiteSpace(Recipients))
        {
            recipientsError = "Choose the gym's owners or enter at least one email address to send the report to.";
        }
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
        if (QuickBooksDateOrder is not null && !AccountingExports.DateOrders.Contains(QuickBooksDateOrder))
        {
            ModelState.AddModelError(nameof(QuickBooksDateOrder), "Choose the QuickBooks dates as month first or day first.");
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
        var schedule = await schedules.SaveAsync(gymId, frequency, SendToOwners, others!, Format, QuickBooksDateOrder, ct);
        LogSaved(logger, gymId, frequency, SendToOwners, others!.Count, Format);
        var next = ReportFrequencies.Next(schedule.Frequency, schedule.ReportedThrough, time.Zone);
        TempData.SetFlash($"Saved: a {Frequency} report ({(Format == ReportFormats.Html ? "HTML summary" : "CSV files")}) is emailed to {ReportRecipients.Describe(schedule)} after {time.Time(next)}.");
        return Redirect("/settings/integrations/accounting");
    }

    private async Task LoadAsync(CancellationToken ct)
    {
        var gymId = User.GetGymId();
        Schedule = await db.ReportSchedules.AsNoTracking().FirstOrDefaultAsync(s => s.GymId == gymId, ct);
        Owners = await OwnerNotifications.OwnerAddresses(db, gymId).ToListAsync(ct);
        Reports = await db.EmailDeliveries.AsNoTracking().Where(d => d.GymId == gymId && d.Kind == "report")
            .OrderByDescending(d => d.CreatedAt).ThenByDescending(d => d.Id).Take(5).ToListAsync(ct);
    }

    // The addresses are personal data: the log says how many, not which.
    [LoggerMessage(EventId = 7042, Level = LogLevel.Information, Message = "Dashboard set the scheduled report of gym {GymId} to {Frequency}, owners {SendToOwners}, {Count} other recipient(s), {Format}")]
    private static partial void LogSaved(ILogger logger, Guid gymId, string frequency, bool sendToOwners, int count, string format);

    [LoggerMessage(EventId = 7046, Level = LogLevel.Information, Message = "Dashboard turned off the scheduled report of gym {GymId}")]
    private static partial void LogTurnedOff(ILogger logger, Guid gymId);
}
