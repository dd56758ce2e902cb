using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Gymwire.Client;

/// <summary>
/// Verifies webhook deliveries from Gymwire, by either scheme it signs with:
/// <list type="bullet">
/// <item><c>X-CombatScore-Signature</c>: hex HMAC-SHA256 of the raw body, keyed by the secret string as given.</item>
/// <item>Standard Webhooks: <c>webhook-signature</c> = space-separated <c>v1,&lt;base64&gt;</c> over
/// <c>{webhook-id}.{webhook-timestamp}.{body}</c>, keyed by the base64-decoded part of <c>whsec_…</c>, with the
/// timestamp within a tolerance (replay protection).</item>
/// </list>
/// Comparisons are constant-time. Verify the raw bytes as received, before any JSON parsing.
/// </summary>
public sealed class WebhookVerifier
{
    private const string SecretPrefix = "whsec_";
    private static readonly long MaxUnixSeconds = DateTimeOffset.MaxValue.ToUnixTimeSeconds();
    private readonly string[] _secrets;
    private readonly TimeProvider _clock;

    /// <summary>A verifier for one secret, or several during a rotation (any one may match).</summary>
    public WebhookVerifier(IEnumerable<string> secrets, TimeSpan? tolerance = null, TimeProvider? clock = null)
    {
        ArgumentNullException.ThrowIfNull(secrets);
        _secrets = secrets.ToArray();
        if (_secrets.Length == 0 || _secrets.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("At least one non-empty secret is required.", nameof(secrets));
        }
        Tolerance = tolerance ?? TimeSpan.FromMinutes(5);
        _clock = clock ?? TimeProvider.System;
    }

    /// <summary>A verifier for one secret.</summary>
    public WebhookVerifier(string secret, TimeSpan? tolerance = null, TimeProvider? clock = null) : this([secret], tolerance, clock)
    {
    }

    /// <summary>How far <c>webhook-timestamp</c> may be from now (default 5 minutes).</summary>
    public TimeSpan Tolerance { get; }

    /// <summary>
    /// True when the delivery verifies: the Standard Webhooks headers if present (signature and timestamp),
    /// otherwise <c>X-CombatScore-Signature</c>. Header names are matched case-insensitively.
    /// </summary>
    public bool Verify(IEnumerable<KeyValuePair<string, string>> headers, ReadOnlySpan<byte> body)
    {
        ArgumentNullException.ThrowIfNull(headers);
        var map = headers.GroupBy(h => h.Key, StringComparer.OrdinalIgnoreCase).ToDictionary(g => g.Key, g => g.First().Value, StringComparer.OrdinalIgnoreCase);
        if (map.TryGetValue("webhook-signature", out var standard) && map.TryGetValue("webhook-id", out var id) && map.TryGetValue("webhook-timestamp", out var timestamp))
        {
            return VerifyStandard(id, timestamp, standard, body);
        }
        return map.TryGetValue("X-CombatScore-Signature", out var hex) && VerifyCombatScore(hex, body);
    }

    /// <summary>The header a test send carries (<c>X-Gymwire-Test: true</c>); real deliveries do not have it.</summary>
    public const string TestHeader = "X-Gymwire-Test";

    /// <summary>
    /// True when the headers mark a test send (<c>X-Gymwire-Test: true</c>, name matched case-insensitively). The
    /// header is covered by no signature: trust it only on a delivery that verifies, or read
    /// <see cref="WebhookEvent.IsTest"/> from the signed body.
    /// </summary>
    public static bool IsTestDelivery(IEnumerable<KeyValuePair<string, string>> headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        return headers.Any(h => string.Equals(h.Key, TestHeader, StringComparison.OrdinalIgnoreCase)
                                && string.Equals(h.Value.Trim(), "true", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>Checks <c>X-CombatScore-Signature</c> against the raw body.</summary>
    public bool VerifyCombatScore(string signatureHex, ReadOnlySpan<byte> body)
    {
        if (string.IsNullOrEmpty(signatureHex))
        {
            return false;
        }
        var given = Encoding.ASCII.GetBytes(signatureHex.Trim().ToLowerInvariant());
        foreach (var secret in _secrets)
        {
            var expected = Encoding.ASCII.GetBytes(Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body)));
            if (CryptographicOperations.FixedTimeEquals(expected, given))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Checks the Standard Webhooks signature and that the timestamp is within <see cref="Tolerance"/>.</summary>
    public bool VerifyStandard(string webhookId, string webhookTimestamp, string webhookSignature, ReadOnlySpan<byte> body)
    {
        if (string.IsNullOrEmpty(webhookId) || string.IsNullOrEmpty(webhookSignature)
            || !long.TryParse(webhookTimestamp, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
        {
            return false;
        }
        // A timestamp past the last second DateTimeOffset holds (year 9999) is outside any tolerance: refused, not thrown.
        if (seconds > MaxUnixSeconds)
        {
            return false;
        }
        var sent = DateTimeOffset.FromUnixTimeSeconds(seconds);
        if ((_clock.GetUtcNow() - sent).Duration() > Tolerance)
        {
            return false;
        }
        var signed = Encoding.UTF8.GetBytes($"{webhookId}.{webhookTimestamp}.");
        var content = new byte[signed.Length + body.Length];
        signed.CopyTo(content, 0);
        body.CopyTo(content.AsSpan(signed.Length));
        var candidates = webhookSignature.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Where(s => s.StartsWith("v1,", StringComparison.Ordinal))
            .Select(s => s[3..])
            .ToList();
        foreach (var secret in _secrets)
        {
            if (!TryKey(secret, out var key))
            {
                continue;
            }
            var expected = Encoding.ASCII.GetBytes(Convert.ToBase64String(HMACSHA256.HashData(key, content)));
            foreach (var candidate in candidates)
            {
                if (CryptographicOperations.FixedTimeEquals(expected, Encoding.ASCII.GetBytes(candidate)))
                {
                    return true;
                }
            }
        }
        return false;
    }

    private static bool TryKey(string secret, out byte[] key)
    {
        var encoded = secret.StartsWith(SecretPrefix, StringComparison.Ordinal) ? secret[SecretPrefix.Length..] : secret;
        try
        {
            key = Convert.FromBase64String(encoded);
            return true;
        }
        catch (FormatException)
        {
            key = [];
            return false;
        }
    }
}
