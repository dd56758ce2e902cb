using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Gymwire.Features.ApiKeys;

/// <summary>
/// <c>cs_</c> + 64 lowercase hex: 56 random hex digits (224 bits from a CSPRNG) and 8 hex digits of CRC32
/// over those 56, so a secret scanner — or the server, before any database lookup — can tell a real key
/// from noise offline.
/// </summary>
public static class ApiKeyFormat
{
    public const string Prefix = "cs_";
    public const int Length = 3 + 64;
    private const int RandomHexDigits = 56;

    public static string Generate()
    {
        var random = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(RandomHexDigits / 2));
        return Prefix + random + Checksum(random);
    }

    /// <summary>Shape and checksum only; says nothing about whether the key exists.</summary>
    public static bool IsWellFormed(string key)
    {
        if (key.Length != Length || !key.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }
        var hex = key.AsSpan(Prefix.Length);
        foreach (var c in hex)
        {
            if (!char.IsAsciiDigit(c) && c is not (>= 'a' and <= 'f'))
            {
                return false;
            }
        }
        // On the stack: every authenticated request checks its key.
        Span<byte> random = stackalloc byte[RandomHexDigits];
        Encoding.ASCII.GetBytes(hex[..RandomHexDigits], random);
        Span<byte> crc = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32.HashToUInt32(random));
        Span<char> expected = stackalloc char[8];
        Convert.TryToHexStringLower(crc, expected, out _);
        return CryptographicOperations.FixedTimeEquals(MemoryMarshal.AsBytes(expected), MemoryMarshal.AsBytes(hex[RandomHexDigits..]));
    }

    /// <summary>The listed form: <c>cs_</c> + the first 8 hex digits.</summary>
    public static string DisplayPrefix(string key) => key[..(Prefix.Length + 8)];

    internal static string Checksum(string randomHex)
    {
        Span<byte> crc = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32.HashToUInt32(Encoding.ASCII.GetBytes(randomHex)));
        return Convert.ToHexStringLower(crc);
    }
}
