using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Features.Events;
using Gymwire.Infrastructure;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Features.Zapier;

// The documented trigger items: exactly these fields, in this order.
public sealed record NewMemberItem(Guid Id, string UserId, string Role, DateTime JoinedAt);
public sealed record NewPaymentItem(Guid Id, string UserId, int AmountCents, string Status, DateTime CreatedAt);
public sealed record NewSessionItem(Guid Id, string UserId, string SessionType, DateOnly Date, int DurationMins);
public sealed record NewCheckinItem(Guid Id, string UserId, Guid? ClassScheduleId, string Status);

/// <summary>
/// Zapier polling triggers: by default the caller's gym's 20 most recent items, newest first, ties broken by id so
/// Zapier's dedupe by <c>id</c> holds; the four queries are compiled once because polls are frequent. <c>limit</c>
/// changes only how many; <c>after_sequence</c> returns the items whose creating event comes after that position of the
/// gym's event log (commit order, see <see cref="Data.PostgresOutboxOrder"/>), oldest first, so nothing is passed over.
/// Answers without <c>after_sequence</c> are kept in <see cref="TriggerCache"/>, keyed by gym, type and limit.
/// </summary>
public static class ZapierTriggers
{
    public const int Limit = 20;
    public const int MaxLimit = 100;
    public const string NextAfterSequenceHeader = "X-Gymwire-Next-After-Sequence";
    public static readonly string[] Types = ["new_member", "new_payment", "new_session", "new_checkin"];

    /// <summary>The source of the check-ins <c>new_checkin</c> returns: the contract's "kiosk check-ins" (docs/polling.md).</summary>
    public const string CheckinSource = "kiosk";

    // A cursor poll reads the event log a page at a time; check-ins from elsewhere than the kiosk are passed over,
    // so a poll reads at most this many pages before it answers with what it has (and the position it reached).
    private const int MaxCursorPages = 10;

    private static readonly PerProvider<Func<GymwireDbContext, Guid, int, IAsyncEnumerable<NewMemberItem>>> NewMembers = new(() =>
        EF.CompileAsyncQuery((GymwireDbContext db, Guid gymId, int take) => db.Members.AsNoTracking().Where(m => m.GymId == gymId)
            .OrderByDescending(m => m.JoinedAt).ThenByDescending(m => m.Id).Take(take)
            .Select(m => new NewMemberItem(m.Id, m.UserId, m.Role, m.JoinedAt))));

    private static readonly PerProvider<Func<GymwireDbContext, Guid, int, IAsyncEnumerable<NewPaymentItem>>> NewPayments = new(() =>
        EF.CompileAsyncQuery((GymwireDbContext db, Guid gymId, int take) => db.Payments.AsNoTracking().Where(p => p.GymId == gymId)
            // By when Gymwire recorded it, not when it was paid: a payment Stripe delivers late still comes first.
            .OrderByDescending(p => p.RecordedAt).ThenByDescending(p => p.Id).Take(take)
            .Select(p => new NewPaymentItem(p.Id, p.UserId, p.AmountCents, p.Status, p.CreatedAt))));

    private static readonly PerProvider<Func<GymwireDbContext, Guid, int, IAsyncEnumerable<NewSessionItem>>> NewSessions = new(() =>
        EF.CompileAsyncQuery((GymwireDbContext db, Guid gymId, int take) => db.TrainingSessions.AsNoTracking().Where(s => s.GymId == gymId)
            .OrderByDescending(s => s.CreatedAt).ThenByDescending(s => s.Id).Take(take)
            .Select(s => new NewSessionItem(s.Id, s.UserId, s.SessionType, s.Date, s.DurationMins))));

    private static readonly PerProvider<Func<GymwireDbContext, Guid, int, IAsyncEnumerable<NewCheckinItem>>> NewCheckins = new(() =>
        EF.CompileAsyncQuery((GymwireDbContext db, Guid gymId, int take) => db.Attendance.AsNoTracking()
            .Where(a => a.GymId == gymId && a.Source == CheckinSource)
            .OrderByDescending(a => a.CheckedInAt).ThenByDescending(a => a.Id).Take(take)
            .Select(a => new NewCheckinItem(a.Id, a.UserId, a.ClassScheduleId, a.Status))));

    internal static async Task<Results<Ok<IReadOnlyList<object>>, TriggerAnswer, BadRequest<ErrorResponse>>> Poll(
        string? type, int? limit, [FromQuery(Name = "after_sequence")] long? afterSequence,
        ClaimsPrincipal user, GymwireDbContext db, TriggerCache cache, HttpResponse response, CancellationToken ct)
    {
        if (type is null || !Types.Contains(type))
        {
            return ApiErrors.BadRequest(type is null
                ? $"Missing 'type' query parameter. Valid types: {string.Join(", ", Types)}"
                : $"Unknown trigger type '{type}'. Valid types: {string.Join(", ", Types)}");
        }
        if (limit is < 1 or > MaxLimit)
        {
            return ApiErrors.BadRequest($"'limit' must be between 1 and {MaxLimit}");
        }
        if (afterSequence < 0)
        {
            return ApiErrors.BadRequest("'after_sequence' must be 0 or more");
        }
        var gymId = user.GetGymId();
        var take = limit ?? Limit;
        if (afterSequence is { } after)
        {
            var (items, next) = await AfterAsync(type, db, gymId, after, take, ct);
            response.Headers[NextAfterSequenceHeader] = next.ToString(CultureInfo.InvariantCulture);
            return TypedResults.Ok(items);
        }
        // The stamp is read before the query: a commit after it moves it, so what the query read is served only until then.
        var stamp = cache.Current(gymId);
        if (cache.TryGet(gymId, type, take, stamp, out var cached))
        {
            return cached;
        }
        IReadOnlyList<object> latest = type switch
        {
            "new_member" => await ReadAsync(NewMembers.For(db)(db, gymId, take), take, ct),
            "new_payment" => await ReadAsync(NewPayments.For(db)(db, gymId, take), take, ct),
            "new_session" => await ReadAsync(NewSessions.For(db)(db, gymId, take), take, ct),
            _ => await ReadAsync(NewCheckins.For(db)(db, gymId, take), take, ct),
        };
        var answer = cache.Answer(latest);
        if (stamp is { } read)
        {
            cache.Set(gymId, type, take, read, answer);
        }
        return answer;
    }

    private static async Task<IReadOnlyList<object>> ReadAsync<T>(IAsyncEnumerable<T> query, int take, CancellationToken ct) where T : class
    {
        var items = new List<object>(take);
        await foreach (var item in query.WithCancellation(ct))
        {
            items.Add(item);
        }
        return items;
    }

    /// <summary>How a trigger's items are found from its events: which events create them, and the key in their data.</summary>
    private sealed record CursorSource(string[] Events, string Key, Func<GymwireDbContext, Guid, List<string>, CancellationToken, Task<Dictionary<string, object>>> Load);

    private static readonly Dictionary<string, CursorSource> Sources = new(StringComparer.Ordinal)
    {
        // user_id is unique within a gym and in every member.joined event, old or new.
        ["new_member"] = new([EventCatalog.MemberJoined], "user_id", async (db, gymId, keys, ct) =>
            await db.Members.AsNoTracking().Where(m => m.GymId == gymId && keys.Contains(m.UserId))
                .ToDictionaryAsync(m => m.UserId, object (m) => new NewMemberItem(m.Id, m.UserId, m.Role, m.JoinedAt), StringComparer.Ordinal, ct)),
        ["new_payment"] = new([EventCatalog.PaymentReceived, EventCatalog.PaymentFailed], "payment_id", async (db, gymId, keys, ct) =>
        {
            var ids = ParseIds(keys);
            return await db.Payments.AsNoTracking().Where(p => p.GymId == gymId && ids.Contains(p.Id))
                .ToDictionaryAsync(p => p.Id.ToString(), object (p) => new NewPaymentItem(p.Id, p.UserId, p.AmountCents, p.Status, p.CreatedAt), StringComparer.OrdinalIgnoreCase, ct);
        }),
        ["new_session"] = new([EventCatalog.SessionLogged], "session_id", async (db, gymId, keys, ct) =>
        {
            var ids = ParseIds(keys);
            return await db.TrainingSessions.AsNoTracking().Where(s => s.GymId == gymId && ids.Contains(s.Id))
                .ToDictionaryAsync(s => s.Id.ToString(), object (s) => new NewSessionItem(s.Id, s.UserId, s.SessionType, s.Date, s.DurationMins), StringComparer.OrdinalIgnoreCase, ct);
        }),
        ["new_checkin"] = new([EventCatalog.AttendanceCheckedIn], "attendance_id", async (db, gymId, keys, ct) =>
        {
            var ids = ParseIds(keys);
            return await db.Attendance.AsNoTracking().Where(a => a.GymId == gymId && ids.Contains(a.Id) && a.Source == CheckinSource)
                .ToDictionaryAsync(a => a.Id.ToString(), object (a) => new NewCheckinItem(a.Id, a.UserId, a.ClassScheduleId, a.Status), StringComparer.OrdinalIgnoreCase, ct);
        }),
    };

    /// <summary>
    /// The items created after position <paramref name="after"/> of the gym's event log, oldest first, and the position
    /// to poll after next: the last event read (every event up to it has been answered or has no item for this trigger).
    /// </summary>
    private static async Task<(IReadOnlyList<object> Items, long Next)> AfterAsync(string type, GymwireDbContext db, Guid gymId, long after, int take, CancellationToken ct)
    {
        var source = Sources[type];
        var items = new List<object>(take);
        var next = after;
        for (var page = 0; page < MaxCursorPages && items.Count < take; page++)
        {
            var events = await db.OutboxEvents.AsNoTracking()
                .Where(e => e.GymId == gymId && e.Sequence > next && source.Events.Contains(e.Type))
                .OrderBy(e => e.Sequence).Take(take).Select(e => new { e.Sequence, e.Data }).ToListAsync(ct);
            var keyed = events.Select(e => (e.Sequence, Key: KeyOf(e.Data, source.Key))).ToList();
            var found = await source.Load(db, gymId, [.. keyed.Where(k => k.Key is not null).Select(k => k.Key!).Distinct()], ct);
            foreach (var (sequence, key) in keyed)
            {
                if (key is not null && found.TryGetValue(key, out var item))
                {
                    if (items.Count == take)
                    {
                        return (items, next);
                    }
                    var json = JsonSerializer.SerializeToNode(item, item.GetType(), GymwireJson.Options)!.AsObject();
                    json["sequence"] = sequence;
                    items.Add(json);
                }
                next = sequence;
            }
            if (events.Count < take)
            {
                break;
            }
        }
        return (items, next);
    }

    private static string? KeyOf(string data, string key)
    {
        try
        {
            using var doc = JsonDocument.Parse(data);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty(key, out var value) && value.ValueKind == JsonValueKind.String
                ? value.GetString()
                : null;
        }
        catch (JsonException)
        {
            // Data changed by hand: the event has no item, as one whose record is gone.
            return null;
        }
    }

    private static List<Guid> ParseIds(List<string> keys) => [.. keys.Select(k => Guid.TryParse(k, out var id) ? id : Guid.Empty).Where(id => id != Guid.Empty)];
}
