using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>
/// A confirmation page for a destructive webhook action (delete, rotate the secret): its POST is limited like the
/// API's destructive calls. The POST handler is here, so both pages start it the same way and keep that promise.
/// </summary>
public abstract class DestructiveWebhookPage(WebhookService webhooks, DashboardRateLimits limits) : PageModel
{
    protected WebhookService Webhooks => webhooks;

    protected DashboardRateLimits Limits => limits;

    public WebhookDto Webhook { get; protected set; } = null!;

    /// <summary>Why the action was refused (the destructive limit, or the service's reason).</summary>
    public string? Problem { get; protected set; }

    /// <summary>
    /// Finds the webhook, then takes a destructive permit: 404, or this page with the limit's problem, when the action
    /// must not go ahead; otherwise <see cref="Webhook"/> is set and <see cref="ActAsync"/> answers.
    /// </summary>
    public async Task<IActionResult> OnPostAsync(Guid id, CancellationToken ct)
    {
        var access = WebhookAccess.Of(User);
        if (await webhooks.GetAsync(access, id, ct) is not { } found)
        {
            // Found nothing: no permit is taken, as in the API.
            return NotFound();
        }
        Webhook = found;
        var (permit, limited) = await limits.TryDestructiveAsync(this, ct);
        if (limited is not null)
        {
            Problem = limited;
            return Page();
        }
        return await ActAsync(access, id, permit, ct);
    }

    /// <summary>The action itself, once allowed; it gives <paramref name="permit"/> back if it then changes nothing.</summary>
    protected abstract Task<IActionResult> ActAsync(WebhookAccess access, Guid id, RateLimitDecision permit, CancellationToken ct);
}
