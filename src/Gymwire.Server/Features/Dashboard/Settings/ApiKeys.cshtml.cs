using Gymwire.Features.ApiKeys;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>Settings → Integrations → API Keys: the gym's keys, never the keys themselves.</summary>
public sealed class ApiKeysModel(ApiKeyService keys, TimeProvider clock) : PageModel
{
    public IReadOnlyList<ApiKeyDto> Keys { get; private set; } = [];

    public DateTime Now { get; private set; }

    public async Task OnGetAsync(CancellationToken ct)
    {
        Now = clock.GetUtcNow().UtcDateTime;
        Keys = await keys.ListAsync(User.GetGymId(), ct);
    }

    public static string Permissions(IReadOnlyCollection<string> scopes) => scopes.Contains(Scopes.Write) ? "Read/Write" : "Read Only";

    /// <summary>Revoked before Expired: a key revoked after it expired shows the owner's revocation, the later fact.</summary>
    public static (string Css, string Text) Status(ApiKeyDto key, DateTime now) =>
        key.IsActive ? ("connected", "Active")
        : key.IsRevoked ? ("not-connected", "Revoked")
        : ("not-connected", "Expired");

    /// <summary>An expired key can still be revoked: that records it, and ends the webhooks it created that are still on.</summary>
    public static bool CanRevoke(ApiKeyDto key) => !key.IsRevoked;
}
