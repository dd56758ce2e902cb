using System.Security.Cryptography;
using System.Text;
using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.XmlEncryption;

namespace Gymwire.Infrastructure;

/// <summary>
/// The key-encryption key: 256 bits that encrypt the Data Protection key ring's master keys (AES-256-GCM), kept out of
/// the database (a key file, or configuration), so that a copy of the database alone decrypts nothing. Loaded once at
/// start by <see cref="KeyRingSetup"/>; until then it encrypts and decrypts nothing.
/// </summary>
public sealed class KeyEncryptionKey
{
    /// <summary>Bytes of the key; the only size accepted.</summary>
    public const int Size = 32;

    private static readonly byte[] AssociatedData = "Gymwire data protection key ring v1"u8.ToArray();

    private byte[]? _key;

    /// <summary>A fingerprint that names the key in messages and in each encrypted element (not secret: a hash prefix).</summary>
    public string? Id { get; private set; }

    public bool IsLoaded => _key is not null;

    internal static KeyEncryptionKey From(byte[] key)
    {
        var kek = new KeyEncryptionKey();
        kek.Load(key);
        return kek;
    }

    internal void Load(byte[] key)
    {
        if (key.Length != Size)
        {
            throw new ArgumentException($"A key-encryption key is {Size} bytes.", nameof(key));
        }
        Id = IdOf(key);
        _key = key;
    }

    public static string IdOf(ReadOnlySpan<byte> key) => Convert.ToHexStringLower(SHA256.HashData(key))[..16];

    internal byte[] Seal(ReadOnlySpan<byte> plaintext)
    {
        var key = Require();
        var sealedBytes = new byte[AesGcm.NonceByteSizes.MaxSize + plaintext.Length + AesGcm.TagByteSizes.MaxSize];
        var nonce = sealedBytes.AsSpan(0, AesGcm.NonceByteSizes.MaxSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(key, AesGcm.TagByteSizes.MaxSize);
        aes.Encrypt(nonce, plaintext, sealedBytes.AsSpan(nonce.Length, plaintext.Length), sealedBytes.AsSpan(nonce.Length + plaintext.Length), AssociatedData);
        return sealedBytes;
    }

    /// <summary>The plaintext, or <see cref="AuthenticationTagMismatchException"/> when this is not the key it was sealed with (or it was altered).</summary>
    internal byte[] Open(ReadOnlySpan<byte> sealedBytes)
    {
        var key = Require();
        const int nonceSize = 12;
        const int tagSize = 16;
        if (sealedBytes.Length < nonceSize + tagSize)
        {
            throw new CryptographicException("The encrypted data protection key is truncated.");
        }
        var plaintext = new byte[sealedBytes.Length - nonceSize - tagSize];
        using var aes = new AesGcm(key, tagSize);
        aes.Decrypt(sealedBytes[..nonceSize], sealedBytes.Slice(nonceSize, plaintext.Length), sealedBytes[^tagSize..], plaintext, AssociatedData);
        return plaintext;
    }

    private byte[] Require() => _key ?? throw new CryptographicException(
        "The key-encryption key is not loaded: the key ring is neither read nor written before the server's start has loaded it.");
}

/// <summary>
/// Encrypts each secret element of a new Data Protection key (its master key) with the <see cref="KeyEncryptionKey"/>.
/// Data Protection stores the result inside <c>&lt;encryptedSecret decryptorType="…KeyRingDecryptor…"&gt;</c>.
/// </summary>
internal sealed class KeyRingEncryptor(KeyEncryptionKey kek) : IXmlEncryptor
{
    public EncryptedXmlInfo Encrypt(XElement plaintextElement)
    {
        var plaintext = Encoding.UTF8.GetBytes(plaintextElement.ToString(SaveOptions.DisableFormatting));
        try
        {
            var encrypted = new XElement(KeyRingDecryptor.ElementName,
                new XAttribute(KeyRingDecryptor.KeyIdAttribute, kek.Id!),
                new XAttribute("algorithm", "AES-256-GCM"),
                Convert.ToBase64String(kek.Seal(plaintext)));
            return new EncryptedXmlInfo(encrypted, typeof(KeyRingDecryptor));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }
}

/// <summary>
/// Decrypts what <see cref="KeyRingEncryptor"/> encrypted. Data Protection creates it by the type name stored in each
/// key (with the constructor that takes the service provider), so this type's name and namespace are part of the stored
/// format: do not rename or move it.
/// </summary>
public sealed class KeyRingDecryptor(IServiceProvider? services) : IXmlDecryptor
{
    internal static readonly XName ElementName = XName.Get("encryptedKey", "urn:gymwire:keyring:v1");
    internal const string KeyIdAttribute = "kek";

    private readonly KeyEncryptionKey? _kek = services?.GetService(typeof(KeyEncryptionKey)) as KeyEncryptionKey;

    public XElement Decrypt(XElement encryptedElement) => Decrypt(encryptedElement, _kek);

    internal static XElement Decrypt(XElement encryptedElement, KeyEncryptionKey? kek)
    {
        if (encryptedElement.Name != ElementName)
        {
            throw new CryptographicException($"Expected an element {ElementName}, found {encryptedElement.Name}.");
        }
        if (kek is not { IsLoaded: true })
        {
            throw new CryptographicException("This data protection key is encrypted, and no key-encryption key is loaded to decrypt it.");
        }
        var keyId = (string?)encryptedElement.Attribute(KeyIdAttribute);
        if (keyId != kek.Id)
        {
            throw new CryptographicException($"This data protection key was encrypted with the key-encryption key {keyId}, not with the loaded one ({kek.Id}).");
        }
        var plaintext = kek.Open(Convert.FromBase64String(encryptedElement.Value));
        try
        {
            return XElement.Parse(Encoding.UTF8.GetString(plaintext));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }
}
