using Gymwire.Features.Webhooks;
using Gymwire.Infrastructure;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>
/// A confirmation page for a destructive webhook action (delete, rotate the secret): its POST is limited like the
/// API's destructive calls, and both pages must start it the same way to keep that promise.
/// </summary>
public abstract class DestructiveWebhookPage(WebhookService webhooks, DashboardRateLimits limits) : PageModel
{
    protected WebhookService Webhooks => webhooks;

    protected DashboardRateLimits Limits => limits;

    public WebhookDto Webhook { get; protected set; } = null!;

    /// <summary>Why the action was refused (the destructive limit, or the service's reason).</summary>
    public string? Problem { get; protected set; }

    /// <summary>
    /// Finds the webhook, then takes a destructive permit. Returns the answer when the action must not go ahead (404,
    /// or this page with the limit's problem); otherwise no answer, <see cref="Webhook"/> set, and the permit to give
    /// back if the action then changes nothing.
    /// </summary>
    protected async Task<(IActionResult? Refused, RateLimitDecision Permit)> FindAndTakePermitAsync(WebhookAccess access, Guid id, CancellationToken ct)
    {
        if (await webhooks.GetAsync(access, id, ct) is not { } found)
        {
            // Found nothing: no permit is taken, as in the API.
            return (NotFound(), default);
        }
        Webhook = found;
        var (permit, limited) = await limits.TryDestructiveAsync(this, ct);
        if (limited is not null)
        {
            Problem = limited;
            return (Page(), permit);
        }
        return (null, permit);
    }
}
