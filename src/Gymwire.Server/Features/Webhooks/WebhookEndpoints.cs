using System.Security.Claims;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Features.Events;
using Gymwire.Infrastructure;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

public sealed record WebhookDto(Guid Id, string Url, IReadOnlyList<string> Events, bool IsActive, DateTime CreatedAt, string? DisabledReason, DateTime? DisabledAt);
public sealed record WebhookList(IReadOnlyList<WebhookDto> Webhooks);
/// <summary>A new subscription with its signing secret: the only time the secret is shown.</summary>
public sealed record CreatedWebhook(Guid Id, string Url, IReadOnlyList<string> Events, bool IsActive, DateTime CreatedAt, string? DisabledReason, DateTime? DisabledAt, string Secret);
public sealed record CreateWebhookRequest(string? Url, List<string>? Events, string? Secret);
public sealed record UpdateWebhookRequest(string? Url, List<string>? Events, bool? IsActive);
public sealed record RotatedSecret(Guid Id, string Secret, DateTime? PreviousSecretExpiresAt);
public sealed record EventTypeDto(string Name, string Description, string? AliasOf, JsonElement Sample);
public sealed record EventTypeList(IReadOnlyList<EventTypeDto> Events);
public sealed record TestSendRequest(string? Event);
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
    private const int MaxEvents = 50;

    public static IEndpointRouteBuilder MapWebhooks(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/gym/webhooks").WithTags("Webhooks");
        group.MapGet("/", List).RequireAuthorization(Policies.Read);
        group.MapGet("/events", Catalog).RequireAuthorization(Policies.Read);
        group.MapGet("/{id:guid}", Get).RequireAuthorization(Policies.Read);
        group.MapGet("/{id:guid}/deliveries", Deliveries).RequireAuthorization(Policies.Read);
        group.MapGet("/{id:guid}/deliveries/{delivery_id:guid}", Delivery).RequireAuthorization(Policies.Read);

        var mutations = group.MapGroup("/").RequireAuthorization(Policies.Write).RequireRateLimiting(RateLimitPolicies.Mutations);
        mutations.MapPost("/", Create);
        mutations.MapPatch("/{id:guid}", Update);
        mutations.MapPost("/{id:guid}/test", SendTest);
        mutations.MapPost("/{id:guid}/deliveries/{delivery_id:guid}/redeliver", Redeliver);

        var destructive = group.MapGroup("/").RequireAuthorization(Policies.Write).RequireRateLimiting(RateLimitPolicies.Destructive);
        destructive.MapDelete("/{id:guid}", Deactivate);
        destructive.MapPost("/{id:guid}/rotate-secret", RotateSecret);
        return app;
    }

    internal static async Task<Ok<WebhookList>> List(ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct)
    {
        var gymId = user.GetGymId();
        var rows = await db.WebhookSubscriptions.AsNoTracking().Where(s => s.GymId == gymId)
            .OrderBy(s => s.CreatedAt).ThenBy(s => s.Id).ToListAsync(ct);
        return TypedResults.Ok(new WebhookList(rows.Select(ToDto).ToList()));
    }

    internal static async Task<Results<Ok<WebhookDto>, NotFound<ErrorResponse>>> Get(Guid id, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct) =>
        await FindAsync(db, user, id, ct) is { } s ? TypedResults.Ok(ToDto(s)) : NotFound();

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

    internal static async Task<Results<Created<CreatedWebhook>, BadRequest<ErrorResponse>>> Create(
        CreateWebhookRequest request, ClaimsPrincipal user, GymwireDbContext db, WebhookSecretProtector protector,
        EgressGuard guard, IOptions<WebhookOptions> options, TimeProvider clock, CancellationToken ct)
    {
        var eventsError = ValidateEvents(request.Events, out var events);
        var error = ValidateUrl(request.Url, options.Value, guard) ?? eventsError
            ?? (request.Secret is null ? null : WebhookSigner.ValidateSecret(request.Secret));
        if (error is not null)
        {
            return ApiErrors.BadRequest(error);
        }
        var now = clock.GetUtcNow().UtcDateTime;
        var secret = request.Secret ?? WebhookSigner.NewSecret();
        var subscription = new WebhookSubscription
        {
            Id = Guid.CreateVersion7(now),
            GymId = user.GetGymId(),
            Url = request.Url!.Trim(),
            Events = events,
            IsActive = true,
            CreatedAt = now,
            UpdatedAt = now,
            SecretProtected = protector.Protect(secret),
        };
        db.WebhookSubscriptions.Add(subscription);
        await db.SaveChangesAsync(ct);
        var dto = ToDto(subscription);
        return TypedResults.Created($"/api/gym/webhooks/{subscription.Id}",
            new CreatedWebhook(dto.Id, dto.Url, dto.Events, dto.IsActive, dto.CreatedAt, dto.DisabledReason, dto.DisabledAt, secret));
    }

    internal static async Task<Results<Ok<WebhookDto>, BadRequest<ErrorResponse>, NotFound<ErrorResponse>>> Update(
        Guid id, UpdateWebhookRequest request, ClaimsPrincipal user, GymwireDbContext db, EgressGuard guard,
        IOptions<WebhookOptions> options, TimeProvider clock, CancellationToken ct)
    {
        var eventsError = ValidateEvents(request.Events, out var events);
        var error = (request.Url is null ? null : ValidateUrl(request.Url, options.Value, guard)) ?? eventsError;
        if (error is not null)
        {
            return ApiErrors.BadRequest(error);
        }
        if (await FindAsync(db, user, id, ct, tracking: true) is not { } subscription)
        {
            return NotFound();
        }
        var now = clock.GetUtcNow().UtcDateTime;
        if (request.Url is not null)
        {
            subscription.Url = request.Url.Trim();
        }
        if (request.Events is not null)
        {
            subscription.Events = events;
        }
        if (request.IsActive is { } active && active != subscription.IsActive)
        {
            subscription.IsActive = active;
            subscription.DisabledReason = null;
            subscription.DisabledAt = active ? null : now;
            subscription.FailingSince = null;
        }
        subscription.UpdatedAt = now;
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(ToDto(subscription));
    }

    internal static async Task<Results<Ok<WebhookDto>, NotFound<ErrorResponse>>> Deactivate(
        Guid id, ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (await FindAsync(db, user, id, ct, tracking: true) is not { } subscription)
        {
            return NotFound();
        }
        if (subscription.IsActive)
        {
            var now = clock.GetUtcNow().UtcDateTime;
            subscription.IsActive = false;
            subscription.DisabledReason = null;
            subscription.DisabledAt = now;
            subscription.UpdatedAt = now;
            await db.SaveChangesAsync(ct);
        }
        return TypedResults.Ok(ToDto(subscription));
    }

    internal static async Task<Results<Ok<RotatedSecret>, NotFound<ErrorResponse>>> RotateSecret(
        Guid id, ClaimsPrincipal user, GymwireDbContext db, WebhookSecretProtector protector,
        IOptions<WebhookOptions> options, TimeProvider clock, CancellationToken ct)
    {
        if (await FindAsync(db, user, id, ct, tracking: true) is not { } subscription)
        {
            return NotFound();
        }
        var now = clock.GetUtcNow().UtcDateTime;
        var overlap = options.Value.SecretRotationOverlap;
        var secret = WebhookSigner.NewSecret();
        subscription.PreviousSecretProtected = overlap > TimeSpan.Zero ? subscription.SecretProtected : null;
        subscription.PreviousSecretExpiresAt = overlap > TimeSpan.Zero ? now + overlap : null;
        subscription.SecretProtected = protector.Protect(secret);
        subscription.UpdatedAt = now;
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(new RotatedSecret(subscription.Id, secret, subscription.PreviousSecretExpiresAt));
    }

    internal static async Task<Results<Ok<DeliveryDetail>, BadRequest<ErrorResponse>, NotFound<ErrorResponse>, Conflict<ErrorResponse>>> SendTest(
        Guid id, TestSendRequest? request, ClaimsPrincipal user, GymwireDbContext db, WebhookSender sender, TimeProvider clock, CancellationToken ct)
    {
        if (await FindAsync(db, user, id, ct) is not { } subscription)
        {
            return NotFound();
        }
        var name = request?.Event ?? subscription.Events.FirstOrDefault() ?? EventCatalog.MemberJoined;
        if (!EventCatalog.ByName.TryGetValue(name, out var type))
        {
            return ApiErrors.BadRequest(UnknownEvents([name]));
        }
        if (!subscription.IsActive)
        {
            return ApiErrors.Conflict("This webhook is inactive; activate it before sending a test");
        }
        var now = clock.GetUtcNow().UtcDateTime;
        var delivery = new WebhookDelivery
        {
            Id = Guid.CreateVersion7(now),
            GymId = subscription.GymId,
            SubscriptionId = subscription.Id,
            Event = type.Name,
            Payload = WebhookPayloads.Sample(type, Guid.CreateVersion7(now), subscription.GymId, now),
            IsTest = true,
            Status = DeliveryStatus.Pending,
            CreatedAt = now,
        };
        db.WebhookDeliveries.Add(delivery);
        await db.SaveChangesAsync(ct);
        // Sent inline, so the owner sees the receiver's answer at once; bounded by Webhooks:Timeout.
        await sender.AttemptAsync(delivery.Id, CancellationToken.None);
        return TypedResults.Ok((await LoadDetailAsync(db, subscription.GymId, subscription.Id, delivery.Id, CancellationToken.None))!);
    }

    internal static async Task<Results<Ok<DeliveryList>, BadRequest<ErrorResponse>, NotFound<ErrorResponse>>> Deliveries(
        Guid id, string? status, int? limit, int? offset, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct)
    {
        if (Paging.TryCreate(limit, offset, out var page) is { } pagingError)
        {
            return ApiErrors.BadRequest(pagingError);
        }
        if (status is not null && !DeliveryStatus.All.Contains(status))
        {
            return ApiErrors.BadRequest($"Unknown status '{status}'. Valid statuses: {string.Join(", ", DeliveryStatus.All)}");
        }
        if (await FindAsync(db, user, id, ct) is not { } subscription)
        {
            return NotFound();
        }
        var query = db.WebhookDeliveries.AsNoTracking().Where(d => d.GymId == subscription.GymId && d.SubscriptionId == subscription.Id);
        if (status is not null)
        {
            query = query.Where(d => d.Status == status);
        }
        var rows = await query.OrderByDescending(d => d.CreatedAt).ThenByDescending(d => d.Id)
            .Skip(page.Offset).Take(page.Limit).ToListAsync(ct);
        return TypedResults.Ok(new DeliveryList(rows.Select(ToDto).ToList()));
    }

    internal static async Task<Results<Ok<DeliveryDetail>, NotFound<ErrorResponse>>> Delivery(
        Guid id, [FromRoute(Name = "delivery_id")] Guid deliveryId, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct) =>
        await LoadDetailAsync(db, user.GetGymId(), id, deliveryId, ct) is { } detail
            ? TypedResults.Ok(detail)
            : ApiErrors.NotFound("Delivery not found");

    internal static async Task<Results<Accepted<DeliveryDto>, NotFound<ErrorResponse>, Conflict<ErrorResponse>>> Redeliver(
        Guid id, [FromRoute(Name = "delivery_id")] Guid deliveryId, ClaimsPrincipal user, GymwireDbContext db, DeliverySignal signal, TimeProvider clock, CancellationToken ct)
    {
        if (await FindAsync(db, user, id, ct) is not { } subscription)
        {
            return NotFound();
        }
        var delivery = await db.WebhookDeliveries.FirstOrDefaultAsync(d => d.GymId == subscription.GymId && d.SubscriptionId == id && d.Id == deliveryId, ct);
        if (delivery is null)
        {
            return ApiErrors.NotFound("Delivery not found");
        }
        if (!subscription.IsActive)
        {
            return ApiErrors.Conflict("This webhook is inactive; activate it before redelivering");
        }
        var now = clock.GetUtcNow().UtcDateTime;
        if (delivery.LockedUntil > now)
        {
            return ApiErrors.Conflict("This delivery is being attempted right now");
        }
        // A fresh round: the whole retry schedule again, under the same webhook-id so receivers can dedupe.
        delivery.Status = DeliveryStatus.Pending;
        delivery.AttemptCount = 0;
        delivery.NextAttemptAt = now;
        await db.SaveChangesAsync(ct);
        signal.Notify();
        return TypedResults.Accepted($"/api/gym/webhooks/{id}/deliveries/{deliveryId}", ToDto(delivery));
    }

    private static async Task<DeliveryDetail?> LoadDetailAsync(GymwireDbContext db, Guid gymId, Guid subscriptionId, Guid deliveryId, CancellationToken ct)
    {
        var d = await db.WebhookDeliveries.AsNoTracking()
            .FirstOrDefaultAsync(x => x.GymId == gymId && x.SubscriptionId == subscriptionId && x.Id == deliveryId, ct);
        if (d is null)
        {
            return null;
        }
        var attempts = await db.WebhookAttempts.AsNoTracking().Where(a => a.GymId == gymId && a.DeliveryId == deliveryId)
            .OrderBy(a => a.Number).ToListAsync(ct);
        using var payload = JsonDocument.Parse(d.Payload);
        return new DeliveryDetail(d.Id, d.SubscriptionId, d.EventId, d.Event, d.Status, d.IsTest, d.AttemptCount, d.CreatedAt,
            d.LastAttemptAt, d.LastStatusCode, d.LastError, d.NextAttemptAt, payload.RootElement.Clone(),
            attempts.Select(a => new AttemptDto(a.Id, a.Number, a.AttemptedAt, a.Trigger, a.StatusCode, a.DurationMs, a.Error,
                a.ResponseHeaders is null ? null : JsonSerializer.Deserialize<Dictionary<string, string>>(a.ResponseHeaders),
                a.ResponseBody, a.ResponseBodyTruncated)).ToList());
    }

    private static Task<WebhookSubscription?> FindAsync(GymwireDbContext db, ClaimsPrincipal user, Guid id, CancellationToken ct, bool tracking = false)
    {
        var gymId = user.GetGymId();
        var query = tracking ? db.WebhookSubscriptions : db.WebhookSubscriptions.AsNoTracking();
        return query.FirstOrDefaultAsync(s => s.GymId == gymId && s.Id == id, ct);
    }

    private static NotFound<ErrorResponse> NotFound() => ApiErrors.NotFound("Webhook not found");

    private static WebhookDto ToDto(WebhookSubscription s) => new(s.Id, s.Url, s.Events, s.IsActive, s.CreatedAt, s.DisabledReason, s.DisabledAt);

    private static DeliveryDto ToDto(WebhookDelivery d) => new(d.Id, d.SubscriptionId, d.EventId, d.Event, d.Status, d.IsTest, d.AttemptCount,
        d.CreatedAt, d.LastAttemptAt, d.LastStatusCode, d.LastError, d.NextAttemptAt);

    internal static string? ValidateUrl(string? url, WebhookOptions options, EgressGuard guard)
    {
        if (string.IsNullOrWhiteSpace(url))
        {
            return "'url' is required";
        }
        url = url.Trim();
        if (url.Length > 2048)
        {
            return "'url' must be at most 2048 characters";
        }
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp) || uri.Host.Length == 0)
        {
            return "'url' must be an absolute https:// URL";
        }
        if (uri.Scheme == Uri.UriSchemeHttp && !options.AllowHttp)
        {
            return "'url' must use https:// (plain http is allowed only when Webhooks:AllowHttp is true)";
        }
        if (uri.UserInfo.Length > 0)
        {
            return "'url' must not contain a user name or password";
        }
        return guard.CheckHost(uri) is { } reason ? $"'url' points to a forbidden address: {reason}" : null;
    }

    private static string? ValidateEvents(List<string>? requested, out List<string> events)
    {
        events = requested?.Distinct(StringComparer.Ordinal).ToList() ?? [];
        if (events.Count > MaxEvents)
        {
            return $"'events' may name at most {MaxEvents} event types";
        }
        var unknown = events.Where(e => e is null || !EventCatalog.IsKnown(e)).ToList();
        return unknown.Count > 0 ? UnknownEvents(unknown) : null;
    }

    private static string UnknownEvents(IEnumerable<string?> unknown) =>
        $"Unknown event type(s): {string.Join(", ", unknown.Select(u => $"'{u}'"))}. Valid types: {string.Join(", ", EventCatalog.All.Select(e => e.Name))}";
}
