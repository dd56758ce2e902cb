namespace Gymwire.Features.Webhooks;

/// <summary>
/// A subscription; <c>api_key_id</c> is the key that created it (null: the owner did). <c>switched_off_by_owner</c>:
/// off because the gym's owner switched it off, which only the owner can undo (a key's <c>is_active: true</c> gets 403).
/// </summary>
public sealed record WebhookDto(Guid Id, string Url, IReadOnlyList<string> Events, bool IsActive, DateTime CreatedAt, string? DisabledReason, DateTime? DisabledAt, Guid? ApiKeyId,
    string? Description, bool SwitchedOffByOwner);
public sealed record WebhookList(IReadOnlyList<WebhookDto> Webhooks);
/// <summary>A new subscription with its signing secret: the only time the secret is shown.</summary>
public sealed record CreatedWebhook(Guid Id, string Url, IReadOnlyList<string> Events, bool IsActive, DateTime CreatedAt, string? DisabledReason, DateTime? DisabledAt, Guid? ApiKeyId, string Secret,
    string? Description, bool SwitchedOffByOwner);
/// <param name="Description">Optional: what the owner calls the webhook, at most 200 characters.</param>
public sealed record CreateWebhookRequest(string? Url, List<string>? Events = null, string? Secret = null, string? Description = null);
/// <param name="Description">Null leaves it as it is; an empty string removes it.</param>
public sealed record UpdateWebhookRequest(string? Url = null, List<string>? Events = null, bool? IsActive = null, string? Description = null);
/// <param name="Since">Retry the failed deliveries created at or after this instant (ISO-8601, not in the future).</param>
public sealed record RetryFailedRequest(DateTime? Since);
/// <param name="Retried">How many failed deliveries were queued for a fresh round of attempts.</param>
public sealed record RetryFailedResult(int Retried, DateTime Since);
public sealed record RotatedSecret(Guid Id, string Secret, DateTime? PreviousSecretExpiresAt);
public sealed record EventTypeDto(string Name, string Description, string? AliasOf, JsonElement Sample);
public sealed record EventTypeList(IReadOnlyList<EventTypeDto> Events);
public sealed record TestSendRequest(string? Event = null);
public sealed record DeliveryDto(
    Guid Id, Guid WebhookId, Guid? EventId, string Event, string Status, bool IsTest, int AttemptCount,
    DateTime CreatedAt, DateTime? LastAttemptAt, int? LastStatusCode, string? LastError, DateTime? NextAttemptAt);
public sealed record DeliveryList(IReadOnlyList<DeliveryDto> Deliveries);
public sealed record AttemptDto(
    Guid Id, int Number, DateTime AttemptedAt, string Trigger, int? StatusCode, int DurationMs, string? Error,
    IReadOnlyDictionary<string, string>? ResponseHeaders, string? ResponseBody, bool ResponseBodyTruncated);
public sealed record DeliveryDetail(
    Guid Id, Guid WebhookId, Guid? EventId, string Event, string Status, bool IsTest, int AttemptCount,
    DateTime CreatedAt, DateTime? LastAttemptAt, int? LastStatusCode, string? LastError, DateTime? NextAttemptAt,
    JsonElement Payload, IReadOnlyList<AttemptDto> Attempts);

/// <summary>The webhook management API (CombatScore "Webhook Management API", GymPoint test sends and activity log).</summary>
public static class WebhookEndpoints
{
    /// <summary>Who sees which subscriptions: every webhook endpoint's description in the API reference.</summary>
    public const string OwnershipRule =
        "A subscription created with an API key belongs to that key: the key lists, reads and manages only the subscriptions " +
        "it created (their URLs, delivery payloads and the receivers' responses), and another key's or the owner's are not found (404) " +
        "for it. An owner session sees and manages every subscription of the gym; `api_key_id` names the key that created one " +
        "(null when the owner did). Revoking a key deactivates the subscriptions it created, with the reason in `disabled_reason`.";

    /// <summary>When an owner's switch-off answers 409: <see cref="WebhookService.KeptChanging"/>.</summary>
    private const string KeptChangingRule =
        "409 when an owner's switch-off of a webhook read as off found it switched on again by its key, a few times in a row: nothing " +
        "changes, and the same request works once the key stops switching it.";

    public static IEndpointRouteBuilder MapWebhooks(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/gym/webhooks").WithTags("Webhooks").WithDescription(OwnershipRule);
        group.MapGet("/", List).RequireAuthorization(Policies.Read);
        group.MapGet("/events", Catalog).RequireAuthorization(Policies.Read)
            .WithDescription("The event types a subscription can name, each with a sample payload.");
        group.MapGet("/{id:guid}", Get).RequireAuthorization(Policies.Read);
        group.MapGet("/{id:guid}/deliveries", Deliveries).RequireAuthorization(Policies.Read);
        group.MapGet("/{id:guid}/deliveries/{delivery_id:guid}", Delivery).RequireAuthorization(Policies.Read);

        // A webhook receives the gym's events, so a key that may create or manage one needs `read` as well as `write`:
        // a write-only key must not read through a webhook what GET refuses it.
        var mutations = group.MapGroup("/").RequireAuthorization(Policies.Read, Policies.Write).RequireRateLimiting(RateLimitPolicies.Mutations);
        mutations.MapPost("/", Create).WithNoStore();
        mutations.MapPatch("/{id:guid}", Update)
            .WithDescription(OwnershipRule + "\n\nAn owner's switch-off (`is_active: false` or `DELETE` with an owner session, or Disable in the dashboard) " +
                "holds against API keys: a key that sends `is_active: true` for such a webhook gets 403 and nothing changes; only the owner " +
                "switches it on again. Gymwire's own deactivations (410 Gone, failing for days) and a key's own switch-off do not hold so. " +
                "`switched_off_by_owner` is true while the owner's switch-off holds.\n\n" + KeptChangingRule);
        mutations.MapPost("/{id:guid}/test", SendTest);
        mutations.MapPost("/{id:guid}/deliveries/{delivery_id:guid}/redeliver", Redeliver);
        mutations.MapPost("/{id:guid}/retry-failed", RetryFailed)
            .WithDescription(OwnershipRule + "\n\nRecovery after an outage (Svix calls it recover): every delivery of this webhook created at or after `since` " +
                "that is undeliverable or waiting for a retry gets a fresh round of attempts now, under its own webhook-id, as a redelivery does. " +
                "Deliveries being attempted right now are left alone. 409 while the webhook is disabled.");

        // Never rate limited: stopping deliveries (to a leaked URL, say) must always work. Only `write`: stopping reveals
        // nothing, and a write-only key may stop a webhook it created before management needed `read` too.
        var disabling = group.MapGroup("/").RequireAuthorization(Policies.Write);
        disabling.MapDelete("/{id:guid}", Deactivate)
            .WithDescription(OwnershipRule + "\n\nNever rate limited: disabling a webhook always works.\n\n" + KeptChangingRule);

        var destructive = group.MapGroup("/").RequireAuthorization(Policies.Read, Policies.Write).RequireRateLimiting(RateLimitPolicies.Destructive);
        destructive.MapPost("/{id:guid}/rotate-secret", RotateSecret).WithNoStore();
        return app;
    }

    internal static async Task<Ok<WebhookList>> List(ClaimsPrincipal user, WebhookService webhooks, CancellationToken ct) =>
        TypedResults.Ok(new WebhookList(await webhooks.ListAsync(WebhookAccess.Of(user), ct)));

    internal static async Task<Results<Ok<WebhookDto>, NotFound<ErrorResponse>>> Get(Guid id, ClaimsPrincipal user, WebhookService webhooks, CancellationToken ct) =>
        await webhooks.GetAsync(WebhookAccess.Of(user), id, ct) is { } dto ? TypedResults.Ok(dto) : NotFound();

    internal static Ok<EventTypeList> Catalog(ClaimsPrincipal user, TimeProvider clock)
    {
        var gymId = user.GetGymId();
        var now = clock.GetUtcNow().UtcDateTime;
        var events = EventCatalog.All.Select(e =>
        {
            using var sample = JsonDocument.Parse(WebhookPayloads.Sample(e, Guid.CreateVersion7(now), gymId, now));
            return new EventTypeDto(e.Name, e.Description, e.AliasOf, sample.RootElement.Clone());
        }).ToList();
        return TypedResults.Ok(new EventTypeList(events));
    }

    internal static async Task<Results<Created<CreatedWebhook>, BadRequest<ErrorResponse>, JsonHttpResult<ErrorResponse>>> Create(
        CreateWebhookRequest request, ClaimsPrincipal user, WebhookService webhooks, CancellationToken ct)
    {
        var outcome = await webhooks.CreateAsync(WebhookAccess.Of(user), request.Url, request.Events, request.Secret, ct, request.Description);
        return outcome switch
        {
            { Value: { } created } => TypedResults.Created($"/api/gym/webhooks/{created.Id}", created),
            { Failure: WebhookFailure.KeyInvalid } => KeyInvalid(),
            _ => ApiErrors.BadRequest(outcome.Error),
        };
    }

    internal static async Task<Results<Ok<WebhookDto>, BadRequest<ErrorResponse>, NotFound<ErrorResponse>, Conflict<ErrorResponse>, JsonHttpResult<ErrorResponse>>> Update(
        Guid id, UpdateWebhookRequest request, ClaimsPrincipal user, WebhookService webhooks, CancellationToken ct)
    {
        var outcome = await webhooks.UpdateAsync(WebhookAccess.Of(user), id, request.Url, request.Events, request.IsActive, ct, request.Description);
        return outcome switch
        {
            { Value: { } dto } => TypedResults.Ok(dto),
            { Failure: WebhookFailure.NotFound } => NotFound(),
            { Failure: WebhookFailure.KeyInvalid } => KeyInvalid(),
            { Failure: WebhookFailure.Forbidden } => ApiErrors.Status(StatusCodes.Status403Forbidden, outcome.Error),
            { Failure: WebhookFailure.Conflict } => ApiErrors.Conflict(outcome.Error),
            _ => ApiErrors.BadRequest(outcome.Error),
        };
    }

    internal static async Task<Results<Ok<WebhookDto>, NotFound<ErrorResponse>, Conflict<ErrorResponse>>> Deactivate(
        Guid id, ClaimsPrincipal user, WebhookService webhooks, CancellationToken ct)
    {
        var outcome = await webhooks.DeactivateAsync(WebhookAccess.Of(user), id, ct);
        return outcome switch
        {
            { Value: { } dto } => TypedResults.Ok(dto),
            { Failure: WebhookFailure.Conflict } => ApiErrors.Conflict(outcome.Error),
            _ => NotFound(),
        };
    }

    internal static async Task<Results<Ok<RotatedSecret>, NotFound<ErrorResponse>, JsonHttpResult<ErrorResponse>>> RotateSecret(
        Guid id, ClaimsPrincipal user, WebhookService webhooks, CancellationToken ct) =>
        await webhooks.RotateSecretAsync(WebhookAccess.Of(user), id, ct) switch
        {
            { Value: { } rotated } => TypedResults.Ok(rotated),
            { Failure: WebhookFailure.KeyInvalid } => KeyInvalid(),
            _ => NotFound(),
        };

    internal static async Task<Results<Ok<DeliveryDetail>, BadRequest<ErrorResponse>, NotFound<ErrorResponse>, Conflict<ErrorResponse>, JsonHttpResult<ErrorResponse>>> SendTest(
        Guid id, TestSendRequest? request, ClaimsPrincipal user, WebhookService webhooks, CancellationToken ct)
    {
        var outcome = await webhooks.SendTestAsync(WebhookAccess.Of(user), id, request?.Event, ct);
        return outcome switch
        {
            { Value: { } detail } => TypedResults.Ok(detail),
            { Failure: WebhookFailure.NotFound } => NotFound(),
            { Failure: WebhookFailure.Conflict } => ApiErrors.Conflict(outcome.Error),
            { Failure: WebhookFailure.KeyInvalid } => KeyInvalid(),
            _ => ApiErrors.BadRequest(outcome.Error),
        };
    }

    internal static async Task<Results<Ok<DeliveryList>, BadRequest<ErrorResponse>, NotFound<ErrorResponse>>> Deliveries(
        Guid id, string? status, int? limit, int? offset, ClaimsPrincipal user, WebhookService webhooks, CancellationToken ct)
    {
        if (Paging.TryCreate(limit, offset, out var page) is { } pagingError)
        {
            return ApiErrors.BadRequest(pagingError);
        }
        if (status is not null && !DeliveryStatus.All.Contains(status))
        {
            return ApiErrors.BadRequest($"Unknown status '{status}'. Valid statuses: {string.Join(", ", DeliveryStatus.All)}");
        }
        return await webhooks.DeliveriesAsync(WebhookAccess.Of(user), id, status, page.Offset, page.Limit, ct) is { } rows
            ? TypedResults.Ok(new DeliveryList(rows))
            : NotFound();
    }

    internal static async Task<Results<Ok<DeliveryDetail>, NotFound<ErrorResponse>>> Delivery(
        Guid id, [FromRoute(Name = "delivery_id")] Guid deliveryId, ClaimsPrincipal user, WebhookService webhooks, CancellationToken ct) =>
        await webhooks.LoadDetailAsync(WebhookAccess.Of(user), id, deliveryId, ct) is { } detail
            ? TypedResults.Ok(detail)
            : ApiErrors.NotFound(WebhookService.DeliveryNotFound);

    internal static async Task<Results<Accepted<DeliveryDto>, NotFound<ErrorResponse>, Conflict<ErrorResponse>, JsonHttpResult<ErrorResponse>>> Redeliver(
        Guid id, [FromRoute(Name = "delivery_id")] Guid deliveryId, ClaimsPrincipal user, WebhookService webhooks, CancellationToken ct)
    {
        var outcome = await webhooks.RedeliverAsync(WebhookAccess.Of(user), id, deliveryId, ct);
        return outcome switch
        {
            { Value: { } dto } => TypedResults.Accepted($"/api/gym/webhooks/{id}/deliveries/{deliveryId}", dto),
            { Failure: WebhookFailure.Conflict } => ApiErrors.Conflict(outcome.Error),
            { Failure: WebhookFailure.KeyInvalid } => KeyInvalid(),
            _ => ApiErrors.NotFound(outcome.Error),
        };
    }

    internal static async Task<Results<Accepted<RetryFailedResult>, BadRequest<ErrorResponse>, NotFound<ErrorResponse>, Conflict<ErrorResponse>, JsonHttpResult<ErrorResponse>>> RetryFailed(
        Guid id, RetryFailedRequest? request, ClaimsPrincipal user, WebhookService webhooks, CancellationToken ct)
    {
        var outcome = await webhooks.RetryFailedAsync(WebhookAccess.Of(user), id, request?.Since, ct);
        return outcome switch
        {
            { Value: { } result } => TypedResults.Accepted($"/api/gym/webhooks/{id}/deliveries", result),
            { Failure: WebhookFailure.NotFound } => NotFound(),
            { Failure: WebhookFailure.Conflict } => ApiErrors.Conflict(outcome.Error),
            { Failure: WebhookFailure.KeyInvalid } => KeyInvalid(),
            _ => ApiErrors.BadRequest(outcome.Error),
        };
    }

    private static NotFound<ErrorResponse> NotFound() => ApiErrors.NotFound(WebhookService.WebhookNotFound);

    /// <summary>The request's key was revoked or expired after it authenticated: 401, as the key's next request gets.</summary>
    private static JsonHttpResult<ErrorResponse> KeyInvalid() => ApiErrors.Status(StatusCodes.Status401Unauthorized, WebhookService.KeyInvalid);
}
