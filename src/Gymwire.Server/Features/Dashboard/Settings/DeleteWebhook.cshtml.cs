using Gymwire.Features.Webhooks;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>Delete: a confirmation, then the webhook and its activity log are gone. Limited like the API's destructive calls.</summary>
public sealed partial class DeleteWebhookModel(WebhookService webhooks, DashboardRateLimits limits, ILogger<DeleteWebhookModel> logger) : PageModel
{
    public WebhookDto Webhook { get; private set; } = null!;

    public string? Problem { get; private set; }

    public async Task<IActionResult> OnGetAsync(Guid id, CancellationToken ct)
    {
        if (await webhooks.GetAsync(WebhookAccess.Of(User), id, ct) is not { } hook)
        {
            return NotFound();
        }
        Webhook = hook;
        return Page();
    }

    public async Task<IActionResult> OnPostAsync(Guid id, CancellationToken ct)
    {
        var access = WebhookAccess.Of(User);
        if (await webhooks.GetAsync(access, id, ct) is not { } found)
        {
            // Found nothing: no permit is taken, as in the API.
            return NotFound();
        }
        var (permit, limited) = await limits.TryDestructiveAsync(this, ct);
        if (limited is not null)
        {
            Webhook = found;
            Problem = limited;
            return Page();
        }
        var outcome = await webhooks.DeleteAsync(access, id, ct);
        if (outcome.Value is not null)
        {
            LogDeleted(logger, id, access.GymId);
            TempData.SetFlash($"Deleted the webhook to {found.Url}.");
            return Redirect("/settings/webhooks");
        }
        await limits.ReleaseAsync(permit);
        if (outcome.Failure == WebhookFailure.NotFound || await webhooks.GetAsync(access, id, ct) is not { } hook)
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
