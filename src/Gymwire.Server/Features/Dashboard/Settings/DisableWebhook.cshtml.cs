using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>Disable: a confirmation that says what happens to the queued deliveries (they pause), then the webhook page.</summary>
public sealed partial class DisableWebhookModel(WebhookService webhooks, GymwireDbContext db, ILogger<DisableWebhookModel> logger) : PageModel
{
    public WebhookDto Webhook { get; private set; } = null!;

    /// <summary>Deliveries waiting for a first attempt or a retry.</summary>
    public int Queued { get; private set; }

    public async Task<IActionResult> OnGetAsync(Guid id, CancellationToken ct)
    {
        if (await webhooks.GetAsync(WebhookAccess.Of(User), id, ct) is not { } hook)
        {
            return NotFound();
        }
        if (!hook.IsActive)
        {
            return Redirect($"/settings/webhooks/{id}");
        }
        Webhook = hook;
        Queued = await QueuedAsync(hook, ct);
        return Page();
    }

    public async Task<IActionResult> OnPostAsync(Guid id, CancellationToken ct)
    {
        var access = WebhookAccess.Of(User);
        var outcome = await webhooks.DeactivateAsync(access, id, ct);
        if (outcome.Value is not { } hook)
        {
            return WebhookModel.Refused(this, outcome, id);
        }
        LogDisabled(logger, id, access.GymId);
        var paused = await QueuedAsync(hook, ct);
        TempData.SetFlash(paused == 0
            ? "Webhook disabled. Nothing is sent to it until you enable it."
            : $"Webhook disabled. {(paused == 1 ? "1 queued delivery is" : $"{paused} queued deliveries are")} paused and resume when you enable it.");
        return Redirect($"/settings/webhooks/{id}");
    }

    private Task<int> QueuedAsync(WebhookDto hook, CancellationToken ct)
    {
        var gymId = WebhookAccess.Of(User).GymId;
        return db.WebhookDeliveries.CountAsync(d => d.GymId == gymId && d.SubscriptionId == hook.Id && !d.IsTest
            && (d.Status == DeliveryStatus.Pending || d.Status == DeliveryStatus.Retrying), ct);
    }

    // Also the webhook page's own Disable handler's line: one event, one id, however the owner disabled it.
    [LoggerMessage(EventId = 7034, Level = LogLevel.Information, Message = "Dashboard disabled webhook {WebhookId} of gym {GymId}")]
    internal static partial void LogDisabled(ILogger logger, Guid webhookId, Guid gymId);
}
