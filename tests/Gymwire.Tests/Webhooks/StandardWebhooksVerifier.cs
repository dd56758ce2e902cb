using System.Security.Cryptography;
using System.Text;

namespace Gymwire.Tests.Webhooks;

/// <summary>
/// A verifier written from the Standard Webhooks specification (standardwebhooks.com), sharing no code with
/// Gymwire: the secret is <c>whsec_</c> + base64 key; the signed content is <c>{webhook-id}.{webhook-timestamp}.{body}</c>;
/// <c>webhook-signature</c> is a space-delimited list of <c>v1,&lt;base64 HMAC-SHA256&gt;</c>, any of which may match;
/// timestamps outside a tolerance (5 minutes) are rejected to stop replays.
/// </summary>
public static class StandardWebhooksVerifier
{
    public static readonly TimeSpan Tolerance = TimeSpan.FromMinutes(5);

    public static bool Verify(string secret, IReadOnlyDictionary<string, string> headers, byte[] body, DateTimeOffset now)
    {
        if (!headers.TryGetValue("webhook-id", out var id) || !headers.TryGetValue("webhook-timestamp", out var ts)
            || !headers.TryGetValue("webhook-signature", out var signatures))
        {
            return false;
        }
        if (!long.TryParse(ts, out var seconds) || Math.Abs((now - DateTimeOffset.FromUnixTimeSeconds(seconds)).TotalSeconds) > Tolerance.TotalSeconds)
        {
            return false;
        }
        var key = Convert.FromBase64String(secret.StartsWith("whsec_", StringComparison.Ordinal) ? secret[6..] : secret);
        var content = Encoding.UTF8.GetBytes($"{id}.{ts}.").Concat(body).ToArray();
        var expected = Encoding.ASCII.GetBytes(Convert.ToBase64String(new HMACSHA256(key).ComputeHash(content)));
        foreach (var versioned in signatures.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var comma = versioned.IndexOf(',', StringComparison.Ordinal);
            if (comma > 0 && versioned[..comma] == "v1"
                && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(versioned[(comma + 1)..]), expected))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>The contract's Express.js receiver (docs/webhooks.md, "Node.js"), line for line: hex HMAC-SHA256 of the raw body keyed by the secret string.</summary>
    public static bool VerifyCombatScore(string secret, IReadOnlyDictionary<string, string> headers, byte[] rawBody)
    {
        if (!headers.TryGetValue("x-combatscore-signature", out var signature))
        {
            return false;
        }
        var expected = Convert.ToHexStringLower(new HMACSHA256(Encoding.UTF8.GetBytes(secret)).ComputeHash(rawBody));
        var a = Encoding.UTF8.GetBytes(signature);
        var b = Encoding.UTF8.GetBytes(expected);
        return a.Length == b.Length && CryptographicOperations.FixedTimeEquals(a, b);
    }
}
