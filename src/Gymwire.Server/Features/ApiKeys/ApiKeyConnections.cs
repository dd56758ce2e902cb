using Gymwire.Features.Dashboard.Integrations;

namespace Gymwire.Features.ApiKeys;

/// <summary>
/// The gym's API keys, for the Zapier/Make tile (Zapier polls triggers and calls actions with a key). A key counts
/// only once something has used it recently: a key that exists but was never used connects nothing.
/// </summary>
public sealed class ApiKeyConnections(GymwireDbContext db, TimeProvider clock) : IAutomationConnectionSource
{
    /// <summary>How recent a use counts as connected (Zapier polls every few minutes; Make every 15 minutes or less often).</summary>
    public static readonly TimeSpan RecentUse = TimeSpan.FromDays(30);

    public async Task<AutomationConnections> GetAsync(Guid gymId, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var since = now - RecentUse;
        var used = await db.ApiKeys.AsNoTracking()
            .CountAsync(k => k.GymId == gymId && k.RevokedAt == null && (k.ExpiresAt == null || k.ExpiresAt > now) && k.LastUsedAt >= since, ct);
        return new AutomationConnections(used, used == 1 ? "1 API key used in the last 30 days" : $"{used} API keys used in the last 30 days", null);
    }
}
