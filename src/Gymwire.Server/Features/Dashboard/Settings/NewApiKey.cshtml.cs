using System.ComponentModel.DataAnnotations;
using Gymwire.Features.ApiKeys;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>
/// Generate New Key. The creating POST redirects (post/redirect/get), so reloading never creates a second key; the
/// key travels to the page after the redirect in TempData (encrypted, read once), is shown there once, and is never
/// logged or put in a URL. A reload of that page finds it gone.
/// </summary>
public sealed partial class NewApiKeyModel(ApiKeyService keys, DashboardRateLimits limits, ILogger<NewApiKeyModel> logger) : PageModel
{
    public const string ReadOnly = "read";
    public const string ReadWrite = "read-write";

    [BindProperty]
    public NewApiKeyInput Input { get; set; } = new();

    private const string ShownOnce = "api-key";

    /// <summary>Set only on the first GET after a successful POST.</summary>
    public CreatedApiKeyDto? Created { get; private set; }

    /// <summary>The page after the redirect, reloaded: the key was shown and is gone.</summary>
    public bool AlreadyShown { get; private set; }

    public void OnGet(bool created = false)
    {
        Created = TempData.TakeOnce<CreatedApiKeyDto>(User, ShownOnce);
        AlreadyShown = created && Created is null;
    }

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        if (!ModelState.IsValid)
        {
            return Page();
        }
        string[] scopes = Input.Permissions == ReadWrite ? [Scopes.Read, Scopes.Write] : [Scopes.Read];
        var gymId = User.GetGymId();
        if (await limits.TryMutationAsync(this, ct) is { } limited)
        {
            ModelState.AddModelError(string.Empty, limited);
            return Page();
        }
        var (created, error) = await keys.CreateAsync(gymId, Input.Label, scopes, null, ct);
        if (created is null)
        {
            ModelState.AddModelError(string.Empty, error ?? "The key could not be created.");
            return Page();
        }
        LogKeyCreated(logger, created.Id, gymId);
        TempData.PutOnce(User, ShownOnce, created);
        return Redirect("/settings/api-keys/new?created=true");
    }

    [LoggerMessage(EventId = 7060, Level = LogLevel.Information, Message = "Dashboard created API key {KeyId} for gym {GymId}")]
    private static partial void LogKeyCreated(ILogger logger, Guid keyId, Guid gymId);
}

public sealed class NewApiKeyInput
{
    [Required(ErrorMessage = "Enter a label, e.g. \"Zapier Integration\".")]
    [StringLength(100, ErrorMessage = "The label must be at most 100 characters.")]
    public string Label { get; set; } = "";

    [Required(ErrorMessage = "Choose the key's permissions.")]
    [RegularExpression("^(read|read-write)$", ErrorMessage = "Choose Read Only or Read/Write.")]
    public string Permissions { get; set; } = NewApiKeyModel.ReadOnly;
}
