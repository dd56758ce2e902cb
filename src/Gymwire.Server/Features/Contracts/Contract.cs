namespace Gymwire.Features.Contracts;

/// <summary>A membership contract a member signed.</summary>
public sealed class Contract : IGymRow
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    public required string UserId { get; set; }
    public required string Title { get; set; }
    public DateTime SignedAt { get; set; }
}
