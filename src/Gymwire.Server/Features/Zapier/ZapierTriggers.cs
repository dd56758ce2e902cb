using System.Security.Claims;
using Gymwire.Data;
using Gymwire.Infrastructure;
using Gymwire.Infrastructure.Auth;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Features.Zapier;

// The documented trigger items: exactly these fields, in this order.
public sealed record NewMemberItem(Guid Id, string UserId, string Role, DateTime JoinedAt);
public sealed record NewPaymentItem(Guid Id, string UserId, int AmountCents, string Status, DateTime CreatedAt);
public sealed record NewSessionItem(Guid Id, string UserId, string SessionType, DateOnly Date, int DurationMins);
public sealed record NewCheckinItem(Guid Id, string UserId, Guid? ClassScheduleId, string Status);

/// <summary>
/// Zapier polling triggers: the 20 most recent items of the caller's gym, newest first, as a bare array.
/// Ties on the timestamp are broken by id, so the order is stable and Zapier's dedupe by <c>id</c> holds.
/// Each query is a range scan of a (gym_id, timestamp, id) index: its cost does not grow with the table.
/// Polls are frequent and always the same four shapes, so the queries are compiled once: per request EF then
/// neither rebuilds the LINQ expression nor looks it up in its query cache. Answers are never cached: a poll
/// sees every committed write.
/// </summary>
public static class ZapierTriggers
{
    public const int Limit = 20;
    public static readonly string[] Types = ["new_member", "new_payment", "new_session", "new_checkin"];

    private static readonly PerProvider<Func<GymwireDbContext, Guid, IAsyncEnumerable<NewMemberItem>>> NewMembers = new(() =>
        EF.CompileAsyncQuery((GymwireDbContext db, Guid gymId) => db.Members.AsNoTracking().Where(m => m.GymId == gymId)
            .OrderByDescending(m => m.JoinedAt).ThenByDescending(m => m.Id).Take(Limit)
            .Select(m => new NewMemberItem(m.Id, m.UserId, m.Role, m.JoinedAt))));

    private static readonly PerProvider<Func<GymwireDbContext, Guid, IAsyncEnumerable<NewPaymentItem>>> NewPayments = new(() =>
        EF.CompileAsyncQuery((GymwireDbContext db, Guid gymId) => db.Payments.AsNoTracking().Where(p => p.GymId == gymId)
            .OrderByDescending(p => p.CreatedAt).ThenByDescending(p => p.Id).Take(Limit)
            .Select(p => new NewPaymentItem(p.Id, p.UserId, p.AmountCents, p.Status, p.CreatedAt))));

    private static readonly PerProvider<Func<GymwireDbContext, Guid, IAsyncEnumerable<NewSessionItem>>> NewSessions = new(() =>
        EF.CompileAsyncQuery((GymwireDbContext db, Guid gymId) => db.TrainingSessions.AsNoTracking().Where(s => s.GymId == gymId)
            .OrderByDescending(s => s.CreatedAt).ThenByDescending(s => s.Id).Take(Limit)
            .Select(s => new NewSessionItem(s.Id, s.UserId, s.SessionType, s.Date, s.DurationMins))));

    private static readonly PerProvider<Func<GymwireDbContext, Guid, IAsyncEnumerable<NewCheckinItem>>> NewCheckins = new(() =>
        EF.CompileAsyncQuery((GymwireDbContext db, Guid gymId) => db.Attendance.AsNoTracking().Where(a => a.GymId == gymId)
            .OrderByDescending(a => a.CheckedInAt).ThenByDescending(a => a.Id).Take(Limit)
            .Select(a => new NewCheckinItem(a.Id, a.UserId, a.ClassScheduleId, a.Status))));

    internal static async Task<Results<Ok<IReadOnlyList<object>>, BadRequest<ErrorResponse>>> Poll(
        string? type, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct)
    {
        var gymId = user.GetGymId();
        IReadOnlyList<object>? items = type switch
        {
            "new_member" => await ReadAsync(NewMembers.For(db)(db, gymId), ct),
            "new_payment" => await ReadAsync(NewPayments.For(db)(db, gymId), ct),
            "new_session" => await ReadAsync(NewSessions.For(db)(db, gymId), ct),
            "new_checkin" => await ReadAsync(NewCheckins.For(db)(db, gymId), ct),
            _ => null,
        };
        if (items is null)
        {
            return ApiErrors.BadRequest(type is null
                ? $"Missing 'type' query parameter. Valid types: {string.Join(", ", Types)}"
                : $"Unknown trigger type '{type}'. Valid types: {string.Join(", ", Types)}");
        }
        return TypedResults.Ok(items);
    }

    private static async Task<IReadOnlyList<object>> ReadAsync<T>(IAsyncEnumerable<T> query, CancellationToken ct) where T : class
    {
        var items = new List<object>(Limit);
        await foreach (var item in query.WithCancellation(ct))
        {
            items.Add(item);
        }
        return items;
    }
}
