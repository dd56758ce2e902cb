using Gymwire.Data;
using Gymwire.Features.Dashboard.Integrations;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Features.ApiKeys;

/// <summary>The gym's usable API keys, for the Zapier/Make tile (Zapier polls triggers and calls actions with a key).</summary>
public sealed class ApiKeyConnections(GymwireDbContext db, TimeProvider clock) : IAutomationConnectionSource
{
    public async Task<AutomationConnections> GetAsync(Guid gymId, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var active = await db.ApiKeys.AsNoTracking()
            .CountAsync(k => k.GymId == gymId && k.RevokedAt == null && (k.ExpiresAt == null || k.ExpiresAt > now), ct);
        return new AutomationConnections(active, active == 1 ? "1 active API key" : $"{active} active API keys", null);
    }
}
