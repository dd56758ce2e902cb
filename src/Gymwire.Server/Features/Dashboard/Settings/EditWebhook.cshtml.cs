using Gymwire.Features.Webhooks;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>Edit a webhook's URL and events (the secret changes only by rotation).</summary>
public sealed class EditWebhookModel(WebhookService webhooks) : PageModel
{
    [BindProperty]
    public WebhookInput Input { get; set; } = new();

    public Guid Id { get; private set; }

    public async Task<IActionResult> OnGetAsync(Guid id, CancellationToken ct)
    {
        if (await webhooks.GetAsync(WebhookAccess.Of(User), id, ct) is not { } hook)
        {
            return NotFound();
        }
        Id = id;
        Input = new WebhookInput { Url = hook.Url, Events = hook.Events.ToList() };
        return Page();
    }

    public async Task<IActionResult> OnPostAsync(Guid id, CancellationToken ct)
    {
        var access = WebhookAccess.Of(User);
        Id = id;
        if (!ModelState.IsValid)
        {
            return await webhooks.GetAsync(access, id, ct) is null ? NotFound() : Page();
        }
        var outcome = await webhooks.UpdateAsync(access, id, Input.Url, Input.Events, null, ct);
        if (outcome.Failure == WebhookFailure.NotFound && outcome.Value is null)
        {
            return NotFound();
        }
        if (outcome.Value is null)
        {
            // A bad URL is reported before the webhook is looked up; a form for another gym's webhook is still a 404.
            if (await webhooks.GetAsync(access, id, ct) is null)
            {
                return NotFound();
            }
            ModelState.AddModelError(string.Empty, WebhookInput.Friendly(outcome.Error));
            return Page();
        }
        return Redirect($"/settings/webhooks/{id}");
    }
}
