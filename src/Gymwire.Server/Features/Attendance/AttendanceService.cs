using System.Linq.Expressions;

namespace Gymwire.Features.Attendance;

/// <summary>Check-ins: used by the API, the Zapier <c>log_attendance</c> action and the demo.</summary>
public static class AttendanceService
{
    /// <summary>Adds a check-in and its <c>attendance.checked_in</c> event to the unit of work.</summary>
    public static AttendanceRecord AddCheckIn(GymwireDbContext db, Guid gymId, string userId, Guid? classScheduleId, string status, string source, DateTime now)
    {
        var record = new AttendanceRecord
        {
            Id = Guid.CreateVersion7(now), GymId = gymId, UserId = userId, ClassScheduleId = classScheduleId,
            Status = status, Source = source, CheckedInAt = now,
        };
        db.Attendance.Add(record);
        db.AddEvent(gymId, EventCatalog.AttendanceCheckedIn, new
        {
            user_id = userId, attendance_id = record.Id, status, class_schedule_id = classScheduleId, source,
        }, now);
        return record;
    }

    public static readonly Expression<Func<AttendanceRecord, AttendanceDto>> ToDto =
        a => new AttendanceDto(a.Id, a.UserId, a.ClassScheduleId, a.Status, a.Source, a.CheckedInAt);

    // The same mapping in memory, for rows already loaded.
    public static readonly Func<AttendanceRecord, AttendanceDto> Map = ToDto.Compile();
}
