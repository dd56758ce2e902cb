namespace Gymwire.Features.Events;

public static class EventsSetup
{
    /// <summary>The outbox: a committed event wakes the webhook dispatcher and is counted.</summary>
    public static IServiceCollection AddOutbox(this IServiceCollection services)
    {
        services.AddSingleton<OutboxSignal>();
        services.AddSingleton<EventMetrics>();
        services.AddWakeAfterCommit<OutboxEvent, OutboxSignal>(sp =>
        {
            var metrics = sp.GetRequiredService<EventMetrics>();
            return row => metrics.Written(row.Type);
        });
        return services;
    }
}
