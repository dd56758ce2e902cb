using Microsoft.AspNetCore.Identity;

namespace Gymwire.Features.Gyms;

public static class GymsSetup
{
    /// <summary>Gym owners: ASP.NET Core Identity's user store, sign-in, sessions, password resets and gym provisioning.</summary>
    public static IServiceCollection AddOwners(this IServiceCollection services)
    {
        services.AddOptions<AuthOptions>().BindConfiguration(AuthOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddIdentityCore<Owner>(o =>
            {
                o.User.RequireUniqueEmail = true;
                o.Password.RequiredLength = 10;
                o.Password.RequireNonAlphanumeric = false;
                o.Password.RequireUppercase = false;
                o.Password.RequireDigit = false;
                o.Password.RequireLowercase = false;
                o.Lockout.AllowedForNewUsers = false;
            })
            .AddEntityFrameworkStores<GymwireDbContext>();
        // Lockout is OwnerSignIn's (atomic counters in sign_in_throttles), not Identity's per-owner columns.
        services.AddScoped<OwnerSignIn>();
        services.AddSingleton<PasswordCheckLimiter>();
        services.AddScoped<GymProvisioning>();
        services.AddScoped<PasswordResets>();
        services.AddSingleton<PasswordResetMailer>();
        services.AddHostedService(sp => sp.GetRequiredService<PasswordResetMailer>());
        services.AddSingleton<IBearerTokenValidator, OwnerSessionValidator>();
        return services;
    }
}
