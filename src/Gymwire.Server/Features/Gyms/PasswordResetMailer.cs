using System.Threading.Channels;
using Gymwire.Features.Email;

namespace Gymwire.Features.Gyms;

/// <summary>
/// Sends password-reset links one after another, in the background, so that the "forgot password" page answers a known
/// address as fast as an unknown one. A link lost with the process (it is in memory) is asked for again; the page's
/// limits bound what can wait here.
/// </summary>
public sealed partial class PasswordResetMailer(IEmailSender sender, ILogger<PasswordResetMailer> logger) : BackgroundService
{
    private readonly Channel<(Guid OwnerId, EmailMessage Message)> _waiting = Channel.CreateUnbounded<(Guid, EmailMessage)>(new UnboundedChannelOptions { SingleReader = true });

    public void Enqueue(Guid ownerId, EmailMessage message) => _waiting.Writer.TryWrite((ownerId, message));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var (ownerId, message) in _waiting.Reader.ReadAllAsync(stoppingToken))
            {
                try
                {
                    await sender.SendAsync(message, stoppingToken);
                    LogSent(logger, ownerId);
                }
                catch (EmailException e)
                {
                    LogSendFailed(logger, ownerId, e.Message);
                }
                // Anything else is this one link's failure too: a fault here would end the service, and the host's
                // default (StopHost) would stop the whole server, from an anonymous form.
                catch (Exception e) when (!(e is OperationCanceledException && stoppingToken.IsCancellationRequested))
                {
                    LogSendError(logger, e, ownerId);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(EventId = 7050, Level = LogLevel.Information, Message = "Password reset link sent to owner {OwnerId}")]
    private static partial void LogSent(ILogger logger, Guid ownerId);

    [LoggerMessage(EventId = 7056, Level = LogLevel.Error, Message = "Password reset link for owner {OwnerId} not sent: an unexpected error")]
    private static partial void LogSendError(ILogger logger, Exception exception, Guid ownerId);

    [LoggerMessage(EventId = 7052, Level = LogLevel.Warning, Message = "Password reset link for owner {OwnerId} not sent: {Reason}")]
    private static partial void LogSendFailed(ILogger logger, Guid ownerId, string reason);
}
