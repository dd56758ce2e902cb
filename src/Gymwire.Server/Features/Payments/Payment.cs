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
    /// <summary>When it was paid (or failed): for a payment from Stripe, Stripe's time, which can be before Gymwire heard of it.</summary>
    public DateTime CreatedAt { get; set; }
    /// <summary>
    /// When Gymwire recorded it, set by the server: the newest-first poll orders by it, so a payment that arrives late
    /// (Stripe retrying after downtime) with an earlier <see cref="CreatedAt"/> still comes first in the next poll.
    /// </summary>
    public DateTime RecordedAt { get; set; }
    /// <summary>When it was refunded: for a refund from Stripe, Stripe's time, which can be before Gymwire heard of it.</summary>
    public DateTime? RefundedAt { get; set; }
    /// <summary>When Gymwire recorded the refund, set by the server: scheduled reports pick refunds by it, as payments by <see cref="RecordedAt"/>.</summary>
    public DateTime? RefundRecordedAt { get; set; }
}

public static class PaymentStatuses
{
    public const string Paid = "paid";
    public const string Failed = "failed";
    public const string Refunded = "refunded";
}
