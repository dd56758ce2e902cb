namespace Gymwire.Features.ApiKeys;

/// <summary>
/// A scoped API key. Only its SHA-256 is stored; the plain key is returned once, at creation.
/// Revocation keeps the row (for the audit trail and the list) and stops the key at once.
/// </summary>
public sealed class ApiKey
{
    public Guid Id { get; set; }
    public Guid GymId { get; set; }
    public required string Name { get; set; }
    /// <summary><c>cs_</c> + the first 8 hex digits: enough to recognise a key in a list, useless to an attacker.</summary>
    public required string KeyPrefix { get; set; }
    public required byte[] KeyHash { get; set; }
    /// <summary>Comma-separated, from <c>read</c> and <c>write</c>.</summary>
    public required string Scopes { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime? LastUsedAt { get; set; }
    public DateTime? ExpiresAt { get; set; }
    public DateTime? RevokedAt { get; set; }

    public bool IsActiveAt(DateTime now) => RevokedAt is null && (ExpiresAt is null || ExpiresAt > now);

    public string[] ScopeList => Scopes.Split(',', StringSplitOptions.RemoveEmptyEntries);
}
