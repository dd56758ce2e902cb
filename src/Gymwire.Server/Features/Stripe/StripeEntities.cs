namespace Gymwire.Features.Stripe;

/// <summary>A gym's Stripe connection: the webhook endpoint's signing secret (encrypted) and what happened last.</summary>
public sealed class StripeAccount
{
    public Guid GymId { get; set; }
    /// <summary>The <c>whsec_…</c> secret, encrypted with ASP.NET Core Data Protection; never stored or logged in plain text.</summary>
    public required string ProtectedEndpointSecret { get; set; }
    /// <summary>The secret's last four characters, so an owner can tell which one is configured.</summary>
    public required string SecretHint { get; set; }
    public DateTime ConfiguredAt { get; set; }
    public DateTime? LastEventAt { get; set; }
    public DateTime? LastFailureAt { get; set; }
    public string? LastFailure { get; set; }
}

/// <summary>One verified Stripe event, as received: unique per gym on Stripe's id, which makes Stripe's retries no-ops.</summary>
public sealed class StripeEventRecord : IGymRow
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    public required string StripeEventId { get; set; }
    public required string Type { get; set; }
    public DateTime ReceivedAt { get; set; }
    /// <summary>One of <see cref="StripeOutcomes"/>.</summary>
    public required string Outcome { get; set; }
    /// <summary>What Gymwire did or why it could not, in words an owner understands.</summary>
    public string? Detail { get; set; }
    public string? CustomerId { get; set; }
    public string? Email { get; set; }
    /// <summary>The verified event body, kept so that an unmatched event can be inspected and nothing is lost.</summary>
    public required string Payload { get; set; }
}

/// <summary>
/// Remembers which Gymwire record a Stripe object became: an invoice or payment intent → a payment, a subscription →
/// a membership, a customer → a member's <c>user_id</c>, a price → a plan; and which invoice a payment intent or
/// charge paid (kind <c>invoice</c>, the target a Stripe invoice id).
/// </summary>
public sealed class StripeLink
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    public required string StripeId { get; set; }
    public required string Kind { get; set; }
    public required string TargetId { get; set; }
    public DateTime CreatedAt { get; set; }
}

public static class StripeOutcomes
{
    public const string Recorded = "recorded";
    public const string AlreadyRecorded = "already_recorded";
    public const string IgnoredUnknownType = "ignored_unknown_type";
    public const string Ignored = "ignored";
    public const string UnknownMember = "unknown_member";
    public const string UnknownPayment = "unknown_payment";
    public const string UnknownSubscription = "unknown_subscription";

    public static readonly string[] All = [Recorded, AlreadyRecorded, IgnoredUnknownType, Ignored, UnknownMember, UnknownPayment, UnknownSubscription];
}

public static class StripeLinkKinds
{
    public const string Payment = "payment";
    public const string Membership = "membership";
    public const string Customer = "customer";
    public const string Plan = "plan";
    /// <summary>
    /// A payment intent or charge → the invoice it paid, from <c>invoice_payment.paid</c>: from API version
    /// 2025-03-31.basil neither the invoice nor the charge names the other, and a refund names only the charge.
    /// </summary>
    public const string Invoice = "invoice";
}
