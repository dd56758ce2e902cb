using System.Threading.Channels;

namespace Gymwire.Features.Email;

/// <summary>
/// Emails owner notices in the background, one after another, for callers that must not wait for the mail server: the
/// webhook delivery recorder, whose writers record every gym's deliveries (one writer on SQLite), so a slow or hanging
/// SMTP server would stall them all, and the API-key sweep, which goes on to other keys. A notice is sent and recorded
/// as <see cref="OwnerNotifications"/> sends any; like a send cut off by a stop, one still waiting when the process
/// stops is not sent (logged).
/// </summary>
public sealed partial class OwnerNoticeQueue(IServiceScopeFactory scopes, ILogger<OwnerNoticeQueue> logger) : BackgroundService
{
    /// <summary>Notices that may wait; past it (a mail server down while hundreds of webhooks fail) more are logged and dropped.</summary>
    public const int Capacity = 1000;

    /// <summary>A queued notice: how to send it, and how to log that sending it failed.</summary>
    private sealed record Notice(Func<OwnerNotifications, CancellationToken, Task<bool>> Send, Action<Exception> LogFailed);

    private readonly Channel<Notice> _waiting = Channel.CreateBounded<Notice>(
        new BoundedChannelOptions(Capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });

    /// <summary>Queues <see cref="OwnerNotifications.WebhookDisabledAsync"/>; returns at once.</summary>
    public void WebhookDisabled(Guid gymId, Guid subscriptionId, string webhookUrl, string reason)
    {
        if (!_waiting.Writer.TryWrite(new Notice((n, ct) => n.WebhookDisabledAsync(gymId, webhookUrl, reason, ct), e => LogNoticeFailed(logger, subscriptionId, e))))
        {
            LogDropped(logger, subscriptionId, gymId);
        }
    }

    /// <summary>Queues <see cref="OwnerNotifications.KeyWebhooksDeactivatedAsync"/>; returns at once.</summary>
    public void KeyWebhooksDeactivated(KeyWebhooksNotice notice)
    {
        if (!_waiting.Writer.TryWrite(new Notice((n, ct) => n.KeyWebhooksDeactivatedAsync(notice, ct), e => LogKeyNoticeFailed(logger, notice.KeyId, e))))
        {
            LogKeyNoticeDropped(logger, notice.KeyId, notice.GymId);
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
                    await notice.Send(scope.ServiceProvider.GetRequiredService<OwnerNotifications>(), stoppingToken);
                }
                // One notice's failure (a database error recording it) must not end the sender, nor, by faulting it, the host.
                catch (Exception e) when (!(e is OperationCanceledException && stoppingToken.IsCancellationRequested))
                {
                    notice.LogFailed(e);
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

    [LoggerMessage(EventId = 8323, Level = LogLevel.Error, Message = "Could not email the owners that the webhooks of API key {KeyId} were disabled")]
    private static partial void LogKeyNoticeFailed(ILogger logger, Guid keyId, Exception exception);

    [LoggerMessage(EventId = 8324, Level = LogLevel.Error, Message = "Too many owner notices waiting: the one that the webhooks of API key {KeyId} of gym {GymId} were disabled is not emailed")]
    private static partial void LogKeyNoticeDropped(ILogger logger, Guid keyId, Guid gymId);
}
