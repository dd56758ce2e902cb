using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;

namespace Gymwire.Infrastructure;

/// <summary>The <c>DataProtection</c> configuration section: where the key-encryption key comes from.</summary>
public sealed class KeyRingOptions
{
    public const string Section = "DataProtection";

    /// <summary>
    /// A file holding the key-encryption key, base64 (32 bytes). SQLite: defaults to the database file's name with
    /// <c>.key</c>, created (0600) on first start. PostgreSQL: this or <see cref="Key"/> is required.
    /// </summary>
    public string? KeyFile { get; set; }

    /// <summary>The key-encryption key itself, base64 (32 bytes), e.g. from a secret store through the environment.</summary>
    public string? Key { get; set; }
}

public static class DataProtectionSetup
{
    /// <summary>
    /// Keys for cookies, antiforgery tokens and encrypted webhook and Stripe secrets live in the database
    /// (<c>data_protection_keys</c>), so every node behind a load balancer reads the same key ring and sessions survive
    /// restarts and redeploys. Their master keys are encrypted there with a key that is not in the database
    /// (<see cref="KeyEncryptionKey"/>), loaded, checked against the key ring, or created, at start
    /// (<see cref="KeyRingSetup"/>).
    /// </summary>
    public static IServiceCollection AddGymwireDataProtection(this IServiceCollection services)
    {
        services.AddOptions<KeyRingOptions>().BindConfiguration(KeyRingOptions.Section);
        services.AddSingleton<KeyEncryptionKey>();
        services.AddDataProtection()
            .SetApplicationName("Gymwire")
            .PersistKeysToDbContext<GymwireDbContext>();
        services.AddOptions<KeyManagementOptions>().Configure<KeyEncryptionKey>((o, kek) => o.XmlEncryptor = new KeyRingEncryptor(kek));
        // First of all hosted services: Data Protection's own (registered with authentication) loads the key ring when
        // it starts, and the key-encryption key must be there by then. A start that cannot load it fails here.
        services.Insert(0, ServiceDescriptor.Singleton<IHostedService, KeyRingStartup>());
        return services;
    }
}

internal sealed class KeyRingStartup(IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => KeyRingSetup.PrepareAsync(services, cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
