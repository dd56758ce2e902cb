using Gymwire.Features.Webhooks;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>Rotate secret: a confirmation, then the new secret in the response to that POST only.</summary>
public sealed partial class RotateWebhookSecretModel(WebhookService webhooks, IOptions<WebhookOptions> options, ILogger<RotateWebhookSecretModel> logger)
    : PageModel
{
    public WebhookDto Webhook { get; private set; } = null!;

    public TimeSpan Overlap => options.Value.SecretRotationOverlap;

    /// <summary>Set only in the response to the rotating POST.</summary>
    public RotatedSecret? Rotated { get; private set; }

    public async Task<IActionResult> OnGetAsync(Guid id, CancellationToken ct)
    {
        if (await webhooks.GetAsync(User.GetGymId(), id, ct) is not { } hook)
        {
            return NotFound();
        }
        Webhook = hook;
        return Page();
    }

    public async Task<IActionResult> OnPostAsync(Guid id, CancellationToken ct)
    {
        var gymId = User.GetGymId();
        if (await webhooks.RotateSecretAsync(gymId, id, ct) is not { } rotated)
        {
            return NotFound();
        }
        LogRotated(logger, id, gymId);
        Rotated = rotated;
        Webhook = (await webhooks.GetAsync(gymId, id, ct))!;
        return Page();
    }

    [LoggerMessage(EventId = 7032, Level = LogLevel.Information, Message = "Dashboard rotated the secret of webhook {WebhookId} of gym {GymId}")]
    private static partial void LogRotated(ILogger logger, Guid webhookId, Guid gymId);
}
