using Microsoft.AspNetCore.Identity;

namespace Gymwire.Features.Gyms;

/// <summary>A gym owner's login (ASP.NET Core Identity user). An owner manages exactly one gym.</summary>
public sealed class Owner : IdentityUser<Guid>
{
    public Guid GymId { get; set; }
    public DateTime CreatedAt { get; set; }
}

/// <summary>
/// A bearer session for the API, created by <c>POST /api/auth/login</c>. Only the SHA-256 of the
/// token is stored, so a database leak does not leak sessions; logout revokes the row.
/// </summary>
public sealed class OwnerSession
{
    public Guid Id { get; set; }
    public Guid OwnerId { get; set; }
    public Guid GymId { get; set; }
    public required byte[] TokenHash { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime ExpiresAt { get; set; }
    public DateTime? RevokedAt { get; set; }

    /// <summary>
    /// The owner's security stamp when the session began: the session is valid only while the owner's stamp still equals
    /// it, so the UPDATE that changes a password (and rotates the stamp) ends every session, even one saved a moment later.
    /// </summary>
    public string? SecurityStamp { get; set; }
}
