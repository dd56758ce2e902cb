namespace Gymwire.Features.Zapier;

public static class ZapierSetup
{
    /// <summary>The Zapier triggers' answer cache and the actions' SQLite batch writer.</summary>
    public static IServiceCollection AddZapier(this IServiceCollection services)
    {
        services.AddTriggerCache();
        services.AddSingleton<SqliteActionWrites>();
        return services;
    }
}
