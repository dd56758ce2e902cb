using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>
/// New Webhook. The creating POST redirects (post/redirect/get); the signing secret reaches the page after the
/// redirect in TempData (encrypted, read once) and is shown there once. A URL the gym already sends to gets a warning
/// first, and a second Save creates it anyway.
/// </summary>
public sealed partial class NewWebhookModel(WebhookService webhooks, GymwireDbContext db, DashboardRateLimits limits, ILogger<NewWebhookModel> logger) : PageModel
{
    private const string ShownOnce = "webhook";

    [BindProperty]
    public WebhookInput Input { get; set; } = new();

    /// <summary>Set only on the first GET after a successful POST.</summary>
    public CreatedWebhook? Created { get; private set; }

    public bool AlreadyShown { get; private set; }

    /// <summary>The gym's webhook that already sends to the URL, when the owner has not confirmed a second one.</summary>
    public Guid? Duplicate { get; private set; }

    public void OnGet(bool created = false)
    {
        Created = TempData.TakeOnce<CreatedWebhook>(User, ShownOnce);
        AlreadyShown = created && Created is null;
    }

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        var events = Input.ChosenEvents(out var eventsError);
        if (eventsError is not null)
        {
            ModelState.AddModelError(string.Empty, eventsError);
        }
        if (!ModelState.IsValid || events is null)
        {
            return Page();
        }
        var access = WebhookAccess.Of(User);
        if (!Input.ConfirmDuplicate && await DuplicateUrls.FindAsync(db, access.GymId, Input.Url, null, ct) is { } existing)
        {
            Duplicate = existing;
            return Page();
        }
        if (await limits.TryMutationAsync(this, ct) is { } limited)
        {
            ModelState.AddModelError(string.Empty, limited);
            return Page();
        }
        var outcome = await webhooks.CreateAsync(access, Input.Url, events, Input.Secret, ct);
        if (outcome.Value is not { } created)
        {
            ModelState.AddModelError(string.Empty, WebhookInput.Friendly(outcome.Error));
            return Page();
        }
        LogWebhookCreated(logger, created.Id, access.GymId);
        TempData.PutOnce(User, ShownOnce, created);
        return Redirect("/settings/webhooks/new?created=true");
    }

    [LoggerMessage(EventId = 7030, Level = LogLevel.Information, Message = "Dashboard created webhook {WebhookId} for gym {GymId}")]
    private static partial void LogWebhookCreated(ILogger logger, Guid webhookId, Guid gymId);
}
