using System.Collections.Concurrent;
using System.Security.Claims;
using Gymwire.Data;
using Gymwire.Infrastructure;
using Gymwire.Infrastructure.Auth;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Features.ApiKeys;

/// <summary>Authenticates <c>Authorization: Bearer cs_…</c>: the key's gym becomes the request's tenant.</summary>
public sealed partial class ApiKeyValidator(TimeProvider clock, ApiKeyUsage usage, ILogger<ApiKeyValidator> logger) : IBearerTokenValidator
{
    public string Prefix => ApiKeyFormat.Prefix;

    public async Task<BearerValidation> ValidateAsync(string token, HttpContext context)
    {
        // Typos, truncations and made-up keys fail here, before the database is asked anything.
        if (!ApiKeyFormat.IsWellFormed(token))
        {
            return BearerValidation.Fail("Invalid API key");
        }
        var hash = Secrets.Sha256(token);
        var db = context.RequestServices.GetRequiredService<GymwireDbContext>();
        var key = await db.ApiKeys.AsNoTracking()
            .Where(k => k.KeyHash == hash)
            .Select(k => new { k.Id, k.GymId, k.Name, k.Scopes, k.RevokedAt, k.ExpiresAt })
            .FirstOrDefaultAsync(context.RequestAborted);
        if (key is null)
        {
            return BearerValidation.Fail("Invalid API key");
        }
        var now = clock.GetUtcNow().UtcDateTime;
        if (key.RevokedAt is not null)
        {
            LogRejected(logger, key.Id, "revoked");
            return BearerValidation.Fail("This API key has been revoked");
        }
        if (key.ExpiresAt <= now)
        {
            LogRejected(logger, key.Id, "expired");
            return BearerValidation.Fail("This API key has expired");
        }
        await usage.RecordAsync(db, key.Id, now, context.RequestAborted);

        var claims = new List<Claim>
        {
            new(GymwireClaims.ActorId, key.Id.ToString()),
            new(GymwireClaims.GymId, key.GymId.ToString()),
            new(GymwireClaims.Actor, GymwireClaims.ApiKeyActor),
            new(GymwireClaims.KeyName, key.Name),
        };
        claims.AddRange(key.Scopes.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => new Claim(GymwireClaims.Scope, s)));
        return BearerValidation.Success(new ClaimsPrincipal(new ClaimsIdentity(claims, BearerAuthenticationHandler.SchemeName)));
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

    public async Task RecordAsync(GymwireDbContext db, Guid keyId, DateTime now, CancellationToken ct)
    {
        if (_lastWritten.TryGetValue(keyId, out var last) && now - last < Resolution)
        {
            return;
        }
        _lastWritten[keyId] = now;
        await db.ApiKeys.Where(k => k.Id == keyId && (k.LastUsedAt == null || k.LastUsedAt < now))
            .ExecuteUpdateAsync(s => s.SetProperty(k => k.LastUsedAt, now), ct);
    }
}
