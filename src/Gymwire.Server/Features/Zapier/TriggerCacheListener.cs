using Gymwire.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gymwire.Features.Zapier;

/// <summary>
/// On PostgreSQL, hears the gyms the <c>TriggerPollNotify</c> triggers name from inside each committed write, whoever
/// wrote, with <see cref="ApiKeys.ApiKeyRevocationListener"/>'s connection handling. While not listening the cache serves
/// nothing, and each (re)connection invalidates everything, since notifications sent meanwhile were lost.
/// </summary>
public sealed partial class TriggerCacheListener(
    IServiceProvider services,
    TriggerCache cache,
    IOptions<DatabaseOptions> database,
    ILogger<TriggerCacheListener> logger) : BackgroundService
{
    public const string Channel = "gymwire_trigger_data";

    private static readonly TimeSpan ReconnectDelay = TimeSpan.FromSeconds(2);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (database.Value.ProviderKind != DatabaseProvider.Postgres || !cache.Enabled)
        {
            return;
        }
        string connectionString;
        await using (var scope = services.CreateAsyncScope())
        {
            connectionString = scope.ServiceProvider.GetRequiredService<GymwireDbContext>().Database.GetConnectionString()!;
        }
        var builder = new NpgsqlConnectionStringBuilder(connectionString)
        {
            Pooling = false,
            KeepAlive = 15,
            ApplicationName = "gymwire trigger cache",
        };
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = new NpgsqlConnection(builder.ConnectionString);
                connection.Notification += (_, e) => OnNotification(e.Payload);
                await connection.OpenAsync(stoppingToken);
                await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }
                cache.SetListening(true);
                LogListening(logger);
                while (true)
                {
                    await connection.WaitAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                cache.SetListening(false);
                return;
            }
            catch (Exception e)
            {
                // Whatever broke, keep listening: an exception here would stop the whole host.
                cache.SetListening(false);
                LogConnectionLost(logger, ReconnectDelay, e);
            }
            try
            {
                // Real time, not the injected clock: reconnecting must not wait for a test's frozen clock.
                await Task.Delay(ReconnectDelay, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void OnNotification(string payload)
    {
        if (Guid.TryParse(payload, out var gymId))
        {
            cache.Invalidate(gymId);
        }
        else
        {
            cache.InvalidateAll();
        }
    }

    [LoggerMessage(EventId = 2060, Level = LogLevel.Debug, Message = "Listening for trigger data changes")]
    private static partial void LogListening(ILogger logger);

    [LoggerMessage(EventId = 2061, Level = LogLevel.Warning, Message = "Trigger cache listener lost its connection; cache off, reconnecting in {Delay}")]
    private static partial void LogConnectionLost(ILogger logger, TimeSpan delay, Exception exception);
}

public static class TriggerCacheSetup
{
    public static IServiceCollection AddTriggerCache(this IServiceCollection services)
    {
        services.AddOptions<TriggerCacheOptions>().BindConfiguration(TriggerCacheOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<TriggerCache>();
        services.AddSingleton<Microsoft.EntityFrameworkCore.Diagnostics.IInterceptor, TriggerCacheInterceptor>();
        services.AddHostedService<TriggerCacheListener>();
        return services;
    }
}
