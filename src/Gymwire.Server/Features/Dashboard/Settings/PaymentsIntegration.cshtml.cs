using Gymwire.Features.Dashboard.Integrations;
using Gymwire.Features.Stripe;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>
/// Payments: the gym's Stripe endpoint URL to copy, the signing secret form (validated and stored encrypted as the
/// API's PUT does), Disconnect, and the last events received with what became of each.
/// </summary>
public sealed partial class PaymentsIntegrationModel(
    GymwireDbContext db, StripeSecrets secrets, IntegrationTiles tiles, DashboardRateLimits limits, TimeProvider clock, ILogger<PaymentsIntegrationModel> logger) : PageModel
{
    public StripeAccount? Account { get; private set; }

    public IntegrationStatus Status { get; private set; } = null!;

    public string EndpointUrl { get; private set; } = "";

    public IReadOnlyList<StripeEventDto> Events { get; private set; } = [];

    [BindProperty]
    public string? Secret { get; set; }

    public Task OnGetAsync(CancellationToken ct) => LoadAsync(ct);

    public async Task<IActionResult> OnPostSaveAsync(CancellationToken ct)
    {
        var gymId = User.GetGymId();
        if (await limits.TryMutationAsync(this, ct) is { } limited)
        {
            ModelState.AddModelError(string.Empty, limited);
            await LoadAsync(ct);
            return Page();
        }
        var (account, error) = await StripeService.SaveSecretAsync(gymId, Secret?.Trim(), db, secrets, clock, ct);
        if (account is null)
        {
            ModelState.AddModelError(string.Empty, error!.Replace("'endpoint_secret'", "The signing secret", StringComparison.Ordinal));
            await LoadAsync(ct);
            return Page();
        }
        LogSaved(logger, gymId);
        TempData.SetFlash($"Stripe signing secret saved (ending …{account.SecretHint}). Stripe's events to your endpoint are now verified with it.");
        return Redirect("/settings/integrations/payments");
    }

    /// <summary>A destructive action, limited as the API's <c>DELETE /api/gym/integrations/stripe</c> is.</summary>
    public async Task<IActionResult> OnPostRemoveAsync(CancellationToken ct)
    {
        var gymId = User.GetGymId();
        if (!await limits.TryDeleteAsync(this, () => db.StripeAccounts.Where(a => a.GymId == gymId).ExecuteDeleteAsync(ct), ct))
        {
            await LoadAsync(ct);
            return Page();
        }
        LogRemoved(logger, gymId);
        TempData.SetFlash("Stripe disconnected: the signing secret is forgotten, and Stripe's events are rejected until you save one again.");
        return Redirect("/settings/integrations/payments");
    }

    public static string OutcomeCss(string outcome) => outcome switch
    {
        StripeOutcomes.Recorded or StripeOutcomes.AlreadyRecorded => "connected",
        StripeOutcomes.UnknownMember or StripeOutcomes.UnknownPayment or StripeOutcomes.UnknownSubscription => "error",
        _ => "not-connected",
    };

    private async Task LoadAsync(CancellationToken ct)
    {
        var gymId = User.GetGymId();
        Account = await db.StripeAccounts.AsNoTracking().FirstOrDefaultAsync(a => a.GymId == gymId, ct);
        Status = await TileStatus.OfAsync(tiles, "payments", gymId, ct);
        EndpointUrl = $"{Request.Scheme}://{Request.Host}{StripeEndpoints.WebhookPath}/{gymId}";
        Events = await db.StripeEvents.AsNoTracking().Where(e => e.GymId == gymId)
            .OrderByDescending(e => e.ReceivedAt).ThenByDescending(e => e.Id).Take(10)
            .Select(StripeService.ToEventDto).ToListAsync(ct);
    }

    [LoggerMessage(EventId = 7044, Level = LogLevel.Information, Message = "Dashboard saved the Stripe endpoint secret of gym {GymId}")]
    private static partial void LogSaved(ILogger logger, Guid gymId);

    [LoggerMessage(EventId = 7045, Level = LogLevel.Information, Message = "Dashboard removed the Stripe endpoint secret of gym {GymId}")]
    private static partial void LogRemoved(ILogger logger, Guid gymId);
}
