using System.ComponentModel.DataAnnotations;
using Gymwire.Features.ApiKeys;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>
/// Generate New Key. The key is rendered in the response to the POST that created it and nowhere else: not in
/// TempData, a redirect or a log, so there is no page that can show it again.
/// </summary>
public sealed partial class NewApiKeyModel(ApiKeyService keys, ILogger<NewApiKeyModel> logger) : PageModel
{
    public const string ReadOnly = "read";
    public const string ReadWrite = "read-write";

    [BindProperty]
    public NewApiKeyInput Input { get; set; } = new();

    /// <summary>Set only in the response to a successful POST.</summary>
    public CreatedApiKeyDto? Created { get; private set; }

    public void OnGet()
    {
    }

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        if (!ModelState.IsValid)
        {
            return Page();
        }
        string[] scopes = Input.Permissions == ReadWrite ? [Scopes.Read, Scopes.Write] : [Scopes.Read];
        var gymId = User.GetGymId();
        var (created, error) = await keys.CreateAsync(gymId, Input.Label, scopes, null, ct);
        if (created is null)
        {
            ModelState.AddModelError(string.Empty, error ?? "The key could not be created.");
            return Page();
        }
        LogKeyCreated(logger, created.Id, gymId);
        Created = created;
        return Page();
    }

    [LoggerMessage(EventId = 7020, Level = LogLevel.Information, Message = "Dashboard created API key {KeyId} for gym {GymId}")]
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
