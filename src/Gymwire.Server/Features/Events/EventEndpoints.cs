using System.Security.Claims;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Infrastructure;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Features.Events;

/// <summary>An event as webhook subscribers receive it: <c>{"id","event","gym_id","data","timestamp"}</c>.</summary>
public sealed record EventDto(Guid Id, string Event, Guid GymId, JsonElement Data, DateTime Timestamp, long Sequence);
public sealed record EventList(IReadOnlyList<EventDto> Events);

/// <summary>The gym's event log (the outbox), oldest first after a sequence number: an activity feed and a catch-up API.</summary>
public static class EventEndpoints
{
    public static IEndpointRouteBuilder MapEvents(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/api/gym/events").WithTags("Events").MapGet("/", List).RequireAuthorization(Policies.Read)
            .WithSummary("The gym's events after a sequence number, oldest first: the lossless way to sync everything")
            .WithDescription("Every catalog event (the same `id`, `event`, `gym_id`, `data` and `timestamp` webhooks deliver) with its `sequence`. " +
                "Sequences follow commit order within a gym, so reading forward from the last one processed never skips an event: " +
                "`GET /api/gym/events?after_sequence=0&limit=200`, then `after_sequence=` the last `sequence` received, until a page is shorter than `limit`. " +
                "`limit` 1 to 200 (default 50); `type` narrows to one event (a catalog name or alias). See docs/polling.md.");
        return app;
    }

    internal static async Task<Results<Ok<EventList>, BadRequest<ErrorResponse>>> List(
        ClaimsPrincipal user, GymwireDbContext db, [FromQuery(Name = "after_sequence")] long? afterSequence, int? limit, string? type, CancellationToken ct)
    {
        if (Paging.TryCreate(limit, 0, out var page) is { } error)
        {
            return ApiErrors.BadRequest(error);
        }
        if (afterSequence < 0)
        {
            return ApiErrors.BadRequest("'after_sequence' must be 0 or more");
        }
        var canonical = type;
        if (type is not null)
        {
            if (!EventCatalog.ByName.TryGetValue(type, out var eventType))
            {
                return ApiErrors.BadRequest($"Unknown event type '{type}'. Valid types: {string.Join(", ", EventCatalog.All.Select(e => e.Name))}");
            }
            canonical = eventType.Canonical;
        }
        var gymId = user.GetGymId();
        var after = afterSequence ?? 0;
        var query = db.OutboxEvents.AsNoTracking().Where(e => e.GymId == gymId && e.Sequence > after);
        if (canonical is not null)
        {
            query = query.Where(e => e.Type == canonical);
        }
        var rows = await query.OrderBy(e => e.Sequence).Take(page.Limit).ToListAsync(ct);
        return TypedResults.Ok(new EventList(rows.Select(ToDto).ToList()));
    }

    public static EventDto ToDto(OutboxEvent e)
    {
        using var doc = JsonDocument.Parse(e.Data);
        return new EventDto(e.Id, e.Type, e.GymId, doc.RootElement.Clone(), e.OccurredAt, e.Sequence);
    }
}
