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
    private const int ChecksumDigits = 8;

    public static string Generate()
    {
        var random = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(RandomHexDigits / 2));
        return Prefix + random + Checksum(random);
    }

    /// <summary>Shape and checksum only; says nothing about whether the key exists.</summary>
    public static bool IsWellFormed(ReadOnlySpan<char> key)
    {
        if (key.Length != Length || !key.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }
        var hex = key[Prefix.Length..];
        foreach (var c in hex)
        {
            if (!char.IsAsciiDigit(c) && c is not (>= 'a' and <= 'f'))
            {
                return false;
            }
        }
        // On the stack: every authenticated request checks its key.
        Span<char> expected = stackalloc char[ChecksumDigits];
        WriteChecksum(hex[..RandomHexDigits], expected);
        return CryptographicOperations.FixedTimeEquals(MemoryMarshal.AsBytes(expected), MemoryMarshal.AsBytes(hex[RandomHexDigits..]));
    }

    /// <summary>The listed form: <c>cs_</c> + the first 8 hex digits.</summary>
    public static string DisplayPrefix(string key) => key[..(Prefix.Length + 8)];

    internal static string Checksum(string randomHex)
    {
        Span<char> checksum = stackalloc char[ChecksumDigits];
        WriteChecksum(randomHex, checksum);
        return checksum.ToString();
    }

    /// <summary>The CRC-32 of the random part's ASCII, as 8 lowercase hex digits.</summary>
    private static void WriteChecksum(ReadOnlySpan<char> randomHex, Span<char> destination)
    {
        Span<byte> ascii = stackalloc byte[RandomHexDigits];
        Span<byte> crc = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32.HashToUInt32(ascii[..Encoding.ASCII.GetBytes(randomHex, ascii)]));
        Convert.TryToHexStringLower(crc, destination, out _);
    }
}
