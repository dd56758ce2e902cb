using Gymwire.Features.Dashboard.Integrations;

namespace Gymwire.Features.ApiKeys;

/// <summary>API keys: options, the key cache and its revocation channel, and the bearer-token validator.</summary>
public static class ApiKeySetup
{
    public static IServiceCollection AddApiKeys(this IServiceCollection services)
    {
        services.AddOptions<ApiKeyOptions>().BindConfiguration(ApiKeyOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<ApiKeyCache>();
        services.AddNotificationChannel<ApiKeyRevocationChannel>();
        services.AddHostedService<ApiKeyRevocationPoller>();
        services.AddSingleton<ApiKeyUsage>();
        services.AddSingleton<IBearerTokenValidator, ApiKeyValidator>();
        services.AddSingleton<ApiKeyMetrics>();
        services.AddScoped<ApiKeyService>();
        services.AddAutomationConnectionSource<ApiKeyConnections>();
        return services;
    }
}
