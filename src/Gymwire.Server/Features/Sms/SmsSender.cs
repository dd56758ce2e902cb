using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Gymwire.Features.Sms;

/// <summary>Wakes the SMS sender when a message is queued, so it does not wait for a poll.</summary>
public sealed class SmsSignal : WakeSignal;

/// <summary>
/// Drains the SMS queue through the configured provider: claim (<c>queued</c> → <c>sending</c>, a conditional update,
/// so two nodes never claim one message) → send → record <c>sent</c> with the provider's id, or <c>failed</c>, or back
/// to <c>queued</c> with a later due time after a transient failure.
/// <para>
/// Nothing is sent twice after a restart: a message is only sent after its claim committed, and its outcome is
/// recorded right after. A message still <c>sending</c> when its claim lapsed belongs to a sender that died between
/// the two; whether the provider got it is unknown and Twilio has no idempotency key for messages, so it is not
/// resent blindly: it is marked <c>failed</c> with an error saying so, for the owner to check and resend.
/// </para>
/// <para>
/// An attempt whose outcome is unknown (a timeout, a 5xx, an interrupted send) sets <see cref="SmsMessage.UncertainSince"/>,
/// and the provider looks for the message before it sends it again (Twilio: in its list of messages to the number).
/// </para>
/// <para>
/// Every write takes <see cref="SqliteWriteGate"/> first, as every SQLite writer in the process does. Recording a
/// provider id also applies the statuses Twilio reported for it before (<see cref="SmsEarlyStatus"/>), in the same
/// transaction; each pass deletes those no message recorded within <see cref="SmsEarlyStatus.Kept"/>.
/// </para>
/// </summary>
public sealed partial class SmsSender(
    IServiceScopeFactory scopes, SmsSignal signal, SqliteWriteGate gate, TimeProvider clock, IOptions<SmsOptions> options, SmsMetrics metrics,
    ILogger<SmsSender> logger)
    : BackgroundService
{
    private const int BatchSize = 20;
    public const string InterruptedError =
        "Interrupted while sending (the server stopped): the provider may or may not have sent it, so it was not resent. Check the provider's log and queue it again if needed.";

    private SmsOptions Options => options.Value;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (Options.Provider.Length == 0 || !Options.SenderEnabled)
        {
            return; // No provider: messages stay queued, visible; the SMS tile says why.
        }
        while (!stoppingToken.IsCancellationRequested)
        {
            TimeSpan wait;
            try
            {
                wait = await RunOnceAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogCycleFailed(logger, e);
                wait = Options.PollInterval;
            }
            if (wait <= TimeSpan.Zero)
            {
                continue;
            }
            using var wake = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            var signalled = signal.WaitAsync(wake.Token);
            var timer = Task.Delay(wait, clock, wake.Token);
            await Task.WhenAny(signalled, timer);
            await wake.CancelAsync();
            try
            {
                // A cancelled semaphore wait takes nothing, so a signal that arrives now is kept for the next pass.
                await Task.WhenAll(signalled, timer);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    /// <summary>One pass: recover lapsed claims, send what is due. Returns how long to wait before the next pass.</summary>
    internal async Task<TimeSpan> RunOnceAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GymwireDbContext>();
        var provider = scope.ServiceProvider.GetRequiredService<ISmsProvider>();
        var now = clock.GetUtcNow().UtcDateTime;

        int interrupted;
        using (await gate.EnterAsync(db, ct))
        {
            interrupted = await db.SmsMessages
                .Where(m => m.Status == SmsStatuses.Sending && m.ClaimedUntil != null && m.ClaimedUntil < now)
                .ExecuteUpdateAsync(s => s.SetProperty(m => m.Status, SmsStatuses.Failed).SetProperty(m => m.Error, InterruptedError)
                    .SetProperty(m => m.UncertainSince, m => m.UncertainSince ?? m.LastAttemptAt).SetProperty(m => m.ClaimedUntil, (DateTime?)null), ct);
            var expired = now - SmsEarlyStatus.Kept;
            await db.SmsEarlyStatuses.Where(e => e.ReceivedAt < expired).ExecuteDeleteAsync(ct);
        }
        if (interrupted > 0)
        {
            LogInterrupted(logger, interrupted);
        }

        var due = await db.SmsMessages.AsNoTracking()
            .Where(m => m.Status == SmsStatuses.Queued && (m.NextAttemptAt == null || m.NextAttemptAt <= now))
            .OrderBy(m => m.CreatedAt).Select(m => m.Id).Take(BatchSize).ToListAsync(ct);
        foreach (var id in due)
        {
            await SendOneAsync(db, provider, id, ct);
        }
        if (due.Count == BatchSize)
        {
            return TimeSpan.Zero;
        }
        now = clock.GetUtcNow().UtcDateTime;
        var next = await db.SmsMessages.AsNoTracking().Where(m => m.Status == SmsStatuses.Queued && m.NextAttemptAt != null)
            .MinAsync(m => m.NextAttemptAt, ct);
        var untilNext = next is { } n ? n - now : Options.PollInterval;
        return untilNext < Options.PollInterval ? (untilNext < TimeSpan.Zero ? TimeSpan.Zero : untilNext) : Options.PollInterval;
    }

    private async Task SendOneAsync(GymwireDbContext db, ISmsProvider provider, Guid id, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        // The lease outlives the provider's requests (a look-up for an uncertain earlier attempt, then the send, each
        // within the timeout) by a margin, so a live sender is never mistaken for a dead one.
        var claimedUntil = now + 2 * Options.RequestTimeout + TimeSpan.FromMinutes(1);
        // Shutdown stops the batch before a claim, never between a claim and its send: a claim left without its send
        // would lapse into "may have been sent", the owner's to check, for a message that never left.
        int claimed;
        using (await gate.EnterAsync(db, ct))
        {
            ct.ThrowIfCancellationRequested();
            claimed = await db.SmsMessages.Where(m => m.Id == id && m.Status == SmsStatuses.Queued)
                .ExecuteUpdateAsync(s => s.SetProperty(m => m.Status, SmsStatuses.Sending).SetProperty(m => m.Attempts, m => m.Attempts + 1)
                    .SetProperty(m => m.ClaimedUntil, claimedUntil).SetProperty(m => m.LastAttemptAt, now), CancellationToken.None);
        }
        if (claimed == 0)
        {
            return; // Another node took it.
        }
        var message = await db.SmsMessages.AsNoTracking().FirstAsync(m => m.Id == id, CancellationToken.None);
        SmsSendResult result;
        try
        {
            // Not cancelled by shutdown: the request is bounded by Sms:RequestTimeout, and finishing it lets the
            // outcome be recorded instead of leaving the message for review.
            result = await provider.SendAsync(message, (ids, c) => RecordedElsewhereAsync(db, id, ids, c), CancellationToken.None);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogProviderThrew(logger, id, e);
            result = SmsSendResult.RetryUncertain($"{provider.Name} failed unexpectedly");
        }

        // Recording must not be abandoned half-way because the host is stopping: the send already happened.
        var done = clock.GetUtcNow().UtcDateTime;
        var query = db.SmsMessages.Where(m => m.Id == id && m.Status == SmsStatuses.Sending);
        if (result.Sent)
        {
            try
            {
                var sid = result.ProviderMessageId!;
                string? reported = null;
                using (await gate.EnterAsync(db, CancellationToken.None))
                {
                    await using var tx = await db.Database.BeginTransactionAsync(CancellationToken.None);
                    await TwilioStatusCallbacks.LockSidAsync(db, sid, CancellationToken.None);
                    var recorded = await query.ExecuteUpdateAsync(s => s.SetProperty(m => m.Status, result.Status).SetProperty(m => m.ProviderMessageId, sid)
                        .SetProperty(m => m.SentAt, done).SetProperty(m => m.Error, result.Error).SetProperty(m => m.ClaimedUntil, (DateTime?)null), CancellationToken.None);
                    if (recorded > 0)
                    {
                        reported = await TwilioStatusCallbacks.ApplyEarlyAsync(db, sid, CancellationToken.None);
                    }
                    await tx.CommitAsync(CancellationToken.None);
                }
                LogSent(logger, id, message.Attempts);
                metrics.Sent(SmsMetrics.Outcomes.Sent);
                var delivery = reported ?? result.Status;
                if (delivery != SmsStatuses.Sent)
                {
                    metrics.Delivery(delivery);
                }
                return;
            }
            catch (Exception e) when (ErrorHandling.IsUniqueViolation(e))
            {
                // Only a look-up can name a provider id another message holds: that message's sender recorded it between
                // the look-up and this write, so it is that message's send. This one stays uncertain and is looked up again.
                result = SmsSendResult.RetryUncertain("the provider's message found for an earlier attempt was recorded for another message meanwhile");
            }
        }
        var error = ColumnText.Fit($"Attempt {message.Attempts}: {result.Error}", 1000);
        // From the first uncertain attempt on: any attempt since may be the one the provider accepted.
        var uncertainSince = result.Uncertain ? message.UncertainSince ?? now : message.UncertainSince;
        var retry = result.Configuration
            || (result.Transient && (!result.Uncertain || Options.RetryUncertainFailures) && message.Attempts < Options.MaxAttempts);
        using var turn = await gate.EnterAsync(db, CancellationToken.None);
        if (retry)
        {
            var delay = Backoff(message.Attempts);
            await query.ExecuteUpdateAsync(s => s.SetProperty(m => m.Status, SmsStatuses.Queued).SetProperty(m => m.Error, error)
                .SetProperty(m => m.NextAttemptAt, done + delay).SetProperty(m => m.UncertainSince, uncertainSince)
                .SetProperty(m => m.ClaimedUntil, (DateTime?)null), CancellationToken.None);
            LogRetrying(logger, id, message.Attempts, delay);
            metrics.Sent(SmsMetrics.Outcomes.Retrying);
            return;
        }
        await query.ExecuteUpdateAsync(s => s.SetProperty(m => m.Status, SmsStatuses.Failed).SetProperty(m => m.Error, error)
            .SetProperty(m => m.UncertainSince, uncertainSince).SetProperty(m => m.ClaimedUntil, (DateTime?)null), CancellationToken.None);
        LogFailed(logger, id, message.Attempts);
        metrics.Sent(SmsMetrics.Outcomes.Failed);
    }

    /// <summary>
    /// Of these provider ids, those other messages carry. Every gym sends through one provider account, so this looks
    /// at all gyms' messages.
    /// </summary>
    private static async Task<IReadOnlySet<string>> RecordedElsewhereAsync(GymwireDbContext db, Guid id, IReadOnlyCollection<string> providerMessageIds, CancellationToken ct)
    {
        var recorded = await db.SmsMessages.AsNoTracking()
            .Where(m => m.Id != id && m.ProviderMessageId != null && providerMessageIds.Contains(m.ProviderMessageId))
            .Select(m => m.ProviderMessageId!).ToListAsync(ct);
        return recorded.ToHashSet(StringComparer.Ordinal);
    }

    internal TimeSpan Backoff(int attempts)
    {
        var delay = Options.RetryDelay * Math.Pow(2, Math.Min(attempts - 1, 16));
        return delay > TimeSpan.FromHours(1) ? TimeSpan.FromHours(1) : delay;
    }


    [LoggerMessage(EventId = 8201, Level = LogLevel.Information, Message = "SMS {MessageId} sent on attempt {Attempt}")]
    private static partial void LogSent(ILogger logger, Guid messageId, int attempt);

    [LoggerMessage(EventId = 8204, Level = LogLevel.Warning, Message = "SMS {MessageId} failed on attempt {Attempt}; retrying in {Delay}")]
    private static partial void LogRetrying(ILogger logger, Guid messageId, int attempt, TimeSpan delay);

    [LoggerMessage(EventId = 8205, Level = LogLevel.Warning, Message = "SMS {MessageId} failed for good after {Attempts} attempt(s)")]
    private static partial void LogFailed(ILogger logger, Guid messageId, int attempts);

    [LoggerMessage(EventId = 8206, Level = LogLevel.Warning, Message = "{Count} SMS message(s) were interrupted mid-send by a stopped server; marked failed for review, not resent")]
    private static partial void LogInterrupted(ILogger logger, int count);

    [LoggerMessage(EventId = 8207, Level = LogLevel.Error, Message = "The SMS provider threw while sending {MessageId}")]
    private static partial void LogProviderThrew(ILogger logger, Guid messageId, Exception exception);

    [LoggerMessage(EventId = 8208, Level = LogLevel.Error, Message = "An SMS sender pass failed; trying again later")]
    private static partial void LogCycleFailed(ILogger logger, Exception exception);
}
