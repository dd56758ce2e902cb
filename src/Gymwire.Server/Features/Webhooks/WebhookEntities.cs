using System.Security.Cryptography;

namespace Gymwire.Features.Webhooks;

/// <summary>A gym's webhook endpoint and the events it wants.</summary>
public sealed class WebhookSubscription
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    /// <summary>
    /// The API key that created the subscription, which sees and manages only the subscriptions it created; null when
    /// the owner created it. Only the owner sees and manages all of them.
    /// </summary>
    public Guid? ApiKeyId { get; set; }
    public required string Url { get; set; }
    /// <summary>What the owner calls this webhook ("Zapier: new members to Mailchimp"); optional.</summary>
    public string? Description { get; set; }
    /// <summary>Catalog names as the owner gave them (aliases kept); empty means every canonical event.</summary>
    public List<string> Events { get; set; } = [];
    public bool IsActive { get; set; } = true;
    public DateTime CreatedAt { get; set; }
    public DateTime UpdatedAt { get; set; }
    /// <summary>The signing secret, encrypted with ASP.NET Core Data Protection; never stored in plain text.</summary>
    public required string SecretProtected { get; set; }
    /// <summary>The secret before the last rotation, still signing until <see cref="PreviousSecretExpiresAt"/>.</summary>
    public string? PreviousSecretProtected { get; set; }
    public DateTime? PreviousSecretExpiresAt { get; set; }
    /// <summary>Start of the current run of failed attempts (null after any success).</summary>
    public DateTime? FailingSince { get; set; }
    /// <summary>Why Gymwire deactivated the subscription (410 Gone, failing too long, or the API key that created it was revoked); null when the owner did.</summary>
    public string? DisabledReason { get; set; }
    public DateTime? DisabledAt { get; set; }
    /// <summary>
    /// Whether the owner (a session, not an API key) made the last switch of <see cref="IsActive"/>, on or off, or asked for
    /// off on a webhook already off; a key's switch and Gymwire's own deactivations clear it. Switched off by the owner, the
    /// webhook cannot be switched on by the key that created it; switched on by the owner, the sweep of keys without
    /// <c>read</c> leaves it on.
    /// </summary>
    public bool SwitchedByOwner { get; set; }

    /// <summary>Off because the owner switched it off: the key that created it cannot switch it on (the API's <c>switched_off_by_owner</c>).</summary>
    public bool SwitchedOffByOwner => !IsActive && SwitchedByOwner;

    // The endpoint's health for the whole cluster (EndpointPolicy decides it, the attempt recorder stores it): every
    // node reads it with its claims, so a failing endpoint has one pause and one probe at a time, not one per node.

    /// <summary>Failed worker attempts in a row since the last success, counted up to <c>Webhooks:FailingEndpointThreshold</c>.</summary>
    public int ConsecutiveFailures { get; set; }
    /// <summary>Until then no node attempts the subscription's deliveries; afterwards one node at a time probes it.</summary>
    public DateTime? PausedUntil { get; set; }
    /// <summary>The last pause's length, doubled by each failed probe; null once a success ends the run of failures.</summary>
    public TimeSpan? PauseLength { get; set; }
    /// <summary>The node that won the probe of a failing endpoint holds it until then (its claim lease); the others leave the endpoint out.</summary>
    public DateTime? ProbeClaimedUntil { get; set; }

    /// <summary>
    /// When a new or redelivered delivery is first due: now, or the end of the pause while the endpoint is paused after
    /// failing, since no node attempts it before then and a due row of a paused endpoint stands in every claim's way.
    /// </summary>
    public static DateTime FirstDueAt(DateTime? pausedUntil, DateTime now) => pausedUntil is { } until && until > now ? until : now;

    /// <summary>The four health columns together, as <see cref="EndpointPolicy"/> reads and writes them.</summary>
    public EndpointHealth Health
    {
        get => new(ConsecutiveFailures, PausedUntil, PauseLength, ProbeClaimedUntil);
        set => (ConsecutiveFailures, PausedUntil, PauseLength, ProbeClaimedUntil) = (value.ConsecutiveFailures, value.PausedUntil, value.PauseLength, value.ProbeClaimedUntil);
    }
}

public static class DeliveryStatus
{
    /// <summary>Waiting for its first attempt.</summary>
    public const string Pending = "pending";
    /// <summary>An attempt failed; another is scheduled at <c>next_attempt_at</c>.</summary>
    public const string Retrying = "retrying";
    public const string Delivered = "delivered";
    /// <summary>Every scheduled attempt failed (or the subscription went away): no more attempts unless redelivered.</summary>
    public const string Undeliverable = "undeliverable";

    public static readonly string[] All = [Pending, Retrying, Delivered, Undeliverable];
}

/// <summary>One event for one subscription: the unit of delivery, retried until delivered or undeliverable.</summary>
public sealed class WebhookDelivery
{
    /// <summary>
    /// Also the <c>webhook-id</c> header: stable across retries and redeliveries, so receivers dedupe on it. A
    /// fanned-out delivery's is <see cref="IdFor"/> its event and subscription.
    /// </summary>
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    public Guid SubscriptionId { get; set; }

    /// <summary>
    /// The id of an event's delivery to a subscription, the same at every fan-out of the event, so that one rolled back
    /// after its hand-over and run again sends under the same <c>webhook-id</c>. A UUIDv8: the event id's first 64 bits,
    /// so an event's deliveries are neighbours in the primary key's index, then 62 bits of SHA-256 of the two ids.
    /// </summary>
    public static Guid IdFor(Guid eventId, Guid subscriptionId)
    {
        Span<byte> ids = stackalloc byte[32];
        eventId.TryWriteBytes(ids[..16], bigEndian: true, out _);
        subscriptionId.TryWriteBytes(ids[16..], bigEndian: true, out _);
        Span<byte> id = stackalloc byte[32];
        SHA256.HashData(ids, id);
        ids[..8].CopyTo(id);
        id[6] = (byte)(0x80 | (id[6] & 0x0F));
        id[8] = (byte)(0x80 | (id[8] & 0x3F));
        return new Guid(id[..16], bigEndian: true);
    }

    /// <summary>The outbox event; null for test sends.</summary>
    public Guid? EventId { get; set; }
    /// <summary>The name sent in <c>event</c>: the alias when the subscription named one.</summary>
    public required string Event { get; set; }
    /// <summary>
    /// The request body when it is not built from an outbox event: a test send's sample (it has no event), or a
    /// delivery fanned out before bodies were stored once per event. Null for a fanned-out delivery: its body is
    /// <see cref="WebhookPayloads.Build"/> of the event (immutable, kept as long as the delivery) under
    /// <see cref="Event"/>, the same bytes at every attempt, so a burst to 100 endpoints stores its data once, not 100 times.
    /// </summary>
    public string? Payload { get; set; }
    public bool IsTest { get; set; }
    public required string Status { get; set; }
    public int AttemptCount { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime? NextAttemptAt { get; set; }
    public DateTime? LastAttemptAt { get; set; }
    public int? LastStatusCode { get; set; }
    public string? LastError { get; set; }
    /// <summary>A worker's claim: until this instant no other worker takes the delivery.</summary>
    public DateTime? LockedUntil { get; set; }
    /// <summary>
    /// The node (<c>cluster_nodes.id</c>) holding the claim; cleared when the attempt is recorded or the claim given
    /// back. When that node is known dead its claims are released before their lease ends.
    /// </summary>
    public Guid? ClaimedBy { get; set; }
    /// <summary>The due time before the claim moved it to the lease's end (meaningful while <see cref="ClaimedBy"/> is set): a released claim is due at it again.</summary>
    public DateTime? DueBeforeClaim { get; set; }
}

/// <summary>One HTTP attempt of a delivery, whatever its outcome.</summary>
public sealed class WebhookAttempt
{
    /// <summary>The longest <see cref="Error"/> (and a delivery's last error) stored; longer ones are cut.</summary>
    public const int MaxErrorLength = 1000;

    /// <summary>The longest <see cref="ResponseHeaders"/> JSON stored.</summary>
    public const int MaxResponseHeadersLength = 4000;

    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    public Guid DeliveryId { get; set; }
    /// <summary>1 for the delivery's first attempt, counting on across retries, redeliveries and test sends.</summary>
    public int Number { get; set; }
    public DateTime AttemptedAt { get; set; }
    public int? StatusCode { get; set; }
    public int DurationMs { get; set; }
    public string? Error { get; set; }
    /// <summary>Selected response headers as a JSON object.</summary>
    public string? ResponseHeaders { get; set; }
    /// <summary>The first 64 KiB of the response body (UTF-8, lossy).</summary>
    public string? ResponseBody { get; set; }
    public bool ResponseBodyTruncated { get; set; }
    /// <summary>What started the attempt: <c>initial</c>, <c>retry</c>, <c>redeliver</c> or <c>test</c>.</summary>
    public required string Trigger { get; set; }
}
