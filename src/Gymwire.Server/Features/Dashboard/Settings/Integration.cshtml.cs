using Gymwire.Features.Dashboard.Integrations;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>An integration's own page (its Configure action until the integration brings a page of its own).</summary>
public sealed class IntegrationModel(IntegrationTiles tiles) : PageModel
{
    public IIntegrationStatusProvider Provider { get; private set; } = null!;
    public IntegrationStatus Status { get; private set; } = null!;

    public async Task<IActionResult> OnGetAsync(string key, CancellationToken ct)
    {
        if (tiles.Find(key) is not { } provider)
        {
            return NotFound();
        }
        Provider = provider;
        Status = await tiles.StatusAsync(provider, User.GetGymId(), ct);
        return Page();
    }
}
