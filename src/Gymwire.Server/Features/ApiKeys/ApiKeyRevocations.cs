namespace Gymwire.Features.ApiKeys;

/// <summary>
/// Revocations made anywhere reach every node's <see cref="ApiKeyCache"/> on PostgreSQL: the revoking
/// transaction sends <c>NOTIFY</c> (delivered only if it commits), and every serving node <c>LISTEN</c>s
/// (<see cref="ApiKeyRevocationChannel"/>).
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
/// The revocation channel on <see cref="PostgresNotifications"/>' connection: evicts the keys notifications name, and
/// clears the cache whenever listening stops or starts again, since revocations sent meanwhile were lost.
/// </summary>
public sealed class ApiKeyRevocationChannel(ApiKeyCache cache) : INotificationChannel
{
    public string Name => ApiKeyRevocations.Channel;

    public bool Enabled => cache.Enabled;

    public void Received(string payload)
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

    public void ListeningChanged(bool listening) => cache.Clear();
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
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var now = await ReadAsync(stoppingToken);
                // The first read clears too: keys cached before it (at start) were checked against a state it has not seen.
                if (seen != now)
                {
                    cache.Clear();
                    if (seen is not null)
                    {
                        LogCleared(logger);
                    }
                }
                seen = now;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The database is unreachable or busy: trust nothing cached meanwhile, and try again. The last state read
                // stays: a revocation made meanwhile changes it, so the next read that succeeds clears what was cached since.
                cache.Clear();
                LogPollFailed(logger, e);
            }
            // A stop ends the wait without an exception; the loop's condition then ends the service.
            await Task.Delay(options.Value.RevocationPollInterval, clock, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
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
