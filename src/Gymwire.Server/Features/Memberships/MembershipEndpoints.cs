using Gymwire.Features.Members;

namespace Gymwire.Features.Memberships;

public sealed record PlanDto(Guid Id, string Name, int PriceCents, string Interval, DateTime CreatedAt);
public sealed record PlanList(IReadOnlyList<PlanDto> Plans);
public sealed record CreatePlanRequest(string? Name, int? PriceCents, string? Interval = null);

public sealed record MembershipDto(Guid Id, string UserId, Guid PlanId, string Status, DateTime StartedAt, DateTime? CanceledAt);
public sealed record MembershipList(IReadOnlyList<MembershipDto> Memberships);
public sealed record CreateMembershipRequest(string? UserId, Guid? PlanId);

/// <summary>Membership plans, and memberships that activate (<c>membership.activated</c>) and cancel (<c>membership.canceled</c>).</summary>
public static class MembershipEndpoints
{
    private static readonly GymCollection<Membership, MembershipDto, MembershipList> Rows = new(
        m => m.StartedAt, m => new MembershipDto(m.Id, m.UserId, m.PlanId, m.Status, m.StartedAt, m.CanceledAt),
        items => new MembershipList(items), "Membership not found");

    public static IEndpointRouteBuilder MapMemberships(this IEndpointRouteBuilder app)
    {
        app.MapListGetCreate("/api/gym/plans", "Memberships", ListPlans, GetPlan, CreatePlan);

        var memberships = app.MapListGetCreate("/api/gym/memberships", "Memberships", Rows.List, Rows.Get, Activate);
        memberships.MapPost("/{id:guid}/cancel", Cancel).RequireAuthorization(Policies.Write).RequireRateLimiting(RateLimitPolicies.Destructive);
        return app;
    }

    internal static async Task<Ok<PlanList>> ListPlans(ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct)
    {
        var gymId = user.GetGymId();
        var plans = await db.MembershipPlans.AsNoTracking().Where(p => p.GymId == gymId)
            .Select(p => new PlanDto(p.Id, p.Name, p.PriceCents, p.Interval, p.CreatedAt)).ToListAsync(ct);
        // Sorted here, not by the database: PostgreSQL orders text by the database's collation and SQLite by bytes, and
        // the list must read the same on both. A gym has a handful of plans.
        return TypedResults.Ok(new PlanList([.. plans.OrderBy(p => p.Name, StringComparer.OrdinalIgnoreCase).ThenBy(p => p.Name, StringComparer.Ordinal).ThenBy(p => p.Id)]));
    }

    internal static Task<Results<Ok<PlanDto>, NotFound<ErrorResponse>>> GetPlan(Guid id, ClaimsPrincipal user, GymwireDbContext db, CancellationToken ct) =>
        db.MembershipPlans.GetInGymAsync(id, user.GetGymId(), MapPlan, "Plan not found", ct);

    internal static async Task<Results<Created<PlanDto>, BadRequest<ErrorResponse>>> CreatePlan(
        CreatePlanRequest request, ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var interval = request.Interval ?? "month";
        var v = new RequestValidator()
            .Required(request.Name, "name")
            .Check(request.PriceCents is not null, "'price_cents' is required")
            .Range(request.PriceCents, "price_cents", 0, 100_000_000)
            .OneOf(interval, "interval", PlanIntervals.All);
        if (v.Error is { } invalid)
        {
            return ApiErrors.BadRequest(invalid);
        }
        var now = clock.GetUtcNow().UtcDateTime;
        var plan = new MembershipPlan
        {
            Id = Guid.CreateVersion7(now), GymId = user.GetGymId(), Name = request.Name!.Trim(),
            PriceCents = request.PriceCents!.Value, Interval = interval, CreatedAt = now,
        };
        db.MembershipPlans.Add(plan);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/api/gym/plans/{plan.Id}", MapPlan(plan));
    }

    internal static async Task<Results<Created<MembershipDto>, BadRequest<ErrorResponse>, NotFound<ErrorResponse>>> Activate(
        CreateMembershipRequest request, ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var v = new RequestValidator().Required(request.UserId, "user_id", 100).Check(request.PlanId is not null, "'plan_id' is required");
        if (v.Error is { } invalid)
        {
            return ApiErrors.BadRequest(invalid);
        }
        var gymId = user.GetGymId();
        if (!await db.IsActiveMemberAsync(gymId, request.UserId!, ct))
        {
            return ApiErrors.NotFound(MemberService.NotAMember(request.UserId));
        }
        if (!await db.MembershipPlans.AnyAsync(p => p.Id == request.PlanId && p.GymId == gymId, ct))
        {
            return ApiErrors.NotFound("Plan not found");
        }
        var now = clock.GetUtcNow().UtcDateTime;
        var membership = MembershipService.ActivateMembership(db, gymId, request.UserId!, request.PlanId!.Value, now);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/api/gym/memberships/{membership.Id}", Rows.Map(membership));
    }

    internal static async Task<Results<Ok<MembershipDto>, NotFound<ErrorResponse>, Conflict<ErrorResponse>>> Cancel(
        Guid id, ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        var membership = await db.Memberships.FindInGymAsync(id, user.GetGymId(), ct);
        if (membership is null)
        {
            return ApiErrors.NotFound("Membership not found");
        }
        if (membership.Status == MembershipStatuses.Canceled)
        {
            return ApiErrors.Conflict("Membership is already canceled");
        }
        MembershipService.CancelMembership(db, membership, clock.GetUtcNow().UtcDateTime);
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(Rows.Map(membership));
    }

    private static PlanDto MapPlan(MembershipPlan p) => new(p.Id, p.Name, p.PriceCents, p.Interval, p.CreatedAt);
}
