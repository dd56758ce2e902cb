using System.Text.Json.Serialization;

namespace Gymwire.Features.ApiKeys;

/// <summary>An API key as listed: never the key itself.</summary>
public sealed record ApiKeyDto(Guid Id, string Name, string KeyPrefix, string[] Scopes, DateTime? LastUsed, bool IsActive, DateTime CreatedAt, DateTime? ExpiresAt)
{
    /// <summary>
    /// For the dashboard, which tells a revoked key (nothing left to do) from an expired one (the owner may still revoke
    /// it). Not in the API's JSON, whose clients already tell them apart by <c>expires_at</c>.
    /// </summary>
    [JsonIgnore]
    public bool IsRevoked { get; init; }

    public static ApiKeyDto From(ApiKey k, DateTime now) =>
        new(k.Id, k.Name, k.KeyPrefix, k.ScopeList, k.LastUsedAt, k.IsActiveAt(now), k.CreatedAt, k.ExpiresAt) { IsRevoked = k.RevokedAt is not null };
}

/// <summary>The creation response: the listed fields plus the full <c>key</c>, returned this once.</summary>
public sealed record CreatedApiKeyDto(Guid Id, string Name, string KeyPrefix, string[] Scopes, DateTime? LastUsed, bool IsActive, DateTime CreatedAt, DateTime? ExpiresAt, string Key);

/// <summary>Creating and revoking keys: shared by the API, the dashboard and the command line.</summary>
public sealed class ApiKeyService(GymwireDbContext db, TimeProvider clock, ApiKeyCache cache, DeliveryMetrics deliveryMetrics)
{
    public const string DefaultName = "Default";

    public async Task<(CreatedApiKeyDto? Key, string? Error)> CreateAsync(Guid gymId, string? name, IReadOnlyList<string?>? scopes, DateTime? expiresAt, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var requested = scopes ?? [Infrastructure.Auth.Scopes.Read];
        var v = new RequestValidator()
            .Check(name is null || !string.IsNullOrWhiteSpace(name), "'name' cannot be empty")
            .MaxLength(name, "name", 100)
            .Check(requested.Count > 0, "'scopes' must name at least one of: read, write")
            .Check(requested.All(s => s is not null && Infrastructure.Auth.Scopes.All.Contains(s)), "'scopes' may contain only: read, write")
            .Check(expiresAt is null || expiresAt > now, "'expires_at' must be in the future");
        if (v.Error is { } error)
        {
            return (null, error);
        }
        if (!await db.Gyms.AnyAsync(g => g.Id == gymId, ct))
        {
            return (null, "Gym not found");
        }
        var plain = ApiKeyFormat.Generate();
        var key = new ApiKey
        {
            Id = Guid.CreateVersion7(now),
            GymId = gymId,
            Name = name?.Trim() ?? DefaultName,
            KeyPrefix = ApiKeyFormat.DisplayPrefix(plain),
            KeyHash = Secrets.Sha256(plain),
            // Stored in canonical order so equal scope sets compare equal.
            Scopes = string.Join(',', Infrastructure.Auth.Scopes.All.Where(requested.Contains)),
            CreatedAt = now,
            ExpiresAt = expiresAt,
        };
        db.ApiKeys.Add(key);
        await db.SaveChangesAsync(ct);
        return (new CreatedApiKeyDto(key.Id, key.Name, key.KeyPrefix, key.ScopeList, null, true, key.CreatedAt, key.ExpiresAt, plain), null);
    }

    /// <summary>
    /// Revokes a key of the gym (idempotent) and deactivates the webhook subscriptions it created. Null when the gym
    /// has no such key. The key stops working at once
    /// on this node and, on PostgreSQL, on every node that listens (see <see cref="ApiKeyRevocations"/>).
    /// </summary>
    public async Task<ApiKeyDto?> RevokeAsync(Guid gymId, Guid keyId, CancellationToken ct)
    {
        var key = await db.ApiKeys.FirstOrDefaultAsync(k => k.Id == keyId && k.GymId == gymId, ct);
        if (key is null)
        {
            return null;
        }
        var now = clock.GetUtcNow().UtcDateTime;
        if (key.RevokedAt is null)
        {
            key.RevokedAt = now;
            // The notification is sent by the commit itself, so other nodes never hear of a revocation that rolled back.
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            await db.SaveChangesAsync(ct);
            // An expired key's webhooks are what its expiry would deactivate: the owner took over any changed since, and
            // the expiry sweep skips revoked keys, so the ones it has not reached yet must end here.
            var ended = key.ExpiresAt is { } expiredAt && expiredAt <= now
                ? await WebhookKeyRevocation.DeactivateExpiredAsync(db, key.GymId, key.Id, key.Name, key.KeyPrefix, expiredAt, now, ct)
                : await WebhookKeyRevocation.DeactivateOwnedAsync(db, key.GymId, key.Id, key.Name, key.KeyPrefix, now, ct);
            await ApiKeyRevocations.NotifyAsync(db, key.Id, ct);
            await transaction.CommitAsync(ct);
            // No owner notice: the owner revoked the key, and the webhooks it created show why they are off.
            deliveryMetrics.RecordUndeliverable(ended.Ended);
        }
        // Evicted even when already revoked: a cached entry must never outlive the answer given here.
        cache.Evict(key.Id);
        return ApiKeyDto.From(key, now);
    }

    public async Task<List<ApiKeyDto>> ListAsync(Guid gymId, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var keys = await db.ApiKeys.AsNoTracking().Where(k => k.GymId == gymId)
            .OrderByDescending(k => k.CreatedAt).ThenByDescending(k => k.Id).ToListAsync(ct);
        return keys.Select(k => ApiKeyDto.From(k, now)).ToList();
    }

    public async Task<ApiKeyDto?> GetAsync(Guid gymId, Guid keyId, CancellationToken ct)
    {
        var key = await db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.Id == keyId && k.GymId == gymId, ct);
        return key is null ? null : ApiKeyDto.From(key, clock.GetUtcNow().UtcDateTime);
    }
}

internal static class ScopeNames
{
    public static bool Contains(this IReadOnlyList<string?> scopes, string scope) => scopes.Any(s => s == scope);
}
