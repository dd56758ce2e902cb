using Gymwire.Features.Dashboard.Integrations;

namespace Gymwire.Features.Stripe;

/// <summary>Payments in from Stripe: options, the per-gym secrets and the event mapper.</summary>
public static class StripeSetup
{
    public static IServiceCollection AddStripeConnector(this IServiceCollection services)
    {
        services.AddOptions<StripeOptions>().BindConfiguration(StripeOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<StripeSecrets>();
        services.AddSingleton<StripeMetrics>();
        services.AddScoped<StripeEventMapper>();
        services.AddIntegrationStatus<StripeIntegration>();
        return services;
    }
}
