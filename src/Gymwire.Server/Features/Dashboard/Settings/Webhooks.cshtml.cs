using Gymwire.Features.Webhooks;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>Settings → Integrations → Webhooks: the gym's subscriptions.</summary>
public sealed class WebhooksModel(WebhookService webhooks) : PageModel
{
    public IReadOnlyList<WebhookDto> Webhooks { get; private set; } = [];

    public async Task OnGetAsync(CancellationToken ct) => Webhooks = await webhooks.ListAsync(WebhookAccess.Of(User), ct);
}
