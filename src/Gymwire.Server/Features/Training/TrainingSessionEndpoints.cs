using System.Linq.Expressions;
using Gymwire.Features.Members;

namespace Gymwire.Features.Training;

public sealed record TrainingSessionDto(Guid Id, string UserId, string SessionType, DateOnly Date, int DurationMins, DateTime CreatedAt);
public sealed record TrainingSessionList(IReadOnlyList<TrainingSessionDto> Sessions);
public sealed record LogSessionRequest(string? UserId, string? SessionType, DateOnly? Date, int? DurationMins);

/// <summary>Training sessions members log (<c>session.logged</c>).</summary>
public static class TrainingSessionEndpoints
{
    public static IEndpointRouteBuilder MapTrainingSessions(this IEndpointRouteBuilder app)
    {
        app.MapListGetCreate("/api/gym/sessions", "Training sessions", List, Get, Log);
        return app;
    }

    internal static Task<Results<Ok<TrainingSessionList>, BadRequest<ErrorResponse>>> List(
        ClaimsPrincipal user, GymwireDbContext db, int? limit, int? offset, CancellationToken ct) =>
        db.TrainingSessions.ListInGymAsync(user.GetGymId(), limit, offset, s => s.CreatedAt, ToDto, items => new TrainingSessionList(items), ct);

    internal static Task<Results<Ok<TrainingSessionDto>, NotFound<ErrorResponse>>> Get(Guid id, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct) =>
        db.TrainingSessions.GetInGymAsync(id, user.GetGymId(), Map, "Training session not found", ct);

    internal static async Task<Results<Created<TrainingSessionDto>, BadRequest<ErrorResponse>, NotFound<ErrorResponse>>> Log(
        LogSessionRequest request, ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var v = new RequestValidator()
            .Required(request.UserId, "user_id", 100)
            .Required(request.SessionType, "session_type", 50)
            .Check(request.Date is not null, "'date' is required (YYYY-MM-DD)")
            .Check(request.DurationMins is not null, "'duration_mins' is required")
            .Range(request.DurationMins, "duration_mins", 1, 24 * 60);
        if (v.Error is { } invalid)
        {
            return ApiErrors.BadRequest(invalid);
        }
        var gymId = user.GetGymId();
        if (!await db.IsActiveMemberAsync(gymId, request.UserId!, ct))
        {
            return ApiErrors.NotFound(MemberService.NotAMember(request.UserId));
        }
        var now = clock.GetUtcNow().UtcDateTime;
        var session = new TrainingSession
        {
            Id = Guid.CreateVersion7(now), GymId = gymId, UserId = request.UserId!, SessionType = request.SessionType!.Trim(),
            Date = request.Date!.Value, DurationMins = request.DurationMins!.Value, CreatedAt = now,
        };
        TrainingSessionService.AddSession(db, session);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/api/gym/sessions/{session.Id}", Map(session));
    }

    private static readonly Expression<Func<TrainingSession, TrainingSessionDto>> ToDto =
        s => new TrainingSessionDto(s.Id, s.UserId, s.SessionType, s.Date, s.DurationMins, s.CreatedAt);

    // The same mapping in memory, for rows already loaded.
    private static readonly Func<TrainingSession, TrainingSessionDto> Map = ToDto.Compile();
}
