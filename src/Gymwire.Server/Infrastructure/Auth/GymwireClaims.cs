namespace Gymwire.Infrastructure.Auth;

/// <summary>The claims every authenticated Gymwire principal carries.</summary>
public static class GymwireClaims
{
    public const string GymId = "gym_id";
    /// <summary><c>owner</c> or <c>api_key</c>.</summary>
    public const string Actor = "actor";
    public const string Scope = "scope";
    /// <summary>For API keys: the key's display name.</summary>
    public const string KeyName = "key_name";
    /// <summary>The owner's id, or the API key's id.</summary>
    public const string ActorId = ClaimTypes.NameIdentifier;

    public const string OwnerActor = "owner";
    public const string ApiKeyActor = "api_key";

    public static Guid GetGymId(this ClaimsPrincipal user) =>
        Guid.TryParse(user.FindFirstValue(GymId), out var id) ? id : throw new InvalidOperationException("The principal has no gym.");

    public static Guid GetActorId(this ClaimsPrincipal user) =>
        Guid.TryParse(user.FindFirstValue(ActorId), out var id) ? id : throw new InvalidOperationException("The principal has no id.");

    public static bool IsOwner(this ClaimsPrincipal user) => user.HasClaim(Actor, OwnerActor);

    public static bool IsApiKey(this ClaimsPrincipal user) => user.HasClaim(Actor, ApiKeyActor);

    public static bool HasScope(this ClaimsPrincipal user, string scope) => user.IsOwner() || user.HasClaim(Scope, scope);
}

/// <summary>
/// The identity of the principals Gymwire's bearer validators build. <see cref="ClaimsIdentity"/>'s own lookups walk
/// <see cref="ClaimsIdentity.Claims"/> as an <see cref="IEnumerable{T}"/>, a boxed enumerator per call, and every API
/// request makes several (authorization, the rate limit's partition, the handler's gym); these walk the list itself,
/// with the same comparisons (claim type ignoring case, value ordinal).
/// </summary>
public sealed class GymwireIdentity(IEnumerable<Claim> claims, string authenticationType) : ClaimsIdentity(claims, authenticationType)
{
    public override Claim? FindFirst(string type)
    {
        ArgumentNullException.ThrowIfNull(type);
        if (Claims is not List<Claim> claims)
        {
            return base.FindFirst(type);
        }
        foreach (var claim in claims)
        {
            if (string.Equals(claim.Type, type, StringComparison.OrdinalIgnoreCase))
            {
                return claim;
            }
        }
        return null;
    }

    public override bool HasClaim(string type, string value)
    {
        ArgumentNullException.ThrowIfNull(type);
        ArgumentNullException.ThrowIfNull(value);
        if (Claims is not List<Claim> claims)
        {
            return base.HasClaim(type, value);
        }
        foreach (var claim in claims)
        {
            if (string.Equals(claim.Type, type, StringComparison.OrdinalIgnoreCase) && string.Equals(claim.Value, value, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }
}

public static class Scopes
{
    public const string Read = "read";
    public const string Write = "write";
    public static readonly string[] All = [Read, Write];
}

/// <summary>Authorization policy names used on endpoint groups.</summary>
public static class Policies
{
    /// <summary>An owner session, or an API key with <c>read</c>.</summary>
    public const string Read = "read";
    /// <summary>An owner session, or an API key with <c>write</c>.</summary>
    public const string Write = "write";
    /// <summary>An owner session only (API-key management): keys never manage keys.</summary>
    public const string Owner = "owner";
}
