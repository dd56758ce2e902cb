namespace Gymwire.Features.Gyms;

/// <summary>A tenant: every other row belongs to exactly one gym.</summary>
public sealed class Gym
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public DateTime CreatedAt { get; set; }
    /// <summary>An IANA id (<see cref="GymTimeZones"/>): what the dashboard shows times in and where exports cut days.</summary>
    public string TimeZone { get; set; } = GymTimeZones.Utc;
}
