using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>
/// Rotate secret: a confirmation, then (post/redirect/get) the new secret shown once on the page after the redirect,
/// with until when the previous one still signs. Limited like the API's.
/// </summary>
public sealed partial class RotateWebhookSecretModel(
    WebhookService webhooks, DashboardRateLimits limits, IOptions<WebhookOptions> options, TimeProvider clock, GymTime time, ILogger<RotateWebhookSecretModel> logger)
    : DestructiveWebhookPage(webhooks, limits)
{
    public TimeSpan Overlap => options.Value.SecretRotationOverlap;

    private const string ShownOnce = "rotated-secret";

    /// <summary>Set only on the first GET after the rotating POST.</summary>
    public RotatedSecret? Rotated { get; private set; }

    /// <summary>The page after the redirect, reloaded: the secret was shown and is gone.</summary>
    public bool AlreadyShown { get; private set; }

    /// <summary>Until when the previous secret still signs (from the webhook, so it shows after a reload too).</summary>
    public DateTime? PreviousSecretSignsUntil { get; private set; }

    public async Task<IActionResult> OnGetAsync(Guid id, bool rotated, CancellationToken ct)
    {
        var access = WebhookAccess.Of(User);
        if (await Webhooks.GetAsync(access, id, ct) is not { } hook)
        {
            return NotFound();
        }
        Webhook = hook;
        Rotated = TempData.TakeOnce<RotatedSecret>(User, ShownOnce) is { } shown && shown.Id == id ? shown : null;
        AlreadyShown = rotated && Rotated is null;
        if (rotated && await Webhooks.FindAsync(access, id, ct) is { PreviousSecretExpiresAt: { } until } && until > clock.GetUtcNow().UtcDateTime)
        {
            PreviousSecretSignsUntil = until;
        }
        return Page();
    }

    protected override async Task<IActionResult> ActAsync(WebhookAccess access, Guid id, RateLimitDecision permit, CancellationToken ct)
    {
        if ((await Webhooks.RotateSecretAsync(access, id, ct)).Value is not { } rotated)
        {
            await Limits.ReleaseAsync(permit);
            return NotFound();
        }
        LogRotated(logger, id, access.GymId);
        TempData.PutOnce(User, ShownOnce, rotated);
        TempData.SetFlash(rotated.PreviousSecretExpiresAt is { } until
            ? $"Secret rotated. The previous secret still signs until {time.Time(until)}."
            : "Secret rotated. The previous secret no longer signs.");
        return Redirect($"/settings/webhooks/{id}/rotate-secret?rotated=true");
    }

    [LoggerMessage(EventId = 7032, Level = LogLevel.Information, Message = "Dashboard rotated the secret of webhook {WebhookId} of gym {GymId}")]
    private static partial void LogRotated(ILogger logger, Guid webhookId, Guid gymId);
}
