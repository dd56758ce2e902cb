using Gymwire.Data;
using Microsoft.AspNetCore.DataProtection;

namespace Gymwire.Infrastructure;

public static class DataProtectionSetup
{
    /// <summary>
    /// Keys for cookies, antiforgery tokens and encrypted webhook secrets live in the database (<c>data_protection_keys</c>), so every node
    /// behind a load balancer reads the same key ring and sessions survive restarts and redeploys.
    /// </summary>
    public static IServiceCollection AddGymwireDataProtection(this IServiceCollection services)
    {
        services.AddDataProtection()
            .SetApplicationName("Gymwire")
            .PersistKeysToDbContext<GymwireDbContext>();
        return services;
    }
}
