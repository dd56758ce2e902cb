namespace Gymwire.Features.Members;

/// <summary>Member lookups the other features share.</summary>
public static class MemberService
{
    /// <summary>Whether <paramref name="userId"/> is a current (not departed) member of the gym.</summary>
    public static Task<bool> IsActiveMemberAsync(this GymwireDbContext db, Guid gymId, string userId, CancellationToken ct) =>
        db.Members.AnyAsync(m => m.GymId == gymId && m.UserId == userId && m.LeftAt == null, ct);

    /// <summary>The 404 message for a request whose <c>user_id</c> names no member of the gym.</summary>
    public static string NotAMember(string? userId) => $"No member with user_id '{userId}' in this gym";
}
