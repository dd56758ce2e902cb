using Gymwire.Features.ApiKeys;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>The confirmation step of Revoke: a page of its own, so it works without script and with the keyboard.</summary>
public sealed partial class RevokeApiKeyModel(ApiKeyService keys, ILogger<RevokeApiKeyModel> logger) : PageModel
{
    public ApiKeyDto Key { get; private set; } = null!;

    public async Task<IActionResult> OnGetAsync(Guid id, CancellationToken ct)
    {
        var key = (await keys.ListAsync(User.GetGymId(), ct)).FirstOrDefault(k => k.Id == id);
        if (key is null)
        {
            return NotFound();
        }
        // Only an already revoked key has nothing left to revoke; an expired one is listed with Revoke too.
        if (!ApiKeysModel.CanRevoke(key))
        {
            return Redirect("/settings/api-keys");
        }
        Key = key;
        return Page();
    }

    public async Task<IActionResult> OnPostAsync(Guid id, CancellationToken ct)
    {
        var gymId = User.GetGymId();
        if (await keys.RevokeAsync(gymId, id, ct) is not { } revoked)
        {
            return NotFound();
        }
        LogKeyRevoked(logger, id, gymId);
        TempData.SetFlash($"Revoked the key “{revoked.Name}” ({revoked.KeyPrefix}…). Integrations using it get 401 Unauthorized.");
        return Redirect("/settings/api-keys");
    }

    [LoggerMessage(EventId = 7061, Level = LogLevel.Information, Message = "Dashboard revoked API key {KeyId} of gym {GymId}")]
    private static partial void LogKeyRevoked(ILogger logger, Guid keyId, Guid gymId);
}
