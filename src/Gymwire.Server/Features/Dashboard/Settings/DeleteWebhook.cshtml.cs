using Gymwire.Features.Webhooks;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>Delete: a confirmation, then the webhook and its activity log are gone.</summary>
public sealed partial class DeleteWebhookModel(WebhookService webhooks, ILogger<DeleteWebhookModel> logger) : PageModel
{
    public WebhookDto Webhook { get; private set; } = null!;

    public string? Problem { get; private set; }

    public async Task<IActionResult> OnGetAsync(Guid id, CancellationToken ct)
    {
        if (await webhooks.GetAsync(User.GetGymId(), id, ct) is not { } hook)
        {
            return NotFound();
        }
        Webhook = hook;
        return Page();
    }

    public async Task<IActionResult> OnPostAsync(Guid id, CancellationToken ct)
    {
        var gymId = User.GetGymId();
        var outcome = await webhooks.DeleteAsync(gymId, id, ct);
        if (outcome.Value is not null)
        {
            LogDeleted(logger, id, gymId);
            return Redirect("/settings/webhooks");
        }
        if (outcome.Failure == WebhookFailure.NotFound || await webhooks.GetAsync(gymId, id, ct) is not { } hook)
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
