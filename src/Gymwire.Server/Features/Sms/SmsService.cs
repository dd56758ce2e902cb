using System.Linq.Expressions;

namespace Gymwire.Features.Sms;

public enum SmsRetryFailure
{
    NotFound = 1,
    Conflict,
}

/// <summary>What a retry did: the message, queued again, or why it was not (in words fit for an owner).</summary>
public sealed record SmsRetryOutcome(SmsMessage? Message, SmsRetryFailure? Failure = null, string Error = "")
{
    public static SmsRetryOutcome Fail(SmsRetryFailure failure, string error) => new(null, failure, error);
}

/// <summary>Queueing messages for the SMS connector: used by the Zapier <c>send_sms</c> action and the owner's retry.</summary>
public static class SmsService
{
    public const int MaxLength = 1600;

    // The phone is taken trimmed, as create_lead takes one; a message of only spaces would be sent as a blank text.
    public static string? Validate(SendSmsRequest request) => new RequestValidator()
        .Required(request.Phone, "phone", 32).Phone(request.Phone?.Trim(), "phone")
        .Check(!string.IsNullOrWhiteSpace(request.Message), "'message' is required")
        .Check(request.Message is null || request.Message.Length <= MaxLength, $"'message' must be at most {MaxLength} characters")
        .Error;

    /// <summary>Queues a (validated) message for the SMS connector. With no provider configured it stays queued, visible.</summary>
    public static SmsMessage Queue(GymwireDbContext db, Guid gymId, SendSmsRequest request, DateTime now)
    {
        var message = new SmsMessage
        {
            Id = Guid.CreateVersion7(now), GymId = gymId, Phone = request.Phone!.Trim(), Message = request.Message!,
            Status = SmsStatuses.Queued, CreatedAt = now,
        };
        db.SmsMessages.Add(message);
        return message;
    }

    /// <summary>
    /// Queues a failed or undelivered message of this gym again. The update only applies while the message is still as
    /// it was read, so of two retries at once (a double click) one queues it and the other gets a conflict, instead of
    /// queueing it a second time while the sender is already sending it.
    /// </summary>
    public static async Task<SmsRetryOutcome> RetryAsync(
        GymwireDbContext db, SqliteWriteGate gate, SmsSignal signal, Guid gymId, Guid id, CancellationToken ct)
    {
        var message = await db.SmsMessages.AsNoTracking().FindInGymAsync(id, gymId, ct);
        if (message is null)
        {
            return SmsRetryOutcome.Fail(SmsRetryFailure.NotFound, "SMS message not found");
        }
        string? status = message.Status;
        if (status is SmsStatuses.Failed or SmsStatuses.Undelivered)
        {
            // Twilio took an undelivered message's last send and said what became of it, so no attempt of it is in doubt:
            // it is sent again without a look-up, which would find that send. A failed one keeps its doubt.
            var undelivered = status == SmsStatuses.Undelivered;
            int queued;
            using (await gate.EnterAsync(db, ct))
            {
                // A deliberate owner decision: the attempt counter starts again; the last error (and an undelivered
                // message's provider id) stays until the next attempt.
                queued = await db.SmsMessages.Where(m => m.Id == id && m.GymId == gymId && m.Status == status)
                    .ExecuteUpdateAsync(s =>
                    {
                        s.SetProperty(m => m.Status, SmsStatuses.Queued).SetProperty(m => m.Attempts, 0).SetProperty(m => m.NextAttemptAt, (DateTime?)null);
                        if (undelivered)
                        {
                            s.SetProperty(m => m.UncertainSince, (DateTime?)null);
                        }
                    }, ct);
            }
            if (queued == 1)
            {
                message.Status = SmsStatuses.Queued;
                message.Attempts = 0;
                message.NextAttemptAt = null;
                message.UncertainSince = undelivered ? null : message.UncertainSince;
                signal.Notify();
                return new(message);
            }
            // Another retry queued it (or a late delivery receipt changed it) between the read and the update.
            status = await db.SmsMessages.Where(m => m.Id == id && m.GymId == gymId).Select(m => m.Status).FirstOrDefaultAsync(ct);
            if (status is null)
            {
                return SmsRetryOutcome.Fail(SmsRetryFailure.NotFound, "SMS message not found");
            }
        }
        return SmsRetryOutcome.Fail(SmsRetryFailure.Conflict, $"Only failed or undelivered messages can be retried; this one is {status}");
    }

    public static readonly Expression<Func<SmsMessage, SmsDto>> ToDto =
        m => new SmsDto(m.Id, m.Phone, m.Message, m.Status, m.ProviderMessageId, m.Error, m.CreatedAt, m.SentAt);

    // The same mapping in memory, for rows already loaded.
    public static readonly Func<SmsMessage, SmsDto> Map = ToDto.Compile();
}
