using Npgsql;

namespace Gymwire.Infrastructure;

/// <summary>
/// A PostgreSQL <c>NOTIFY</c> channel this node listens on, and what to do with what arrives. Registered with
/// <see cref="PostgresNotificationsSetup.AddNotificationChannel{T}"/>.
/// </summary>
public interface INotificationChannel
{
    /// <summary>The channel's name: a lower-case SQL identifier.</summary>
    string Name { get; }

    /// <summary>False when the feature is off: the channel is not listened on.</summary>
    bool Enabled { get; }

    void Received(string payload);

    /// <summary>
    /// Listening began (true), or the connection was lost or closed (false). Either way notifications sent meanwhile
    /// were missed, so whatever they would have corrected must be dropped.
    /// </summary>
    void ListeningChanged(bool listening);
}

public static class PostgresNotificationsSetup
{
    public static IServiceCollection AddNotificationChannel<T>(this IServiceCollection services) where T : class, INotificationChannel
    {
        if (!services.Any(d => d.ServiceType == typeof(PostgresNotifications)))
        {
            services.AddSingleton<PostgresNotifications>();
            services.AddHostedService(sp => sp.GetRequiredService<PostgresNotifications>());
        }
        services.AddSingleton<INotificationChannel, T>();
        return services;
    }
}

/// <summary>
/// On PostgreSQL, one dedicated connection per node that <c>LISTEN</c>s on every enabled <see cref="INotificationChannel"/>
/// and hands each notification to its channel. It reconnects whenever the connection breaks, and tells every channel
/// when listening stops and starts again, since notifications sent in between were lost.
/// </summary>
public sealed partial class PostgresNotifications(
    IServiceProvider services,
    IEnumerable<INotificationChannel> channels,
    IOptions<DatabaseOptions> database,
    ILogger<PostgresNotifications> logger) : BackgroundService
{
    /// <summary>The connection's <c>application_name</c>, as <c>pg_stat_activity</c> shows it.</summary>
    public const string ApplicationName = "gymwire notifications";

    private static readonly TimeSpan ReconnectDelay = TimeSpan.FromSeconds(2);

    private volatile bool _listening;

    /// <summary>True while LISTEN is in effect on every enabled channel (tests wait for it before relying on notifications).</summary>
    public bool Listening => _listening;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var enabled = channels.Where(c => c.Enabled).ToDictionary(c => c.Name, StringComparer.Ordinal);
        if (database.Value.ProviderKind != DatabaseProvider.Postgres || enabled.Count == 0)
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
            // Not from the pool: this connection lives as long as the node. Keepalives make a silently dead
            // connection fail WaitAsync instead of leaving this node deaf with full caches.
            Pooling = false,
            KeepAlive = 15,
            ApplicationName = ApplicationName,
        };
        var listen = string.Join("; ", enabled.Keys.Select(name => $"LISTEN {name}"));
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = new NpgsqlConnection(builder.ConnectionString);
                connection.Notification += (_, e) =>
                {
                    if (enabled.TryGetValue(e.Channel, out var channel))
                    {
                        channel.Received(e.Payload);
                    }
                };
                await connection.OpenAsync(stoppingToken);
                await using (var command = new NpgsqlCommand(listen, connection))
                {
                    await command.ExecuteNonQueryAsync(stoppingToken);
                }
                SetListening(enabled.Values, true);
                LogListening(logger, string.Join(", ", enabled.Keys));
                while (true)
                {
                    await connection.WaitAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                SetListening(enabled.Values, false);
                return;
            }
            catch (Exception e)
            {
                // Whatever broke, keep listening: an exception here would stop the whole host.
                SetListening(enabled.Values, false);
                LogConnectionLost(logger, ReconnectDelay, e);
            }
            // Real time, not the injected clock: reconnecting must not wait for a test's frozen clock. A stop ends the
            // wait without an exception; the loop's condition then ends the service.
            await Task.Delay(ReconnectDelay, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    private void SetListening(IEnumerable<INotificationChannel> enabled, bool listening)
    {
        // Stopping: the flag first, so that nothing relies on the channels while they are told; starting: the flag last.
        if (!listening)
        {
            _listening = false;
        }
        foreach (var channel in enabled)
        {
            channel.ListeningChanged(listening);
        }
        _listening = listening;
    }

    [LoggerMessage(EventId = 1501, Level = LogLevel.Debug, Message = "Listening for notifications on {Channels}")]
    private static partial void LogListening(ILogger logger, string channels);

    [LoggerMessage(EventId = 1502, Level = LogLevel.Warning, Message = "The notification listener lost its connection; caches cleared, reconnecting in {Delay}")]
    private static partial void LogConnectionLost(ILogger logger, TimeSpan delay, Exception exception);
}
