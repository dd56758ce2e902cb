using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>Settings → Integrations → Webhooks: the gym's subscriptions, their state and the health of all of them.</summary>
public sealed class WebhooksModel(WebhookHealthQueries health) : PageModel
{
    public IReadOnlyList<WebhookListRow> Webhooks { get; private set; } = [];

    public WebhookHealth? Health { get; private set; }

    public DateTime Now => health.Now;

    public async Task OnGetAsync(CancellationToken ct)
    {
        var access = WebhookAccess.Of(User);
        Webhooks = await health.ListAsync(access, ct);
        if (Webhooks.Count > 0)
        {
            Health = await health.HealthAsync(access.GymId, Webhooks.Select(w => w.Webhook.Id).ToList(), ct);
        }
    }
}
