using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>Delete: a confirmation, then the webhook and its activity log are gone. Limited like the API's destructive calls.</summary>
public sealed partial class DeleteWebhookModel(WebhookService webhooks, DashboardRateLimits limits, ILogger<DeleteWebhookModel> logger)
    : DestructiveWebhookPage(webhooks, limits)
{
    public async Task<IActionResult> OnGetAsync(Guid id, CancellationToken ct)
    {
        if (await Webhooks.GetAsync(WebhookAccess.Of(User), id, ct) is not { } hook)
        {
            return NotFound();
        }
        Webhook = hook;
        return Page();
    }

    protected override async Task<IActionResult> ActAsync(WebhookAccess access, Guid id, RateLimitDecision permit, CancellationToken ct)
    {
        var outcome = await Webhooks.DeleteAsync(access, id, ct);
        if (outcome.Value is not null)
        {
            LogDeleted(logger, id, access.GymId);
            TempData.SetFlash($"Deleted the webhook to {Webhook.Url}.");
            return Redirect("/settings/webhooks");
        }
        await Limits.ReleaseAsync(permit);
        if (outcome.Failure == WebhookFailure.NotFound || await Webhooks.GetAsync(access, id, ct) is not { } hook)
        {
            return NotFound();
        }
        Webhook = hook;
        Problem = outcome.Error;
        return Page();
    }

    [LoggerMessage(EventId = 7033, Level = LogLevel.Information, Message = "Dashboard deleted webhook {WebhookId} of gym {GymId}")]
    private static partial void LogDeleted(ILogger logger, Guid webhookId, Guid gymId);
}
