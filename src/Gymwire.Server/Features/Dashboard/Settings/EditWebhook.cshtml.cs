using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>Edit a webhook's URL and events (the secret changes only by rotation).</summary>
public sealed partial class EditWebhookModel(WebhookService webhooks, GymwireDbContext db, DashboardRateLimits limits, ILogger<EditWebhookModel> logger) : PageModel
{
    [BindProperty]
    public WebhookInput Input { get; set; } = new();

    public Guid Id { get; private set; }

    /// <summary>Another webhook of the gym with the new URL, when the owner has not confirmed.</summary>
    public Guid? Duplicate { get; private set; }

    public async Task<IActionResult> OnGetAsync(Guid id, CancellationToken ct)
    {
        if (await webhooks.GetAsync(WebhookAccess.Of(User), id, ct) is not { } hook)
        {
            return NotFound();
        }
        Id = id;
        Input = new WebhookInput { Url = hook.Url, Events = WebhookInput.CheckedFor(hook.Events), AllEvents = hook.Events.Count == 0 };
        return Page();
    }

    public async Task<IActionResult> OnPostAsync(Guid id, CancellationToken ct)
    {
        var access = WebhookAccess.Of(User);
        Id = id;
        if (await webhooks.GetAsync(access, id, ct) is not { } hook)
        {
            return NotFound();
        }
        var events = Input.ChosenEvents(out var eventsError);
        if (eventsError is not null)
        {
            ModelState.AddModelError(string.Empty, eventsError);
        }
        if (!ModelState.IsValid || events is null)
        {
            return Page();
        }
        if (!Input.ConfirmDuplicate && Input.Url.Trim() != hook.Url && await DuplicateUrls.FindAsync(db, access.GymId, Input.Url, id, ct) is { } existing)
        {
            Duplicate = existing;
            return Page();
        }
        if (await limits.TryMutationAsync(this, ct) is { } limited)
        {
            ModelState.AddModelError(string.Empty, limited);
            return Page();
        }
        var outcome = await webhooks.UpdateAsync(access, id, Input.Url, events, null, ct);
        if (outcome.Value is null)
        {
            if (outcome.Failure == WebhookFailure.NotFound)
            {
                return NotFound();
            }
            ModelState.AddModelError(string.Empty, WebhookInput.Friendly(outcome.Error));
            return Page();
        }
        LogEdited(logger, id, access.GymId);
        TempData.SetFlash("Webhook saved.");
        return Redirect($"/settings/webhooks/{id}");
    }

    // Like the other webhook lines, the id only: a URL may carry credentials in its query.
    [LoggerMessage(EventId = 7035, Level = LogLevel.Information, Message = "Dashboard edited webhook {WebhookId} of gym {GymId}")]
    private static partial void LogEdited(ILogger logger, Guid webhookId, Guid gymId);
}
