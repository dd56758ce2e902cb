namespace Gymwire.Features.Members;

public sealed class Member : IGymRow
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    /// <summary>The identity provider's user id (Clerk style, e.g. <c>user_xyz789</c>); unique within a gym.</summary>
    public required string UserId { get; set; }
    public required string Name { get; set; }
    public string? Email { get; set; }
    public string? Phone { get; set; }
    /// <summary><c>member</c> or <c>coach</c>.</summary>
    public required string Role { get; set; }
    public DateTime JoinedAt { get; set; }
    public DateTime? LeftAt { get; set; }
}

public static class MemberRoles
{
    public const string Member = "member";
    public const string Coach = "coach";
    public static readonly string[] All = [Member, Coach];
}
