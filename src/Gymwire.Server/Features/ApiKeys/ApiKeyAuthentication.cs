using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Authentication;

namespace Gymwire.Features.ApiKeys;

/// <summary>
/// Authenticates <c>Authorization: Bearer cs_…</c>: the key's gym becomes the request's tenant. Keys are
/// looked up in <see cref="ApiKeyCache"/> first, so a poll normally asks the database nothing about its key.
/// </summary>
public sealed partial class ApiKeyValidator(TimeProvider clock, ApiKeyCache cache, ApiKeyUsage usage, ApiKeyMetrics metrics, ILogger<ApiKeyValidator> logger)
    : IBearerTokenValidator
{
    private static readonly PerProvider<Func<GymwireDbContext, byte[], CancellationToken, Task<CachedApiKey?>>> FindByHash = new(() =>
        EF.CompileAsyncQuery((GymwireDbContext db, byte[] hash, CancellationToken ct) => db.ApiKeys.AsNoTracking()
            .Where(k => k.KeyHash == hash)
            .Select(k => new CachedApiKey(k.Id, k.GymId, k.Name, k.Scopes, k.ExpiresAt, k.RevokedAt))
            .FirstOrDefault()));

    public string Prefix => ApiKeyFormat.Prefix;

    public async ValueTask<BearerValidation> ValidateAsync(ReadOnlyMemory<char> token, HttpContext context)
    {
        // Typos, truncations and made-up keys fail here, before the database is asked anything.
        if (!ApiKeyFormat.IsWellFormed(token.Span))
        {
            metrics.Authenticated(ApiKeyMetrics.Outcomes.Malformed);
            return BearerValidation.Fail("Invalid API key");
        }
        // On the stack (a well-formed key is ASCII of a fixed length): a cache hit allocates nothing for its lookup.
        Span<byte> hashed = stackalloc byte[SHA256.HashSizeInBytes];
        Span<byte> utf8 = stackalloc byte[ApiKeyFormat.Length];
        SHA256.HashData(utf8[..Encoding.UTF8.GetBytes(token.Span, utf8)], hashed);
        GymwireDbContext? db = null;
        var cached = cache.TryGet(hashed, out var key);
        if (!cached)
        {
            var hash = hashed.ToArray();
            var generation = cache.Generation;
            db = context.RequestServices.GetRequiredService<GymwireDbContext>();
            var found = await FindByHash.For(db)(db, hash, context.RequestAborted);
            if (found is null)
            {
                // Not cached: unknown keys cost a query each, but cannot fill memory or hide a key created later.
                metrics.Authenticated(ApiKeyMetrics.Outcomes.Unknown);
                return BearerValidation.Fail("Invalid API key");
            }
            cache.Add(hash, found, generation);
            key = found;
        }
        var now = clock.GetUtcNow().UtcDateTime;
        if (key.RevokedAt is not null)
        {
            LogRejected(logger, key.Id, "revoked");
            metrics.Authenticated(ApiKeyMetrics.Outcomes.Revoked);
            return BearerValidation.Fail("This API key has been revoked");
        }
        if (key.ExpiresAt <= now)
        {
            LogRejected(logger, key.Id, "expired");
            metrics.Authenticated(ApiKeyMetrics.Outcomes.Expired);
            return BearerValidation.Fail("This API key has expired");
        }
        if (usage.IsDue(key.Id, now))
        {
            db ??= context.RequestServices.GetRequiredService<GymwireDbContext>();
            await usage.RecordAsync(db, key.Id, now, context.RequestAborted);
        }

        metrics.Authenticated(ApiKeyMetrics.Outcomes.Success);
        return BearerValidation.Success(cached ? _tickets.GetValue(key, Ticket) : Ticket(key));
    }

    // The ticket (principal and properties) of a key served by the cache is built once and reused by its later requests,
    // which then build no claims, identity, principal or ticket of their own (docs/benchmark-findings.md, M2). It belongs
    // to the cached row's instance: a revocation, a reload or an expired entry brings a new instance, checked above before
    // its ticket is used. Concurrent requests share it, so nothing may change it (nothing in Gymwire does: no claims
    // transformation, no authentication properties on the API).
    private readonly ConditionalWeakTable<CachedApiKey, AuthenticationTicket> _tickets = new();

    private static AuthenticationTicket Ticket(CachedApiKey key) => new(Principal(key), BearerAuthenticationHandler.SchemeName);

    private static ClaimsPrincipal Principal(CachedApiKey key)
    {
        var claims = new List<Claim>(6)
        {
            new(GymwireClaims.ActorId, key.Id.ToString()),
            new(GymwireClaims.GymId, key.GymId.ToString()),
            new(GymwireClaims.Actor, GymwireClaims.ApiKeyActor),
            new(GymwireClaims.KeyName, key.Name),
        };
        foreach (var scope in key.Scopes.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            claims.Add(new Claim(GymwireClaims.Scope, scope));
        }
        return new ClaimsPrincipal(new GymwireIdentity(claims, BearerAuthenticationHandler.SchemeName));
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Information, Message = "API key {KeyId} rejected: {Reason}")]
    private static partial void LogRejected(ILogger logger, Guid keyId, string reason);
}

/// <summary>
/// Keeps <c>last_used</c> current without turning every read into a write: each node writes a key's
/// timestamp at most once per <see cref="Resolution"/>.
/// </summary>
public sealed class ApiKeyUsage
{
    public static readonly TimeSpan Resolution = TimeSpan.FromMinutes(1);
    private readonly ConcurrentDictionary<Guid, DateTime> _lastWritten = new();

    /// <summary>True (once per <see cref="Resolution"/>) when this node should write the key's timestamp now.</summary>
    public bool IsDue(Guid keyId, DateTime now)
    {
        if (_lastWritten.TryGetValue(keyId, out var last) && now - last < Resolution)
        {
            return false;
        }
        _lastWritten[keyId] = now;
        return true;
    }

    public async Task RecordAsync(GymwireDbContext db, Guid keyId, DateTime now, CancellationToken ct)
    {
        await db.ApiKeys.Where(k => k.Id == keyId && (k.LastUsedAt == null || k.LastUsedAt < now))
            .ExecuteUpdateAsync(s => s.SetProperty(k => k.LastUsedAt, now), ct);
    }
}
