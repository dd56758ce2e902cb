namespace Gymwire.Features.Webhooks;

/// <summary>
/// Reads the due queue's depth and the endpoints' state into <see cref="DeliveryMetrics"/>'s gauges every
/// <see cref="Interval"/>, and only while someone listens to them. Apart from the worker's loop, so that a busy worker
/// never waits on these counts, and so that a scrape never queries the database.
/// </summary>
public sealed partial class DeliveryGauges(IDeliveryQueue queue, DeliveryMetrics metrics, TimeProvider clock, ILogger<DeliveryGauges> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, clock);
        do
        {
            if (!metrics.GaugesEnabled)
            {
                continue;
            }
            try
            {
                var depth = await queue.DepthAsync(stoppingToken);
                var now = clock.GetUtcNow().UtcDateTime;
                metrics.ReportQueue(depth.Due, depth.OldestDueAt is { } oldest ? now - oldest : TimeSpan.Zero);
                metrics.ReportEndpoints(depth.PausedSubscriptions, depth.FailingSubscriptions);
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                // The gauges keep their last values; the next tick tries again.
                LogReadFailed(logger, e);
            }
        }
        while (await WaitAsync(timer, stoppingToken));
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken ct)
    {
        try
        {
            return await timer.WaitForNextTickAsync(ct);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [LoggerMessage(EventId = 5220, Level = LogLevel.Warning, Message = "Could not read the delivery queue's depth for the gauges; trying again in 5 s")]
    private static partial void LogReadFailed(ILogger logger, Exception exception);
}
