using System.Threading.Channels;

namespace Gymwire.Features.Email;

/// <summary>
/// Emails owner notices in the background, one after another, for callers that must not wait for the mail server: the
/// webhook delivery recorder, whose writers record every gym's deliveries (one writer on SQLite), so a slow or hanging
/// SMTP server would stall them all. A notice is sent and recorded as <see cref="OwnerNotifications"/> sends any; like
/// a send cut off by a stop, one still waiting when the process stops is not sent (logged).
/// </summary>
public sealed partial class OwnerNoticeQueue(IServiceScopeFactory scopes, ILogger<OwnerNoticeQueue> logger) : BackgroundService
{
    /// <summary>Notices that may wait; past it (a mail server down while hundreds of webhooks fail) more are logged and dropped.</summary>
    public const int Capacity = 1000;

    private sealed record WebhookDisabledNotice(Guid GymId, Guid SubscriptionId, string Url, string Reason);

    private readonly Channel<WebhookDisabledNotice> _waiting = Channel.CreateBounded<WebhookDisabledNotice>(
        new BoundedChannelOptions(Capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });

    /// <summary>Queues <see cref="OwnerNotifications.WebhookDisabledAsync"/>; returns at once.</summary>
    public void WebhookDisabled(Guid gymId, Guid subscriptionId, string webhookUrl, string reason)
    {
        if (!_waiting.Writer.TryWrite(new WebhookDisabledNotice(gymId, subscriptionId, webhookUrl, reason)))
        {
            LogDropped(logger, subscriptionId, gymId);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var notice in _waiting.Reader.ReadAllAsync(stoppingToken))
            {
                try
                {
                    await using var scope = scopes.CreateAsyncScope();
                    await scope.ServiceProvider.GetRequiredService<OwnerNotifications>()
                        .WebhookDisabledAsync(notice.GymId, notice.Url, notice.Reason, stoppingToken);
                }
                // One notice's failure (a database error recording it) must not end the sender, nor, by faulting it, the host.
                catch (Exception e) when (!(e is OperationCanceledException && stoppingToken.IsCancellationRequested))
                {
                    LogNoticeFailed(logger, notice.SubscriptionId, e);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(EventId = 8321, Level = LogLevel.Error, Message = "Could not email the owners that webhook {SubscriptionId} was disabled")]
    private static partial void LogNoticeFailed(ILogger logger, Guid subscriptionId, Exception exception);

    [LoggerMessage(EventId = 8322, Level = LogLevel.Error, Message = "Too many owner notices waiting: the one that webhook {SubscriptionId} of gym {GymId} was disabled is not emailed")]
    private static partial void LogDropped(ILogger logger, Guid subscriptionId, Guid gymId);
}
