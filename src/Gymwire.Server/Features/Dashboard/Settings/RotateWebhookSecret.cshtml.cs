using Gymwire.Features.Webhooks;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>Rotate secret: a confirmation, then the new secret in the response to that POST only. Limited like the API's.</summary>
public sealed partial class RotateWebhookSecretModel(
    WebhookService webhooks, DashboardRateLimits limits, IOptions<WebhookOptions> options, ILogger<RotateWebhookSecretModel> logger)
    : PageModel
{
    public WebhookDto Webhook { get; private set; } = null!;

    public TimeSpan Overlap => options.Value.SecretRotationOverlap;

    /// <summary>Why the rotation was refused (the destructive limit).</summary>
    public string? Problem { get; private set; }

    /// <summary>Set only in the response to the rotating POST.</summary>
    public RotatedSecret? Rotated { get; private set; }

    public async Task<IActionResult> OnGetAsync(Guid id, CancellationToken ct)
    {
        if (await webhooks.GetAsync(WebhookAccess.Of(User), id, ct) is not { } hook)
        {
            return NotFound();
        }
        Webhook = hook;
        return Page();
    }

    public async Task<IActionResult> OnPostAsync(Guid id, CancellationToken ct)
    {
        var access = WebhookAccess.Of(User);
        if (await webhooks.GetAsync(access, id, ct) is not { } found)
        {
            // Found nothing: no permit is taken, as in the API.
            return NotFound();
        }
        var (permit, limited) = await limits.TryDestructiveAsync(this, ct);
        if (limited is not null)
        {
            Webhook = found;
            Problem = limited;
            return Page();
        }
        if (await webhooks.RotateSecretAsync(access, id, ct) is not { } rotated)
        {
            await limits.ReleaseAsync(permit);
            return NotFound();
        }
        LogRotated(logger, id, access.GymId);
        Rotated = rotated;
        Webhook = (await webhooks.GetAsync(access, id, ct))!;
        return Page();
    }

    [LoggerMessage(EventId = 7032, Level = LogLevel.Information, Message = "Dashboard rotated the secret of webhook {WebhookId} of gym {GymId}")]
    private static partial void LogRotated(ILogger logger, Guid webhookId, Guid gymId);
}
