namespace Gymwire.Features.Zapier;

public static class ZapierSetup
{
    /// <summary>The Zapier triggers' answer cache and the actions' batch writer.</summary>
    public static IServiceCollection AddZapier(this IServiceCollection services)
    {
        services.AddTriggerCache();
        services.AddSingleton<ActionWrites>();
        return services;
    }
}
