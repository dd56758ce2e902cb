namespace Gymwire.Client;

#pragma warning disable CS1591 // The records are wire fields by their C# names; the README names those that are Gymwire's, not the contract's.

public sealed record NewMember(Guid Id, string UserId, string Role, DateTimeOffset JoinedAt);
public sealed record NewPayment(Guid Id, string UserId, int AmountCents, string Status, DateTimeOffset CreatedAt);
public sealed record NewSession(Guid Id, string UserId, string SessionType, DateOnly Date, int DurationMins);
public sealed record NewCheckin(Guid Id, string UserId, Guid? ClassScheduleId, string Status);

public sealed record CreateLead(string FirstName, string? LastName = null, string? Email = null, string? Phone = null, string? Source = null);
public sealed record Lead(Guid Id, string FirstName, string? LastName, string? Email, string? Phone, string Source, DateTimeOffset CreatedAt);
public sealed record SendSms(string Phone, string Message);
public sealed record SmsMessage(Guid Id, string Phone, string Message, string Status, string? ProviderMessageId, string? Error, DateTimeOffset CreatedAt, DateTimeOffset? SentAt);
public sealed record LogAttendance(string UserId);
public sealed record Checkin(Guid Id, string UserId, Guid? ClassScheduleId, string Status, string Source, DateTimeOffset CheckedInAt);

public sealed record Me(Guid GymId, string GymName, string Actor, Guid ActorId, string? KeyName, IReadOnlyList<string> Scopes);

public sealed record ApiKey(Guid Id, string Name, string KeyPrefix, IReadOnlyList<string> Scopes, DateTimeOffset? LastUsed, bool IsActive, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt);
public sealed record CreatedApiKey(Guid Id, string Name, string KeyPrefix, IReadOnlyList<string> Scopes, DateTimeOffset? LastUsed, bool IsActive, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, string Key);
public sealed record CreateApiKey(string? Name = null, IReadOnlyList<string>? Scopes = null, DateTimeOffset? ExpiresAt = null);

public sealed record Webhook(string Id, string Url, IReadOnlyList<string> Events, bool IsActive, DateTimeOffset CreatedAt)
{
    /// <summary>
    /// Gymwire's field, not the CombatScore contract's (<c>switched_off_by_owner</c>): true while the webhook is off because
    /// the gym's owner switched it off, which only the owner can undo (an API key that sets <c>IsActive</c> gets 403).
    /// An init property, so that the record's constructor stays the contract's fields alone.
    /// </summary>
    public bool SwitchedOffByOwner { get; init; }

    /// <summary>
    /// Gymwire's field (<c>disabled_reason</c>): why Gymwire itself switched the webhook off (the receiver answered 410 Gone,
    /// it kept failing, or the API key that created it was revoked); null while it is on and when the owner or a key switched it off.
    /// </summary>
    public string? DisabledReason { get; init; }

    /// <summary>Gymwire's field (<c>disabled_at</c>): when the webhook was last switched off, by anyone; null while it is on.</summary>
    public DateTimeOffset? DisabledAt { get; init; }

    /// <summary>Gymwire's field (<c>api_key_id</c>): the <see cref="ApiKey.Id"/> of the key that created the webhook; null when the owner did.</summary>
    public Guid? ApiKeyId { get; init; }

    /// <summary>Gymwire's field (<c>description</c>): what the owner calls the webhook; null when it has no description.</summary>
    public string? Description { get; init; }
}

public sealed record CreatedWebhook(string Id, string Url, IReadOnlyList<string> Events, bool IsActive, DateTimeOffset CreatedAt, string Secret)
{
    /// <inheritdoc cref="Webhook.SwitchedOffByOwner"/>
    public bool SwitchedOffByOwner { get; init; }

    /// <inheritdoc cref="Webhook.DisabledReason"/>
    public string? DisabledReason { get; init; }

    /// <inheritdoc cref="Webhook.DisabledAt"/>
    public DateTimeOffset? DisabledAt { get; init; }

    /// <inheritdoc cref="Webhook.ApiKeyId"/>
    public Guid? ApiKeyId { get; init; }

    /// <inheritdoc cref="Webhook.Description"/>
    public string? Description { get; init; }
}
public sealed record CreateWebhook(string Url, IReadOnlyList<string>? Events = null)
{
    /// <summary>Gymwire's field (<c>description</c>): what to call the webhook, at most 200 characters; not sent when null.</summary>
    public string? Description { get; init; }
}

public sealed record UpdateWebhook(string? Url = null, IReadOnlyList<string>? Events = null, bool? IsActive = null)
{
    /// <summary>Gymwire's field (<c>description</c>): null leaves it as it is, an empty string removes it.</summary>
    public string? Description { get; init; }
}

public sealed record KeyList(IReadOnlyList<ApiKey> Keys);
public sealed record WebhookList(IReadOnlyList<Webhook> Webhooks);
public sealed record ErrorBody(string? Error);
