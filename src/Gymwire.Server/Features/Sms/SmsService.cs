using System.Linq.Expressions;

namespace Gymwire.Features.Sms;

/// <summary>Queueing messages for the SMS connector: used by the Zapier <c>send_sms</c> action.</summary>
public static class SmsService
{
    public const int MaxLength = 1600;

    public static string? Validate(SendSmsRequest request) => new RequestValidator()
        .Required(request.Phone, "phone", 32).Phone(request.Phone, "phone")
        .Check(!string.IsNullOrEmpty(request.Message), "'message' is required")
        .Check(request.Message is null || request.Message.Length <= MaxLength, $"'message' must be at most {MaxLength} characters")
        .Error;

    /// <summary>Queues a (validated) message for the SMS connector. With no provider configured it stays queued, visible.</summary>
    public static SmsMessage Queue(GymwireDbContext db, Guid gymId, SendSmsRequest request, DateTime now)
    {
        var message = new SmsMessage
        {
            Id = Guid.CreateVersion7(now), GymId = gymId, Phone = request.Phone!, Message = request.Message!,
            Status = SmsStatuses.Queued, CreatedAt = now,
        };
        db.SmsMessages.Add(message);
        return message;
    }

    public static readonly Expression<Func<SmsMessage, SmsDto>> ToDto =
        m => new SmsDto(m.Id, m.Phone, m.Message, m.Status, m.ProviderMessageId, m.Error, m.CreatedAt, m.SentAt);

    // The same mapping in memory, for rows already loaded.
    public static readonly Func<SmsMessage, SmsDto> Map = ToDto.Compile();
}
