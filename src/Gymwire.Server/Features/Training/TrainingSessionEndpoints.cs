using Gymwire.Features.Members;

namespace Gymwire.Features.Training;

public sealed record TrainingSessionDto(Guid Id, string UserId, string SessionType, DateOnly Date, int DurationMins, DateTime CreatedAt);
public sealed record TrainingSessionList(IReadOnlyList<TrainingSessionDto> Sessions);
public sealed record LogSessionRequest(string? UserId, string? SessionType, DateOnly? Date, int? DurationMins);

/// <summary>Training sessions members log (<c>session.logged</c>).</summary>
public static class TrainingSessionEndpoints
{
    private static readonly GymCollection<TrainingSession, TrainingSessionDto, TrainingSessionList> Rows = new(
        s => s.CreatedAt, s => new TrainingSessionDto(s.Id, s.UserId, s.SessionType, s.Date, s.DurationMins, s.CreatedAt),
        items => new TrainingSessionList(items), "Training session not found");

    public static IEndpointRouteBuilder MapTrainingSessions(this IEndpointRouteBuilder app)
    {
        app.MapListGetCreate("/api/gym/sessions", "Training sessions", Rows.List, Rows.Get, Log);
        return app;
    }

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
        return TypedResults.Created($"/api/gym/sessions/{session.Id}", Rows.Map(session));
    }
}
