using System.Buffers;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.DataProtection;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// Signs deliveries both ways docs/design.md fixes: <c>X-CombatScore-Signature</c> (hex HMAC-SHA256 of the raw
/// body, keyed by the UTF-8 bytes of the secret string as shown) and Standard Webhooks <c>webhook-signature</c>
/// (<c>v1,&lt;base64 HMAC-SHA256 of "{id}.{timestamp}.{body}"&gt;</c>, keyed by the base64-decoded part after <c>whsec_</c>).
/// </summary>
public static class WebhookSigner
{
    public const string SecretPrefix = "whsec_";

    /// <summary><c>whsec_</c> + base64 of 32 random bytes.</summary>
    public static string NewSecret() => SecretPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <summary>Null when <paramref name="secret"/> is <c>whsec_</c> + base64 of 24 to 64 bytes; otherwise why not.</summary>
    public static string? ValidateSecret(string secret)
    {
        if (!secret.StartsWith(SecretPrefix, StringComparison.Ordinal))
        {
            return "'secret' must start with 'whsec_'";
        }
        const string invalid = "'secret' must be 'whsec_' followed by the base64 of 24 to 64 bytes";
        // Base64 decoding skips whitespace, but the CombatScore signature is keyed by the whole string as sent.
        var encoded = secret.AsSpan(SecretPrefix.Length);
        if (encoded.Length > MaxEncodedKeyLength || encoded.ContainsAny(" \t\r\n"))
        {
            return invalid;
        }
        return DecodeKey(secret) is { Length: >= 24 and <= 64 } ? null : invalid;
    }

    /// <summary>The base64 of 64 bytes, padded.</summary>
    private const int MaxEncodedKeyLength = 88;

    private static byte[]? DecodeKey(string secret)
    {
        var encoded = secret[SecretPrefix.Length..];
        var buffer = new byte[encoded.Length];
        return Convert.TryFromBase64String(encoded, buffer, out var written) ? buffer[..written] : null;
    }

    public static string CombatScoreSignature(string secret, ReadOnlySpan<byte> body) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body));

    public static string StandardSignature(string secret, string messageId, long timestamp, ReadOnlySpan<byte> body)
    {
        var key = DecodeKey(secret) ?? throw new ArgumentException("Not a whsec_ secret.", nameof(secret));
        var prefix = $"{messageId}.{timestamp.ToString(CultureInfo.InvariantCulture)}.";
        // The signed content is "id.timestamp.body": assembled in a pooled buffer, not a new copy of the body per attempt.
        var signed = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetByteCount(prefix) + body.Length);
        try
        {
            var length = Encoding.UTF8.GetBytes(prefix, signed);
            body.CopyTo(signed.AsSpan(length));
            Span<byte> hash = stackalloc byte[HMACSHA256.HashSizeInBytes];
            HMACSHA256.HashData(key, signed.AsSpan(0, length + body.Length), hash);
            return "v1," + Convert.ToBase64String(hash);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(signed);
        }
    }

    /// <summary>The signature headers for one attempt. <paramref name="secrets"/> is the current secret first, then any still-valid previous one.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Headers(IReadOnlyList<string> secrets, string messageId, DateTimeOffset now, ReadOnlySpan<byte> body)
    {
        var timestamp = now.ToUnixTimeSeconds();
        var standard = new List<string>(secrets.Count);
        foreach (var secret in secrets)
        {
            standard.Add(StandardSignature(secret, messageId, timestamp, body));
        }
        return
        [
            new("X-CombatScore-Signature", CombatScoreSignature(secrets[0], body)),
            new("webhook-id", messageId),
            new("webhook-timestamp", timestamp.ToString(CultureInfo.InvariantCulture)),
            new("webhook-signature", string.Join(' ', standard)),
        ];
    }
}

/// <summary>
/// Encrypts webhook secrets at rest with ASP.NET Core Data Protection (keys shared by every node through the database).
/// Decrypted secrets are kept in memory by their ciphertext, so a delivery does not decrypt again what the last one
/// did; a rotated secret has a new ciphertext, so the cache never serves a stale secret.
/// </summary>
public sealed class WebhookSecretProtector(IDataProtectionProvider provider)
{
    private const int MaxCached = 10_000;
    private readonly IDataProtector _protector = provider.CreateProtector("Gymwire.Webhooks.Secret.v1");
    private readonly ConcurrentDictionary<string, string> _unprotected = new(StringComparer.Ordinal);

    public string Protect(string secret) => _protector.Protect(secret);

    public string Unprotect(string protectedSecret)
    {
        if (_unprotected.TryGetValue(protectedSecret, out var secret))
        {
            return secret;
        }
        secret = _protector.Unprotect(protectedSecret);
        if (_unprotected.Count >= MaxCached)
        {
            _unprotected.Clear();
        }
        _unprotected[protectedSecret] = secret;
        return secret;
    }

    /// <summary>The secrets that sign now: the current one, then the previous one while its overlap lasts.</summary>
    public IReadOnlyList<string> SigningSecrets(ClaimedDelivery delivery, DateTime now)
    {
        var current = Unprotect(delivery.SecretProtected);
        return delivery.PreviousSecretProtected is { } previous && delivery.PreviousSecretExpiresAt > now
            ? [current, Unprotect(previous)]
            : [current];
    }
}
