namespace Gymwire.Features.Classes;

/// <summary>A recurring class on the weekly schedule.</summary>
public sealed class ClassSchedule : IGymRow
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    public required string Title { get; set; }
    public required string Discipline { get; set; }
    /// <summary>0 = Sunday … 6 = Saturday.</summary>
    public int DayOfWeek { get; set; }
    public TimeOnly StartTime { get; set; }
    public int DurationMins { get; set; }
    public DateTime CreatedAt { get; set; }
}
