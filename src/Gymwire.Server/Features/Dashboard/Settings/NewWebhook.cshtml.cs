using System.ComponentModel.DataAnnotations;
using Gymwire.Features.Webhooks;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>New Webhook. The signing secret is rendered in the response to the creating POST only.</summary>
public sealed partial class NewWebhookModel(WebhookService webhooks, ILogger<NewWebhookModel> logger) : PageModel
{
    [BindProperty]
    public WebhookInput Input { get; set; } = new();

    /// <summary>Set only in the response to a successful POST.</summary>
    public CreatedWebhook? Created { get; private set; }

    public void OnGet()
    {
    }

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        if (!ModelState.IsValid)
        {
            return Page();
        }
        var access = WebhookAccess.Of(User);
        var outcome = await webhooks.CreateAsync(access, Input.Url, Input.Events, Input.Secret, ct);
        if (outcome.Value is not { } created)
        {
            ModelState.AddModelError(string.Empty, WebhookInput.Friendly(outcome.Error));
            return Page();
        }
        LogWebhookCreated(logger, created.Id, access.GymId);
        Created = created;
        return Page();
    }

    [LoggerMessage(EventId = 7030, Level = LogLevel.Information, Message = "Dashboard created webhook {WebhookId} for gym {GymId}")]
    private static partial void LogWebhookCreated(ILogger logger, Guid webhookId, Guid gymId);
}

public sealed class WebhookInput
{
    [Required(ErrorMessage = "Enter the endpoint URL.")]
    [StringLength(2048, ErrorMessage = "The URL must be at most 2048 characters.")]
    public string Url { get; set; } = "";

    public List<string> Events { get; set; } = [];

    /// <summary>Optional: the owner's own secret (whsec_ + base64 of 24 to 64 bytes); otherwise Gymwire generates one.</summary>
    [StringLength(200)]
    public string? Secret { get; set; }

    /// <summary>The service words its errors for API clients ('url' …); on a form, name the field as the owner sees it.</summary>
    public static string Friendly(string error) =>
        error.Replace("'url'", "The endpoint URL", StringComparison.Ordinal)
             .Replace("'events'", "Events", StringComparison.Ordinal)
             .Replace("'secret'", "The secret", StringComparison.Ordinal);
}
