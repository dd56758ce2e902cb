using Gymwire.Data;
using Microsoft.EntityFrameworkCore;
using Gymwire.Features.Zapier;
using Microsoft.Extensions.Options;

namespace Gymwire.Features.Webhooks;

/// <summary>
/// Deletes finished deliveries (and, by cascade, their attempts) older than <c>Webhooks:DeliveryRetention</c>, and
/// <c>Idempotency-Key</c> records past their window, hourly and in small batches, so neither grows without bound.
/// Runs with the dispatcher role.
/// </summary>
public sealed partial class WebhookRetention(
    IServiceScopeFactory scopes,
    IOptions<WebhookOptions> options,
    TimeProvider clock,
    ILogger<WebhookRetention> logger) : BackgroundService
{
    private const int BatchSize = 1000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromHours(1), clock, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            // Each on its own: one failing does not keep the other from running.
            await RunAsync(PurgeAsync, stoppingToken);
            await RunAsync(PurgeIdempotencyRecordsAsync, stoppingToken);
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
    /// Deletes what is past retention: finished deliveries, and test sends whatever their status (one is never due, so a
    /// test send left pending by a server stopped mid-send would stay forever); returns how many deliveries went. It
    /// walks one subscription at a time, by the delivery log's own index (subscription, gym, created_at): a separate
    /// index on created_at for this hourly job would cost every fanned-out delivery one more B-tree insert.
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
                var batch = db.WebhookDeliveries
                    .Where(d => d.GymId == gymId && d.SubscriptionId == subscriptionId && d.CreatedAt < cutoff
                        && (d.Status == DeliveryStatus.Delivered || d.Status == DeliveryStatus.Undeliverable || d.IsTest))
                    .OrderBy(d => d.CreatedAt).Take(BatchSize).Select(d => d.Id);
                return db.WebhookDeliveries.Where(d => batch.Contains(d.Id)).ExecuteDeleteAsync(ct2);
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

    [LoggerMessage(EventId = 5302, Level = LogLevel.Information, Message = "Deleted {Count} expired idempotency records")]
    private static partial void LogIdempotencyPurged(ILogger logger, int count);

    [LoggerMessage(EventId = 5300, Level = LogLevel.Information, Message = "Deleted {Count} webhook deliveries past retention")]
    private static partial void LogPurged(ILogger logger, int count);

    [LoggerMessage(EventId = 5301, Level = LogLevel.Error, Message = "Retention clean-up failed; retrying in an hour")]
    private static partial void LogPurgeFailed(ILogger logger, Exception exception);
}
