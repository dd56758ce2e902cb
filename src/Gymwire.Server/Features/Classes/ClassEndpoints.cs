namespace Gymwire.Features.Classes;

public sealed record ClassDto(Guid Id, string Title, string Discipline, int DayOfWeek, string StartTime, int DurationMins, DateTime CreatedAt);
public sealed record ClassList(IReadOnlyList<ClassDto> Classes);
public sealed record ScheduleClassRequest(string? Title, string? Discipline, int? DayOfWeek, string? StartTime, int? DurationMins = null);

/// <summary>The weekly class schedule (<c>class.scheduled</c>).</summary>
public static class ClassEndpoints
{
    public static IEndpointRouteBuilder MapClasses(this IEndpointRouteBuilder app)
    {
        app.MapListGetCreate("/api/gym/classes", "Classes", List, Get, Schedule);
        return app;
    }

    internal static async Task<Ok<ClassList>> List(ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct)
    {
        var gymId = user.GetGymId();
        var items = await db.ClassSchedules.AsNoTracking().Where(c => c.GymId == gymId)
            .OrderBy(c => c.DayOfWeek).ThenBy(c => c.StartTime).ThenBy(c => c.Id).ToListAsync(ct);
        return TypedResults.Ok(new ClassList(items.Select(Map).ToList()));
    }

    internal static Task<Results<Ok<ClassDto>, NotFound<ErrorResponse>>> Get(Guid id, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct) =>
        db.ClassSchedules.GetInGymAsync(id, user.GetGymId(), Map, "Class not found", ct);

    internal static async Task<Results<Created<ClassDto>, BadRequest<ErrorResponse>>> Schedule(
        ScheduleClassRequest request, ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var startOk = TimeOnly.TryParseExact(request.StartTime ?? "", "HH:mm", CultureInfo.InvariantCulture, DateTimeStyles.None, out var start);
        var v = new RequestValidator()
            .Required(request.Title, "title")
            .Required(request.Discipline, "discipline", 50)
            .Check(request.DayOfWeek is not null, "'day_of_week' is required (0 = Sunday … 6 = Saturday)")
            .Range(request.DayOfWeek, "day_of_week", 0, 6)
            .Check(startOk, "'start_time' is required as HH:MM (24-hour)")
            .Range(request.DurationMins, "duration_mins", 1, 24 * 60);
        if (v.Error is { } invalid)
        {
            return ApiErrors.BadRequest(invalid);
        }
        var now = clock.GetUtcNow().UtcDateTime;
        var schedule = new ClassSchedule
        {
            Id = Guid.CreateVersion7(now), GymId = user.GetGymId(), Title = request.Title!.Trim(), Discipline = request.Discipline!.Trim(),
            DayOfWeek = request.DayOfWeek!.Value, StartTime = start, DurationMins = request.DurationMins ?? 60, CreatedAt = now,
        };
        ClassService.AddClass(db, schedule);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/api/gym/classes/{schedule.Id}", Map(schedule));
    }

    private static ClassDto Map(ClassSchedule c) =>
        new(c.Id, c.Title, c.Discipline, c.DayOfWeek, ClassService.FormatTime(c.StartTime), c.DurationMins, c.CreatedAt);
}
