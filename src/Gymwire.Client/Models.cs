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
}

public sealed record CreatedWebhook(string Id, string Url, IReadOnlyList<string> Events, bool IsActive, DateTimeOffset CreatedAt, string Secret)
{
    /// <inheritdoc cref="Webhook.SwitchedOffByOwner"/>
    public bool SwitchedOffByOwner { get; init; }
}
public sealed record CreateWebhook(string Url, IReadOnlyList<string>? Events = null);
public sealed record UpdateWebhook(string? Url = null, IReadOnlyList<string>? Events = null, bool? IsActive = null);

public sealed record KeyList(IReadOnlyList<ApiKey> Keys);
public sealed record WebhookList(IReadOnlyList<Webhook> Webhooks);
public sealed record ErrorBody(string? Error);
