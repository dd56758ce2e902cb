namespace Gymwire.Features.Payments;

/// <summary>A payment (invoice). Amounts are integer cents.</summary>
public sealed class Payment : IGymRow
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    public required string UserId { get; set; }
    public Guid? PlanId { get; set; }
    public int AmountCents { get; set; }
    public required string Currency { get; set; }
    /// <summary><c>paid</c>, <c>failed</c> or <c>refunded</c>.</summary>
    public required string Status { get; set; }
    public string? FailureReason { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime? RefundedAt { get; set; }
}

public static class PaymentStatuses
{
    public const string Paid = "paid";
    public const string Failed = "failed";
    public const string Refunded = "refunded";
}
