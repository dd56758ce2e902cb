namespace Gymwire.Features.Memberships;

public sealed class MembershipPlan : IGymRow
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    public required string Name { get; set; }
    public int PriceCents { get; set; }
    /// <summary><c>month</c>, <c>year</c> or <c>once</c>.</summary>
    public required string Interval { get; set; }
    public DateTime CreatedAt { get; set; }
}

public sealed class Membership : IGymRow
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    public required string UserId { get; set; }
    public Guid PlanId { get; set; }
    /// <summary><c>active</c> or <c>canceled</c>.</summary>
    public required string Status { get; set; }
    public DateTime StartedAt { get; set; }
    public DateTime? CanceledAt { get; set; }
}

public static class MembershipStatuses
{
    public const string Active = "active";
    public const string Canceled = "canceled";
}

public static class PlanIntervals
{
    public static readonly string[] All = ["month", "year", "once"];
}
