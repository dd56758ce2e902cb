using Gymwire.Data;
using Microsoft.EntityFrameworkCore;
using Gymwire.Features.Zapier;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// Deletes finished deliveries (and, by cascade, their attempts) older than <c>Webhooks:DeliveryRetention</c>,
/// <c>Idempotency-Key</c> records past their window and owner sessions ended more than a day ago, a minute after start
/// and hourly after that, in small batches, so none grows without bound. Runs with the dispatcher role.
/// </summary>
public sealed partial class WebhookRetention(
    IServiceScopeFactory scopes,
    IOptions<WebhookOptions> options,
    TimeProvider clock,
    ILogger<WebhookRetention> logger) : BackgroundService
{
    private const int BatchSize = 1000;

    /// <summary>The first run's delay: soon enough that a node restarted more often than hourly still purges, and after the start's own work.</summary>
    public static readonly TimeSpan FirstRunDelay = TimeSpan.FromMinutes(1);

    public static readonly TimeSpan Interval = TimeSpan.FromHours(1);

    /// <summary>How long an expired or revoked owner session is kept before it is deleted.</summary>
    public static readonly TimeSpan EndedSessionRetention = TimeSpan.FromDays(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = FirstRunDelay;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(delay, clock, stoppingToken);
                delay = Interval;
            }
            catch (OperationCanceledException)
            {
                break;
            }
            // Each on its own: one failing does not keep the other from running.
            await RunAsync(PurgeAsync, stoppingToken);
            await RunAsync(PurgeIdempotencyRecordsAsync, stoppingToken);
            await RunAsync(PurgeOwnerSessionsAsync, stoppingToken);
        }
    }

    private async Task RunAsync(Func<CancellationToken, Task<int>> purge, CancellationToken stoppingToken)
    {
        try
        {
            await purge(stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            LogPurgeFailed(logger, e);
        }
    }

    /// <summary>Runs <paramref name="deleteBatch"/> (at most <see cref="BatchSize"/> rows) until a batch comes back short.</summary>
    private async Task<int> DeleteInBatchesAsync(Func<GymwireDbContext, CancellationToken, Task<int>> deleteBatch, CancellationToken ct)
    {
        var total = 0;
        int deleted;
        do
        {
            await using var scope = scopes.CreateAsyncScope();
            deleted = await deleteBatch(scope.ServiceProvider.GetRequiredService<GymwireDbContext>(), ct);
            total += deleted;
        }
        while (deleted == BatchSize);
        return total;
    }

    /// <summary>
    /// Deletes what is past retention: finished deliveries, and test sends that are pending but never due (one left so by
    /// a server stopped mid-send would otherwise stay forever; a redelivered one is due, and queued); returns how many
    /// deliveries went. It walks one subscription at a time, by the delivery log's own index (subscription, gym,
    /// created_at): a separate index on created_at for this hourly job would cost every fanned-out delivery one more B-tree insert.
    /// </summary>
    public async Task<int> PurgeAsync(CancellationToken ct)
    {
        var cutoff = clock.GetUtcNow().UtcDateTime - options.Value.DeliveryRetention;
        List<(Guid GymId, Guid Id)> subscriptions;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
            subscriptions = (await db.WebhookSubscriptions.AsNoTracking().Select(s => new { s.GymId, s.Id }).ToListAsync(ct))
                .Select(s => (s.GymId, s.Id)).ToList();
        }
        var total = 0;
        foreach (var (gymId, subscriptionId) in subscriptions)
        {
            total += await DeleteInBatchesAsync((db, ct2) =>
            {
                var purgeable = db.WebhookDeliveries
                    .Where(d => d.GymId == gymId && d.SubscriptionId == subscriptionId && d.CreatedAt < cutoff
                        && (d.Status == DeliveryStatus.Delivered || d.Status == DeliveryStatus.Undeliverable
                            || (d.IsTest && d.Status == DeliveryStatus.Pending && d.NextAttemptAt == null)));
                var batch = purgeable.OrderBy(d => d.CreatedAt).Take(BatchSize).Select(d => d.Id);
                // The conditions again on the DELETE itself: PostgreSQL, after waiting for a row's lock (a redelivery
                // setting it pending), rechecks only the DELETE's own WHERE on the new row, not the subquery's.
                return purgeable.Where(d => batch.Contains(d.Id)).ExecuteDeleteAsync(ct2);
            }, ct);
        }
        if (total > 0)
        {
            LogPurged(logger, total);
        }
        return total;
    }

    /// <summary>
    /// Deletes <c>Idempotency-Key</c> records older than the window in which a retry replays them: past it they are
    /// never read again (a reused key deletes its own), and an answer they keep can hold personal data (an SMS's phone
    /// and text). Returns how many went.
    /// </summary>
    public async Task<int> PurgeIdempotencyRecordsAsync(CancellationToken ct)
    {
        var cutoff = clock.GetUtcNow().UtcDateTime - ZapierActions.IdempotencyWindow;
        var total = await DeleteInBatchesAsync((db, ct2) =>
        {
            var batch = db.IdempotencyRecords.Where(r => r.CreatedAt < cutoff).OrderBy(r => r.CreatedAt).Take(BatchSize).Select(r => r.Id);
            return db.IdempotencyRecords.Where(r => batch.Contains(r.Id)).ExecuteDeleteAsync(ct2);
        }, ct);
        if (total > 0)
        {
            LogIdempotencyPurged(logger, total);
        }
        return total;
    }

    /// <summary>
    /// Deletes owner sessions (API and dashboard) that expired or were revoked more than
    /// <see cref="EndedSessionRetention"/> ago: every login adds a row, and one that has ended is never valid again.
    /// Returns how many went.
    /// </summary>
    public async Task<int> PurgeOwnerSessionsAsync(CancellationToken ct)
    {
        var cutoff = clock.GetUtcNow().UtcDateTime - EndedSessionRetention;
        var total = await DeleteInBatchesAsync((db, ct2) => OwnerSessions.DeleteEndedBatchAsync(db, cutoff, BatchSize, ct2), ct);
        if (total > 0)
        {
            LogSessionsPurged(logger, total);
        }
        return total;
    }

    [LoggerMessage(EventId = 5303, Level = LogLevel.Information, Message = "Deleted {Count} ended owner sessions")]
    private static partial void LogSessionsPurged(ILogger logger, int count);

    [LoggerMessage(EventId = 5302, Level = LogLevel.Information, Message = "Deleted {Count} expired idempotency records")]
    private static partial void LogIdempotencyPurged(ILogger logger, int count);

    [LoggerMessage(EventId = 5300, Level = LogLevel.Information, Message = "Deleted {Count} webhook deliveries past retention")]
    private static partial void LogPurged(ILogger logger, int count);

    [LoggerMessage(EventId = 5301, Level = LogLevel.Error, Message = "Retention clean-up failed; retrying in an hour")]
    private static partial void LogPurgeFailed(ILogger logger, Exception exception);
}
