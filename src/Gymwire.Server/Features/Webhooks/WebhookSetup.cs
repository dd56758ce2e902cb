using System.Net;
using Gymwire.Features.Dashboard.Integrations;
using Microsoft.AspNetCore.DataProtection;

namespace Gymwire.Features.Webhooks;

public static class WebhookSetup
{
    public static IServiceCollection AddWebhooks(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<WebhookOptions>().BindConfiguration(WebhookOptions.Section).ValidateOnStart()
            .PostConfigure(o =>
            {
                // An empty schedule ("RetrySchedule": [] in JSON, or an empty Webhooks__RetrySchedule) means no retries, the contract's own
                // behaviour (docs/webhooks.md). The binder leaves an empty list null (the default schedule), so it is read here.
                var schedule = configuration.GetSection(WebhookOptions.Section).GetSection(nameof(WebhookOptions.RetrySchedule));
                if (schedule.Value == "" && !schedule.GetChildren().Any())
                {
                    o.RetrySchedule = [];
                }
            });
        services.AddSingleton<IValidateOptions<WebhookOptions>, WebhookOptionsValidator>();

        // Secrets are encrypted at rest with Data Protection (AddGymwireDataProtection: the key ring lives in the database, so every node can decrypt).

        services.AddSingleton<EgressGuard>();
        services.AddSingleton<WebhookSecretProtector>();
        services.AddSingleton<DeliverySignal>();
        services.AddSingleton<DeliverySlots>();
        services.AddSingleton<IDeliveryQueue>(DeliveryQueue.ForConfiguredStore);
        services.AddSingleton<EndpointPolicy>();
        services.AddSingleton<Attempt>();
        services.AddSingleton<AttemptRecorder>();
        services.AddScoped<WebhookService>();
        services.AddAutomationConnectionSource<WebhookConnections>();
        services.AddHttpClient(Attempt.HttpClientName, c => c.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(sp => new SocketsHttpHandler
            {
                ConnectCallback = sp.GetRequiredService<EgressGuard>().ConnectAsync,
                // A proxy would hide the real target from the egress guard; redirects would bypass the URL checks.
                UseProxy = false,
                AllowAutoRedirect = false,
                UseCookies = false,
                AutomaticDecompression = DecompressionMethods.None,
                // A body longer than the excerpt is not drained to keep the connection: closing it is cheaper.
                MaxResponseDrainSize = 0,
                PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            })
            // The default handler logs full URLs, and webhook URLs often carry tokens.
            .RemoveAllLoggers();

        // Each role can be switched off so that nodes can split them (docs/configuration.md).
        var options = configuration.GetSection(WebhookOptions.Section).Get<WebhookOptions>() ?? new WebhookOptions();
        if (options.DispatcherEnabled)
        {
            services.AddHostedService<WebhookDispatcher>();
            services.AddHostedService<WebhookRetention>();
        }
        if (options.WorkerEnabled)
        {
            services.AddHostedService<DeliveryWorker>();
            services.AddHostedService<DeliveryGauges>();
        }
        return services;
    }
}
