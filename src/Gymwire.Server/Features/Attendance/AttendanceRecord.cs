namespace Gymwire.Features.Attendance;

/// <summary>A check-in (kiosk, manual or through the API).</summary>
public sealed class AttendanceRecord : IGymRow
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    public required string UserId { get; set; }
    public Guid? ClassScheduleId { get; set; }
    /// <summary><c>approved</c> or <c>pending</c>.</summary>
    public required string Status { get; set; }
    /// <summary>Where it came from: <c>kiosk</c>, <c>manual</c> or <c>api</c>.</summary>
    public required string Source { get; set; }
    public DateTime CheckedInAt { get; set; }
}

public static class AttendanceStatuses
{
    public const string Approved = "approved";
    public const string Pending = "pending";
    public static readonly string[] All = [Approved, Pending];
}
