using Gymwire.Features.Dashboard.Integrations;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

public sealed record IntegrationTile(IIntegrationStatusProvider Provider, IntegrationStatus Status);

/// <summary>Settings → Integrations: one tile per integration with its status and a Configure action.</summary>
public sealed class IntegrationsModel(IntegrationTiles tiles) : PageModel
{
    public IReadOnlyList<IntegrationTile> Tiles { get; private set; } = [];

    public async Task OnGetAsync(CancellationToken ct)
    {
        var gymId = User.GetGymId();
        var list = new List<IntegrationTile>();
        foreach (var provider in tiles.Providers)
        {
            list.Add(new IntegrationTile(provider, await tiles.StatusAsync(provider, gymId, ct)));
        }
        Tiles = list;
    }
}
