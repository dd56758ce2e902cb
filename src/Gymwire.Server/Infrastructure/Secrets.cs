using System.Security.Cryptography;
using System.Text;

namespace Gymwire.Infrastructure;

/// <summary>Random tokens and their stored form. Tokens are never stored or logged in plain text: only their SHA-256.</summary>
public static class Secrets
{
    /// <summary><paramref name="prefix"/> followed by <paramref name="bytes"/> random bytes as lowercase hex.</summary>
    public static string NewHexToken(string prefix, int bytes = 32) =>
        prefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(bytes));

    public static byte[] Sha256(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));
}
