using Gymwire.Features.Members;

namespace Gymwire.Features.Attendance;

public sealed record AttendanceDto(Guid Id, string UserId, Guid? ClassScheduleId, string Status, string Source, DateTime CheckedInAt);
public sealed record AttendanceList(IReadOnlyList<AttendanceDto> Checkins);
public sealed record CheckInRequest(string? UserId, Guid? ClassScheduleId = null, string? Status = null);

/// <summary>Check-ins (<c>attendance.checked_in</c>): kiosk and manual.</summary>
public static class AttendanceEndpoints
{
    private static readonly GymCollection<AttendanceRecord, AttendanceDto, AttendanceList> Rows = new(
        a => a.CheckedInAt, AttendanceService.ToDto, items => new AttendanceList(items), "Check-in not found");

    public static IEndpointRouteBuilder MapAttendance(this IEndpointRouteBuilder app)
    {
        app.MapListGetCreate("/api/gym/checkins", "Attendance", Rows.List, Rows.Get, CheckIn);
        return app;
    }

    internal static async Task<Results<Created<AttendanceDto>, BadRequest<ErrorResponse>, NotFound<ErrorResponse>>> CheckIn(
        CheckInRequest request, ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var status = request.Status ?? AttendanceStatuses.Approved;
        var v = new RequestValidator().Required(request.UserId, "user_id", 100).OneOf(status, "status", AttendanceStatuses.All);
        if (v.Error is { } invalid)
        {
            return ApiErrors.BadRequest(invalid);
        }
        var gymId = user.GetGymId();
        if (!await db.IsActiveMemberAsync(gymId, request.UserId!, ct))
        {
            return ApiErrors.NotFound(MemberService.NotAMember(request.UserId));
        }
        if (request.ClassScheduleId is { } classId && !await db.ClassSchedules.AnyAsync(c => c.Id == classId && c.GymId == gymId, ct))
        {
            return ApiErrors.NotFound("Class not found");
        }
        var record = AttendanceService.AddCheckIn(db, gymId, request.UserId!, request.ClassScheduleId, status, "kiosk", clock.GetUtcNow().UtcDateTime);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/api/gym/checkins/{record.Id}", AttendanceService.Map(record));
    }
}
