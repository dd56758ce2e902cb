using Gymwire.Data;
using Gymwire.Features.Email;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>Accounting export: the scheduled report's form (how often, or off) and the last reports emailed.</summary>
public sealed partial class AccountingIntegrationModel(
    GymwireDbContext db, IEmailSender email, TimeProvider clock, ReportSignal signal, ILogger<AccountingIntegrationModel> logger) : PageModel
{
    public const string Off = "off";

    public bool EmailConfigured => email.IsConfigured;

    public ReportSchedule? Schedule { get; private set; }

    public IReadOnlyList<EmailDelivery> Reports { get; private set; } = [];

    [BindProperty]
    public string Frequency { get; set; } = Off;

    public async Task OnGetAsync(CancellationToken ct)
    {
        await LoadAsync(ct);
        Frequency = Schedule?.Frequency ?? Off;
    }

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        var gymId = User.GetGymId();
        if (Frequency == Off)
        {
            await db.ReportSchedules.Where(s => s.GymId == gymId).ExecuteDeleteAsync(ct);
            TempData.SetFlash("Scheduled reports are off. CSV exports can still be downloaded from the Exports page.");
            return Redirect("/settings/integrations/accounting");
        }
        if (!ReportFrequencies.All.Contains(Frequency))
        {
            ModelState.AddModelError(string.Empty, "Choose daily, weekly, monthly or off.");
        }
        else if (!email.IsConfigured)
        {
            ModelState.AddModelError(string.Empty, "This server cannot send email, so reports cannot be emailed.");
        }
        if (!ModelState.IsValid)
        {
            await LoadAsync(ct);
            return Page();
        }
        var schedule = await EmailEndpoints.SaveScheduleAsync(gymId, Frequency, db, clock, signal, ct);
        LogSaved(logger, gymId, Frequency);
        TempData.SetFlash($"Saved: a {Frequency} report is emailed after {WebhookViews.Time(ReportFrequencies.Next(schedule.Frequency, schedule.ReportedThrough))}.");
        return Redirect("/settings/integrations/accounting");
    }

    private async Task LoadAsync(CancellationToken ct)
    {
        var gymId = User.GetGymId();
        Schedule = await db.ReportSchedules.AsNoTracking().FirstOrDefaultAsync(s => s.GymId == gymId, ct);
        Reports = await db.EmailDeliveries.AsNoTracking().Where(d => d.GymId == gymId && d.Kind == "report")
            .OrderByDescending(d => d.CreatedAt).ThenByDescending(d => d.Id).Take(5).ToListAsync(ct);
    }

    [LoggerMessage(EventId = 7042, Level = LogLevel.Information, Message = "Dashboard set the scheduled report of gym {GymId} to {Frequency}")]
    private static partial void LogSaved(ILogger logger, Guid gymId, string frequency);
}
