using Gymwire.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gymwire.Features.ApiKeys;

/// <summary>
/// Revocations made anywhere reach every node's <see cref="ApiKeyCache"/> on PostgreSQL: the revoking
/// transaction sends <c>NOTIFY</c> (delivered only if it commits), and every serving node <c>LISTEN</c>s.
/// On SQLite there is no such channel: <see cref="ApiKeyRevocationPoller"/> finds a revocation made by another process.
/// </summary>
public static class ApiKeyRevocations
{
    public const string Channel = "gymwire_api_key_revoked";

    /// <summary>Queues the notification in the current transaction (PostgreSQL only).</summary>
    public static Task NotifyAsync(GymwireDbContext db, Guid keyId, CancellationToken ct) =>
        db.Provider == DatabaseProvider.Postgres
            ? db.Database.ExecuteSqlAsync($"SELECT pg_notify({Channel}, {keyId.ToString()})", ct)
            : Task.CompletedTask;
}

/// <summary>
/// Holds one dedicated PostgreSQL connection that listens for revocations and evicts the keys they name.
/// Whenever it (re)connects it clears the cache, since revocations sent while it was not listening were lost.
/// </summary>
public sealed partial class ApiKeyRevocationListener(
    IServiceProvider services,
    ApiKeyCache cache,
    IOptions<DatabaseOptions> database,
    ILogger<ApiKeyRevocationListener> logger) : BackgroundService
{
    private static readonly TimeSpan ReconnectDelay = TimeSpan.FromSeconds(2);

    private volatile bool _listening;

    /// <summary>True while LISTEN is in effect (tests wait for it before relying on notifications).</summary>
    public bool Listening => _listening;

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
            // Not from the pool: this connection lives as long as the node. Keepalives make a silently dead
            // connection fail WaitAsync instead of leaving this node deaf with a full cache.
            Pooling = false,
            KeepAlive = 15,
            ApplicationName = "gymwire api-key revocations",
        };
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = new NpgsqlConnection(builder.ConnectionString);
                connection.Notification += (_, e) => OnNotification(e.Payload);
                await connection.OpenAsync(stoppingToken);
                await using (var listen = new NpgsqlCommand($"LISTEN {ApiKeyRevocations.Channel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }
                cache.Clear();
                _listening = true;
                LogListening(logger);
                while (true)
                {
                    await connection.WaitAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Whatever broke, keep listening: an exception here would stop the whole host.
                _listening = false;
                cache.Clear();
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
        if (Guid.TryParse(payload, out var keyId))
        {
            cache.Evict(keyId);
        }
        else
        {
            cache.Clear();
        }
    }

    [LoggerMessage(EventId = 2010, Level = LogLevel.Debug, Message = "Listening for API-key revocations")]
    private static partial void LogListening(ILogger logger);

    [LoggerMessage(EventId = 2011, Level = LogLevel.Warning, Message = "API-key revocation listener lost its connection; cache cleared, reconnecting in {Delay}")]
    private static partial void LogConnectionLost(ILogger logger, TimeSpan delay, Exception exception);
}

/// <summary>
/// Every <c>ApiKeys:RevocationPollInterval</c>, reads how many keys are revoked and the latest revocation time, and
/// clears the cache when either changed: a revocation this node was not told of (on SQLite, by another process such
/// as <c>gymwire api-keys revoke</c>; on PostgreSQL, one whose NOTIFY was lost) stops the key within the interval, not
/// the cache's TTL. One small query per interval (api_keys is small); revocations are rare, so clearing costs a
/// database read per cached key, once.
/// </summary>
public sealed partial class ApiKeyRevocationPoller(
    IServiceScopeFactory scopes,
    ApiKeyCache cache,
    IOptions<ApiKeyOptions> options,
    TimeProvider clock,
    ILogger<ApiKeyRevocationPoller> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!cache.Enabled)
        {
            return;
        }
        await Task.Yield();
        (int Count, DateTime? Latest)? seen = null;
        while (true)
        {
            try
            {
                var now = await ReadAsync(stoppingToken);
                if (seen is { } before && before != now)
                {
                    cache.Clear();
                    LogCleared(logger);
                }
                seen = now;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The database is unreachable or busy: trust nothing cached meanwhile, and try again.
                cache.Clear();
                seen = null;
                LogPollFailed(logger, e);
            }
            try
            {
                await Task.Delay(options.Value.RevocationPollInterval, clock, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task<(int Count, DateTime? Latest)> ReadAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        // One round trip: both aggregates in one statement (no row at all when nothing is revoked). Read as a
        // list, not with FirstOrDefault: a row limit without ORDER BY makes EF Core log a warning at start-up.
        var revoked = await db.ApiKeys.AsNoTracking().Where(k => k.RevokedAt != null).GroupBy(_ => 1)
            .Select(g => new { Count = g.Count(), Latest = g.Max(k => k.RevokedAt) }).ToListAsync(ct);
        return revoked.Count == 0 ? (0, null) : (revoked[0].Count, revoked[0].Latest);
    }

    [LoggerMessage(EventId = 2012, Level = LogLevel.Debug, Message = "API keys were revoked elsewhere; cache cleared")]
    private static partial void LogCleared(ILogger logger);

    [LoggerMessage(EventId = 2013, Level = LogLevel.Warning, Message = "Checking for API-key revocations failed; cache cleared, retrying")]
    private static partial void LogPollFailed(ILogger logger, Exception exception);
}
