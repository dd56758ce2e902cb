namespace Gymwire.Features.Training;

/// <summary>A training session a member logged (gi, no-gi, open mat…).</summary>
public sealed class TrainingSession : IGymRow
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    public required string UserId { get; set; }
    public required string SessionType { get; set; }
    public DateOnly Date { get; set; }
    public int DurationMins { get; set; }
    public DateTime CreatedAt { get; set; }
}
