namespace Gymwire.Features.Gyms;

/// <summary>A tenant: every other row belongs to exactly one gym.</summary>
public sealed class Gym
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public DateTime CreatedAt { get; set; }
}
