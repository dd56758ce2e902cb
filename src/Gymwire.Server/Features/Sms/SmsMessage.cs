namespace Gymwire.Features.Sms;

/// <summary>An outbound SMS. Queued by the <c>send_sms</c> action; the SMS connector sends it.</summary>
public sealed class SmsMessage : IGymRow
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    public required string Phone { get; set; }
    public required string Message { get; set; }
    /// <summary>
    /// <c>queued</c>, <c>sending</c>, <c>sent</c> or <c>failed</c>; after <c>sent</c>, <c>delivered</c> or
    /// <c>undelivered</c> when the provider reports what became of it (Twilio's status callback).
    /// </summary>
    public required string Status { get; set; }
    public string? ProviderMessageId { get; set; }
    public string? Error { get; set; }
    public int Attempts { get; set; }
    /// <summary>When a queued message may be tried again after a transient failure; null means now.</summary>
    public DateTime? NextAttemptAt { get; set; }
    /// <summary>While <c>sending</c>: until when the claiming sender owns it. Past that, the sender died mid-send.</summary>
    public DateTime? ClaimedUntil { get; set; }
    public DateTime? LastAttemptAt { get; set; }
    /// <summary>
    /// When the first attempt began that may have reached the provider without Gymwire learning its outcome (a timeout,
    /// a 5xx, an unexpected exception, a send interrupted by a stop); null when none did. Twilio has no idempotency key,
    /// so before sending again its provider looks for a message it accepted since then.
    /// </summary>
    public DateTime? UncertainSince { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime? SentAt { get; set; }
}

public static class SmsStatuses
{
    public const string Queued = "queued";
    public const string Sending = "sending";
    public const string Sent = "sent";
    public const string Failed = "failed";
    /// <summary>The provider reports the message reached the phone.</summary>
    public const string Delivered = "delivered";
    /// <summary>The provider accepted the message but reports it did not reach the phone (its error code in the error).</summary>
    public const string Undelivered = "undelivered";

    public static readonly string[] All = [Queued, Sending, Sent, Failed, Delivered, Undelivered];
}
