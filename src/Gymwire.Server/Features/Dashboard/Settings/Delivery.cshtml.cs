using System.Text;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <summary>
/// One delivery, as GitHub's Recent Deliveries and Svix's attempt list show one: the request (headers and pretty-printed
/// payload) and every attempt on a timeline, with the receiver's answer.
/// </summary>
public sealed class DeliveryModel(WebhookService webhooks, WebhookSecretProtector protector, GymwireDbContext db, TimeProvider clock, IOptions<WebhookOptions> options,
    DashboardRateLimits limits, ILogger<DeliveryModel> logger) : PageModel
{
    public WebhookSubscription Webhook { get; private set; } = null!;

    public DeliveryDetail Delivery { get; private set; } = null!;

    public string PrettyPayload { get; private set; } = "";

    public string Summary { get; private set; } = "";

    /// <summary>The request headers of the latest attempt (or of the next one, before any), signatures included; null when they cannot be rebuilt.</summary>
    public IReadOnlyList<KeyValuePair<string, string>>? RequestHeaders { get; private set; }

    /// <summary>Why the headers shown are not those of the latest attempt, when they are not.</summary>
    public string? HeadersNote { get; private set; }

    public DateTime Now { get; private set; }

    public string? Problem { get; private set; }

    public IReadOnlyList<TimeSpan> RetrySchedule => options.Value.EffectiveRetrySchedule;

    public bool InFlight => Delivery.Status == DeliveryStatus.Pending;

    public bool CanRedeliver => Webhook.IsActive && !InFlight;

    public async Task<IActionResult> OnGetAsync(Guid id, Guid deliveryId, CancellationToken ct) =>
        await LoadAsync(id, deliveryId, ct) ? Page() : NotFound();

    public async Task<IActionResult> OnPostRedeliverAsync(Guid id, Guid deliveryId, CancellationToken ct)
    {
        if (await limits.TryMutationAsync(this, ct) is { } limited)
        {
            Problem = limited;
            return await LoadAsync(id, deliveryId, ct) ? Page() : NotFound();
        }
        var access = WebhookAccess.Of(User);
        var outcome = await webhooks.RedeliverAsync(access, id, deliveryId, ct);
        if (outcome.Value is not null)
        {
            WebhookModel.LogRedelivered(logger, deliveryId, id, access.GymId);
            return Redirect($"/settings/webhooks/{id}/deliveries/{deliveryId}");
        }
        if (outcome.Failure == WebhookFailure.NotFound)
        {
            return NotFound();
        }
        Problem = outcome.Error;
        return await LoadAsync(id, deliveryId, ct) ? Page() : NotFound();
    }

    private async Task<bool> LoadAsync(Guid id, Guid deliveryId, CancellationToken ct)
    {
        var access = WebhookAccess.Of(User);
        if (await webhooks.FindAsync(access, id, ct) is not { } hook || await webhooks.LoadDetailAsync(access, id, deliveryId, ct) is not { } detail)
        {
            return false;
        }
        Webhook = hook;
        Delivery = detail;
        Now = clock.GetUtcNow().UtcDateTime;
        var body = detail.Payload.GetRawText();
        PrettyPayload = JsonSerializer.Serialize(detail.Payload, Indented);
        var names = await EventSummaries.MemberNamesAsync(db, access.GymId, [body], ct);
        Summary = EventSummaries.Summarize(body, names);
        BuildHeaders(body);
        return true;
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// Gymwire does not store request headers: they are rebuilt here exactly as the sender builds them (same body,
    /// webhook-id and attempt time), with the secrets that signed at that time. An attempt made before the last
    /// rotation was signed with a secret Gymwire may no longer hold, so its signatures are not shown.
    /// </summary>
    private void BuildHeaders(string body)
    {
        var at = Delivery.Attempts.Count > 0 ? Delivery.Attempts[^1].AttemptedAt : Now;
        var rotatedAt = Webhook.PreviousSecretExpiresAt is { } expires ? expires - options.Value.SecretRotationOverlap : (DateTime?)null;
        var headers = new List<KeyValuePair<string, string>>
        {
            new("Content-Type", "application/json"),
            new("X-CombatScore-Event", Delivery.Event),
        };
        if (Delivery.IsTest)
        {
            headers.Add(new(WebhookPayloads.TestHeader, "true"));
        }
        if (rotatedAt is { } rotated && at < rotated)
        {
            HeadersNote = "The latest attempt was signed with the secret before the last rotation, so its signatures are not shown.";
            headers.Add(new("webhook-id", Delivery.Id.ToString()));
            headers.Add(new("webhook-timestamp", new DateTimeOffset(at, TimeSpan.Zero).ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture)));
            RequestHeaders = headers;
            return;
        }
        var secrets = new List<string> { protector.Unprotect(Webhook.SecretProtected) };
        if (Webhook.PreviousSecretProtected is { } previous && Webhook.PreviousSecretExpiresAt > at)
        {
            secrets.Add(protector.Unprotect(previous));
        }
        headers.AddRange(WebhookSigner.Headers(secrets, Delivery.Id.ToString(), new DateTimeOffset(at, TimeSpan.Zero), Encoding.UTF8.GetBytes(body)));
        RequestHeaders = headers;
        if (Delivery.Attempts.Count == 0)
        {
            HeadersNote = "No attempt yet: these are the headers the first attempt will carry (its timestamp will be the time it is sent).";
        }
    }

    /// <summary>An attempt's <see cref="DeliveryMetrics.Triggers"/> in an owner's words.</summary>
    public static string TriggerLabel(string trigger) => trigger switch
    {
        DeliveryMetrics.Triggers.Initial => "Initial attempt",
        DeliveryMetrics.Triggers.Retry => "Scheduled retry",
        DeliveryMetrics.Triggers.Redeliver => "Redelivery",
        DeliveryMetrics.Triggers.Test => "Test send",
        _ => trigger,
    };
}
