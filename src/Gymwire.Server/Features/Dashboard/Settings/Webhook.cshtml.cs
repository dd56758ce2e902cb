using Gymwire.Features.ApiKeys;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gymwire.Features.Dashboard.Settings;

/// <param name="Summary">One line: the member's name, the amount… (<see cref="EventSummaries"/>).</param>
public sealed record DeliveryRow(DeliveryDto Delivery, AttemptDto? LastAttempt, string Summary);


/// <summary>One webhook: its settings, Send Test, enable/disable, and its activity log with Redeliver.</summary>
public sealed partial class WebhookModel(
    WebhookService webhooks, ApiKeyService keys, IOptions<WebhookOptions> options, TimeProvider clock, ILogger<WebhookModel> logger,
    WebhookHealthQueries health, GymwireDbContext db, GymTime time, DashboardRateLimits limits)
    : PageModel
{
    public const int PageSize = 25;

    public WebhookDto Webhook { get; private set; } = null!;

    /// <summary>The row, for its state (<see cref="WebhookStates"/>).</summary>
    public WebhookSubscription Subscription { get; private set; } = null!;

    public WebhookHealth Health { get; private set; } = null!;

    /// <summary>Show only deliveries in this status (<see cref="DeliveryStatus.All"/>); null for all.</summary>
    [BindProperty(SupportsGet = true)]
    public string? Status { get; set; }

    /// <summary>How many failed deliveries "Retry all failed" just queued (after its redirect).</summary>
    [BindProperty(SupportsGet = true)]
    public int? Retried { get; set; }

    /// <summary>The default of "Retry all failed since": 24 hours ago in the gym's time zone, as the datetime-local input wants it.</summary>
    public string DefaultRetrySince => time.Local(Now - TimeSpan.FromHours(24)).ToString("yyyy-MM-ddTHH:mm", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Now in the gym's time zone, the latest "since" the input offers.</summary>
    public string LocalNow => time.Local(Now).ToString("yyyy-MM-ddTHH:mm", System.Globalization.CultureInfo.InvariantCulture);

    public IReadOnlyList<DeliveryRow> Deliveries { get; private set; } = [];

    public IReadOnlyList<TimeSpan> RetrySchedule => options.Value.EffectiveRetrySchedule;

    public TimeSpan Timeout => options.Value.Timeout;

    public DateTime Now { get; private set; }

    /// <summary>"You (owner)", or the API key that created the webhook (which alone, besides the owner, sees it).</summary>
    public string Creator { get; private set; } = "";

    [BindProperty(SupportsGet = true)]
    public int Offset { get; set; }

    [BindProperty]
    public string? TestEvent { get; set; }

    /// <summary>The test delivery Send Test just sent, whose result the page it redirects to shows.</summary>
    [BindProperty(SupportsGet = true, Name = "test")]
    public Guid? TestId { get; set; }

    /// <summary>The test delivery <see cref="TestId"/> names, with its answer.</summary>
    public DeliveryDetail? TestResult { get; private set; }

    /// <summary>Why the last action could not be done.</summary>
    public string? Problem { get; private set; }

    public bool HasOlder { get; private set; }

    public async Task<IActionResult> OnGetAsync(Guid id, CancellationToken ct)
    {
        if (TestId is { } testId && await webhooks.LoadDetailAsync(WebhookAccess.Of(User), id, testId, ct) is { IsTest: true } test)
        {
            TestResult = test;
        }
        return await LoadAsync(id, ct) ? Page() : NotFound();
    }

    public async Task<IActionResult> OnPostTestAsync(Guid id, CancellationToken ct)
    {
        if (await LimitedAsync(id, ct) is { } limited)
        {
            return limited;
        }
        var access = WebhookAccess.Of(User);
        var name = TestEvent is { Length: > 0 } chosen ? chosen : null;
        var outcome = await webhooks.SendTestAsync(access, id, name, ct);
        if (outcome.Failure == WebhookFailure.NotFound)
        {
            return NotFound();
        }
        if (outcome.Value is not { } detail)
        {
            Problem = outcome.Error;
            return await LoadAsync(id, ct) ? Page() : NotFound();
        }
        LogTestSent(logger, id, access.GymId, detail.Event, detail.LastStatusCode);
        // Post/redirect/get: reloading the result shows it again, and sends no second test.
        return Redirect($"/settings/webhooks/{id}?test={detail.Id}#test-result");
    }

    public async Task<IActionResult> OnPostEnableAsync(Guid id, CancellationToken ct)
    {
        if (await LimitedAsync(id, ct) is { } limited)
        {
            return limited;
        }
        var access = WebhookAccess.Of(User);
        var outcome = await webhooks.UpdateAsync(access, id, null, null, isActive: true, ct);
        if (outcome.Value is null)
        {
            return NotFound();
        }
        LogEnabled(logger, id, access.GymId);
        TempData.SetFlash("Webhook enabled. Paused deliveries are being sent now.");
        return Redirect($"/settings/webhooks/{id}");
    }

    /// <summary>The page's own Disable goes through /disable, which confirms first; this handler stays for forms posted straight here.</summary>
    public async Task<IActionResult> OnPostDisableAsync(Guid id, CancellationToken ct)
    {
        var access = WebhookAccess.Of(User);
        var outcome = await webhooks.DeactivateAsync(access, id, ct);
        if (outcome.Value is null)
        {
            return Refused(this, outcome, id);
        }
        DisableWebhookModel.LogDisabled(logger, id, access.GymId);
        TempData.SetFlash("Webhook disabled. Queued deliveries are paused and resume when you enable it.");
        return Redirect($"/settings/webhooks/{id}");
    }

    /// <summary>A switch-off that did not happen: not found, or the problem (<see cref="WebhookService.KeptChanging"/>) on the webhook's page.</summary>
    internal static IActionResult Refused(PageModel page, WebhookOutcome<WebhookDto> outcome, Guid id)
    {
        if (outcome.Failure == WebhookFailure.NotFound)
        {
            return page.NotFound();
        }
        page.TempData.SetProblem(outcome.Error);
        return new RedirectResult($"/settings/webhooks/{id}");
    }

    public async Task<IActionResult> OnPostRedeliverAsync(Guid id, Guid deliveryId, CancellationToken ct)
    {
        if (await LimitedAsync(id, ct) is { } limited)
        {
            return limited;
        }
        var access = WebhookAccess.Of(User);
        var outcome = await webhooks.RedeliverAsync(access, id, deliveryId, ct);
        if (outcome.Failure == WebhookFailure.NotFound && outcome.Value is null)
        {
            return NotFound();
        }
        if (outcome.Value is null)
        {
            Problem = outcome.Error;
            return await LoadAsync(id, ct) ? Page() : NotFound();
        }
        LogRedelivered(logger, deliveryId, id, access.GymId);
        TempData.SetFlash($"Redelivery of {outcome.Value.Event} queued: it is sent now, with the retry schedule again if it fails.");
        return Redirect($"/settings/webhooks/{id}#activity");
    }

    /// <summary>"Retry all failed since …": every failed delivery since then gets a fresh round of attempts.</summary>
    public async Task<IActionResult> OnPostRetryFailedAsync(Guid id, DateTime? since, CancellationToken ct)
    {
        if (await LimitedAsync(id, ct) is { } limited)
        {
            return limited;
        }
        // The form's "since" is a wall-clock time in the gym's zone.
        var sinceUtc = since is { } local ? Gymwire.Features.Gyms.GymTimeZones.ToUtc(local, time.Zone) : (DateTime?)null;
        var access = WebhookAccess.Of(User);
        var outcome = await webhooks.RetryFailedAsync(access, id, sinceUtc, ct);
        if (outcome.Failure == WebhookFailure.NotFound && outcome.Value is null)
        {
            return NotFound();
        }
        if (outcome.Value is not { } result)
        {
            Problem = outcome.Error;
            return await LoadAsync(id, ct) ? Page() : NotFound();
        }
        LogRetriedFailed(logger, result.Retried, id, access.GymId, result.Since);
        return Redirect($"/settings/webhooks/{id}?retried={result.Retried}#activity");
    }

    /// <summary>
    /// The page with the problem and a 429 when the owner's mutation budget (the API's) is spent; null when the action
    /// may go on. Enabling, a test send, a redelivery and retry-all are mutations in the API as well.
    /// </summary>
    private async Task<IActionResult?> LimitedAsync(Guid id, CancellationToken ct)
    {
        if (await limits.TryMutationAsync(this, ct) is not { } limited)
        {
            return null;
        }
        Problem = limited;
        return await LoadAsync(id, ct) ? Page() : NotFound();
    }

    /// <summary>The current state of the given deliveries, for the refresh script (JSON).</summary>
    public async Task<IActionResult> OnGetStatesAsync(Guid id, [FromQuery] List<Guid> ids, CancellationToken ct)
    {
        var access = WebhookAccess.Of(User);
        if (await webhooks.FindAsync(access, id, ct) is null)
        {
            return NotFound();
        }
        ids = ids.Take(100).ToList();
        var now = clock.GetUtcNow().UtcDateTime;
        var rows = await db.WebhookDeliveries.AsNoTracking()
            .Where(d => d.GymId == access.GymId && d.SubscriptionId == id && ids.Contains(d.Id))
            .Select(d => new { d.Id, d.Status, d.AttemptCount, d.LastStatusCode, d.LastError, d.LockedUntil })
            .ToListAsync(ct);
        // Explicit names and options: the script reads exactly these, whatever the server's JSON defaults.
        return new JsonResult(new
        {
            deliveries = rows.Select(d =>
            {
                var (css, label) = WebhookViews.DeliveryStatusBadge(d.Status);
                return new
                {
                    id = d.Id,
                    status = d.Status,
                    label,
                    css,
                    attempts = d.AttemptCount,
                    status_code = d.LastStatusCode,
                    error = d.LastError,
                    settled = d.Status != DeliveryStatus.Pending && !(d.LockedUntil > now),
                };
            }).ToList(),
        }, new System.Text.Json.JsonSerializerOptions());
    }

    public string PageUrl(int offset)
    {
        var query = new Dictionary<string, string?>(StringComparer.Ordinal);
        if (Status is not null)
        {
            query["status"] = Status;
        }
        if (offset > 0)
        {
            query["offset"] = offset.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return Microsoft.AspNetCore.WebUtilities.QueryHelpers.AddQueryString($"/settings/webhooks/{Webhook.Id}", query) + "#activity";
    }

    /// <summary>The event a test sends unless the owner picks another: the first subscribed one.</summary>
    public string DefaultTestEvent => TestEvent is { Length: > 0 } chosen && EventCatalog.IsKnown(chosen)
        ? chosen
        : Webhook.Events.FirstOrDefault() ?? EventCatalog.MemberJoined;

    private async Task<bool> LoadAsync(Guid id, CancellationToken ct)
    {
        var access = WebhookAccess.Of(User);
        if (await webhooks.FindAsync(access, id, ct) is not { } subscription)
        {
            return false;
        }
        Subscription = subscription;
        var hook = WebhookService.ToDto(subscription);
        Webhook = hook;
        Health = await health.HealthAsync(access.GymId, [id], ct);
        Status = Status is { } s && DeliveryStatus.All.Contains(s) ? s : null;
        Now = clock.GetUtcNow().UtcDateTime;
        Creator = hook.ApiKeyId is not { } keyId ? "You (owner)"
            : (await keys.ListAsync(access.GymId, ct)).FirstOrDefault(k => k.Id == keyId) is { } key
                ? $"API key {key.Name} ({key.KeyPrefix}…){(key.IsActive ? "" : ", no longer active")}"
                : "An API key";
        Offset = Math.Max(0, Offset);
        var rows = await webhooks.DeliveriesAsync(access, id, Status, Offset, PageSize + 1, ct) ?? [];
        HasOlder = rows.Count > PageSize;
        rows = rows.Take(PageSize).ToList();
        var attempts = await webhooks.LatestAttemptsAsync(access, id, rows.Select(r => r.Id).ToList(), ct);
        var ids = rows.Select(r => r.Id).ToList();
        // The events' data (or a test's stored body), for a one-line summary of each row.
        var bodies = await db.WebhookDeliveries.AsNoTracking()
            .Where(d => d.GymId == access.GymId && d.SubscriptionId == id && ids.Contains(d.Id))
            .Select(d => new { d.Id, Data = d.Payload ?? db.OutboxEvents.Where(e => e.GymId == d.GymId && e.Id == d.EventId).Select(e => e.Data).FirstOrDefault() })
            .ToDictionaryAsync(d => d.Id, d => d.Data, ct);
        var names = await EventSummaries.MemberNamesAsync(db, access.GymId, bodies.Values, ct);
        Deliveries = rows.Select(r => new DeliveryRow(r, attempts.GetValueOrDefault(r.Id), EventSummaries.Summarize(bodies.GetValueOrDefault(r.Id), names))).ToList();
        return true;
    }

    [LoggerMessage(EventId = 7031, Level = LogLevel.Information, Message = "Dashboard sent a test {Event} to webhook {WebhookId} of gym {GymId}: status {StatusCode}")]
    private static partial void LogTestSent(ILogger logger, Guid webhookId, Guid gymId, string @event, int? statusCode);

    [LoggerMessage(EventId = 7036, Level = LogLevel.Information, Message = "Dashboard enabled webhook {WebhookId} of gym {GymId}")]
    private static partial void LogEnabled(ILogger logger, Guid webhookId, Guid gymId);

    /// <summary>Audited like the other webhook actions, by ids only; shared with the delivery page's Redeliver, the same action.</summary>
    [LoggerMessage(EventId = 7037, Level = LogLevel.Information, Message = "Dashboard redelivered delivery {DeliveryId} of webhook {WebhookId} of gym {GymId}")]
    internal static partial void LogRedelivered(ILogger logger, Guid deliveryId, Guid webhookId, Guid gymId);

    [LoggerMessage(EventId = 7038, Level = LogLevel.Information, Message = "Dashboard retried {Count} failed deliveries of webhook {WebhookId} of gym {GymId} since {Since:o}")]
    private static partial void LogRetriedFailed(ILogger logger, int count, Guid webhookId, Guid gymId, DateTime since);
}
