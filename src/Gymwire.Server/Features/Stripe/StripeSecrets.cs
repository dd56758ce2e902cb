using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;

namespace Gymwire.Features.Stripe;

/// <summary>
/// Encrypts endpoint secrets with the server's Data Protection key ring (kept in the database, shared by every node).
/// The gym id is part of the purpose, so a ciphertext copied to another gym's row does not decrypt.
/// </summary>
public sealed class StripeSecrets(IDataProtectionProvider provider)
{
    private const string Purpose = "Gymwire.Stripe.EndpointSecret.v1";

    /// <summary>What the owner is told when the stored secret does not decrypt.</summary>
    public const string CannotDecrypt = "The stored endpoint secret cannot be decrypted (was the Data Protection key ring lost?); set it again";

    public string Protect(Guid gymId, string secret) => provider.CreateProtector(Purpose, gymId.ToString()).Protect(secret);

    /// <summary>The secret, or null when it cannot be decrypted (for example, the key ring was lost).</summary>
    public string? Unprotect(Guid gymId, string protectedSecret)
    {
        try
        {
            return provider.CreateProtector(Purpose, gymId.ToString()).Unprotect(protectedSecret);
        }
        catch (CryptographicException)
        {
            return null;
        }
    }

    public static string Hint(string secret) => secret.Length <= 4 ? "" : secret[^4..];
}
