namespace Gymwire.Features.Memberships;

/// <summary>Activating and canceling memberships: used by the API, the Stripe connector and the demo.</summary>
public static class MembershipService
{
    /// <summary>
    /// Adds an active membership (started at <paramref name="startedAt"/>, Stripe's time for one from Stripe, else now)
    /// and its <c>membership.activated</c> event to the unit of work.
    /// </summary>
    public static Membership ActivateMembership(GymwireDbContext db, Guid gymId, string userId, Guid planId, DateTime now, DateTime? startedAt = null)
    {
        var membership = new Membership
        {
            Id = Guid.CreateVersion7(now), GymId = gymId, UserId = userId, PlanId = planId,
            Status = MembershipStatuses.Active, StartedAt = startedAt ?? now,
        };
        db.Memberships.Add(membership);
        db.AddEvent(gymId, EventCatalog.MembershipActivated,
            new { user_id = userId, membership_id = membership.Id, plan_id = planId }, now);
        return membership;
    }

    /// <summary>
    /// Cancels (at <paramref name="canceledAt"/>, Stripe's time for one from Stripe, else now) and adds
    /// <c>membership.canceled</c> to the unit of work.
    /// </summary>
    public static void CancelMembership(GymwireDbContext db, Membership membership, DateTime now, DateTime? canceledAt = null)
    {
        membership.Status = MembershipStatuses.Canceled;
        membership.CanceledAt = canceledAt ?? now;
        db.AddEvent(membership.GymId, EventCatalog.MembershipCanceled,
            new { user_id = membership.UserId, membership_id = membership.Id, plan_id = membership.PlanId }, now);
    }
}
