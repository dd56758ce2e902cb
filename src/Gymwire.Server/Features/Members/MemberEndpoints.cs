using System.Security.Cryptography;

namespace Gymwire.Features.Members;

public sealed record MemberDto(Guid Id, string UserId, string Name, string? Email, string? Phone, string Role, DateTime JoinedAt, DateTime? LeftAt);

public sealed record MemberList(IReadOnlyList<MemberDto> Members);

public sealed record CreateMemberRequest(string? Name, string? Email = null, string? Phone = null, string? Role = null, string? UserId = null);

public sealed record UpdateMemberRequest(string? Name = null, string? Email = null, string? Phone = null, string? Role = null);

/// <summary>Members of the caller's gym: join (<c>member.joined</c>), update (<c>member.updated</c>), leave (<c>member.left</c>).</summary>
public static class MemberEndpoints
{
    public static IEndpointRouteBuilder MapMembers(this IEndpointRouteBuilder app)
    {
        var group = app.MapListGetCreate("/api/gym/members", "Members", List, Get, Create);
        group.MapPatch("/{id:guid}", Update).RequireAuthorization(Policies.Write).RequireRateLimiting(RateLimitPolicies.Mutations);
        group.MapDelete("/{id:guid}", Remove).RequireAuthorization(Policies.Write).RequireRateLimiting(RateLimitPolicies.Destructive);
        return app;
    }

    internal static Task<Results<Ok<MemberList>, BadRequest<ErrorResponse>>> List(
        ClaimsPrincipal user, GymwireDbContext db, int? limit, int? offset, [FromQuery(Name = "include_left")] bool? includeLeft,
        [FromQuery(Name = "user_id")] string? userId, CancellationToken ct)
    {
        IQueryable<Member> members = db.Members;
        if (userId is not null)
        {
            // Events and other records name a member by user_id: this finds its record (left or not).
            members = members.Where(m => m.UserId == userId);
        }
        else if (includeLeft != true)
        {
            members = members.Where(m => m.LeftAt == null);
        }
        return members.ListInGymAsync(user.GetGymId(), limit, offset, m => m.JoinedAt, ToDto, items => new MemberList(items), ct);
    }

    internal static Task<Results<Ok<MemberDto>, NotFound<ErrorResponse>>> Get(Guid id, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct) =>
        db.Members.GetInGymAsync(id, user.GetGymId(), Map, "Member not found", ct);

    internal static async Task<Results<Created<MemberDto>, BadRequest<ErrorResponse>, Conflict<ErrorResponse>>> Create(
        CreateMemberRequest request, ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var role = request.Role ?? MemberRoles.Member;
        var v = new RequestValidator()
            .Required(request.Name, "name")
            .MaxLength(request.Email, "email", 320).Email(request.Email, "email")
            .Phone(request.Phone, "phone")
            .OneOf(role, "role", MemberRoles.All)
            .MaxLength(request.UserId, "user_id", 100)
            .Check(request.UserId is null || IsUserId(request.UserId), "'user_id' may contain only letters, digits, '_' and '-'");
        if (v.Error is { } invalid)
        {
            return ApiErrors.BadRequest(invalid);
        }
        var gymId = user.GetGymId();
        var userId = request.UserId ?? NewUserId();
        if (await db.Members.AnyAsync(m => m.GymId == gymId && m.UserId == userId, ct))
        {
            return ApiErrors.Conflict($"A member with user_id '{userId}' already exists");
        }
        var now = clock.GetUtcNow().UtcDateTime;
        var member = new Member
        {
            Id = Guid.CreateVersion7(now),
            GymId = gymId,
            UserId = userId,
            Name = request.Name!.Trim(),
            Email = request.Email,
            Phone = request.Phone,
            Role = role,
            JoinedAt = now,
        };
        db.Members.Add(member);
        db.AddEvent(gymId, EventCatalog.MemberJoined, new { user_id = member.UserId, member_id = member.Id }, now);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException)
        {
            // Lost a race with a concurrent create of the same user_id: the unique index decided.
            db.ChangeTracker.Clear();
            if (await db.Members.AnyAsync(m => m.GymId == gymId && m.UserId == userId, ct))
            {
                return ApiErrors.Conflict($"A member with user_id '{userId}' already exists");
            }
            throw;
        }
        return TypedResults.Created($"/api/gym/members/{member.Id}", Map(member));
    }

    internal static async Task<Results<Ok<MemberDto>, BadRequest<ErrorResponse>, NotFound<ErrorResponse>>> Update(
        Guid id, UpdateMemberRequest request, ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var v = new RequestValidator()
            .Check(request.Name is null || !string.IsNullOrWhiteSpace(request.Name), "'name' cannot be empty")
            .MaxLength(request.Name, "name", 200)
            .MaxLength(request.Email, "email", 320).Email(request.Email, "email")
            .Phone(request.Phone, "phone")
            .OneOf(request.Role, "role", MemberRoles.All);
        if (v.Error is { } invalid)
        {
            return ApiErrors.BadRequest(invalid);
        }
        var gymId = user.GetGymId();
        var member = await db.Members.FindInGymAsync(id, gymId, ct);
        if (member is null)
        {
            return ApiErrors.NotFound("Member not found");
        }
        var changes = new List<string>();
        if (request.Name is not null && request.Name.Trim() != member.Name)
        {
            member.Name = request.Name.Trim();
            changes.Add("name");
        }
        if (request.Email is not null && request.Email != member.Email)
        {
            member.Email = request.Email;
            changes.Add("email");
        }
        if (request.Phone is not null && request.Phone != member.Phone)
        {
            member.Phone = request.Phone;
            changes.Add("phone");
        }
        if (request.Role is not null && request.Role != member.Role)
        {
            member.Role = request.Role;
            changes.Add("role");
        }
        if (changes.Count > 0)
        {
            db.AddEvent(gymId, EventCatalog.MemberUpdated, new { user_id = member.UserId, changes, member_id = member.Id }, clock.GetUtcNow().UtcDateTime);
            await db.SaveChangesAsync(ct);
        }
        return TypedResults.Ok(Map(member));
    }

    /// <summary>The member leaves: the record stays (history), <c>left_at</c> is set and <c>member.left</c> fires once.</summary>
    internal static async Task<Results<Ok<MemberDto>, NotFound<ErrorResponse>>> Remove(
        Guid id, ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var gymId = user.GetGymId();
        var member = await db.Members.FindInGymAsync(id, gymId, ct);
        if (member is null)
        {
            return ApiErrors.NotFound("Member not found");
        }
        if (member.LeftAt is null)
        {
            var now = clock.GetUtcNow().UtcDateTime;
            member.LeftAt = now;
            db.AddEvent(gymId, EventCatalog.MemberLeft, new { user_id = member.UserId, member_id = member.Id }, now);
            await db.SaveChangesAsync(ct);
        }
        return TypedResults.Ok(Map(member));
    }

    public static string NewUserId() => "user_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));

    private static bool IsUserId(string value) =>
        value.Length > 0 && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-');

    private static readonly System.Linq.Expressions.Expression<Func<Member, MemberDto>> ToDto =
        m => new MemberDto(m.Id, m.UserId, m.Name, m.Email, m.Phone, m.Role, m.JoinedAt, m.LeftAt);

    // The same mapping in memory, for rows already loaded.
    private static readonly Func<Member, MemberDto> Map = ToDto.Compile();
}
