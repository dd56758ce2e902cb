using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Gymwire.Features.Sms;

/// <summary>
/// A final status Twilio reported (a signed status callback) for a SID no message carried yet: Twilio can call back
/// before the sender has recorded the SID of a message it just created, or of an uncertain attempt's message before a
/// look-up finds it, and it never posts a callback again. It is applied when a message records the SID, in the same
/// transaction, and deleted; one no message ever records (a message sent from the account by something else) is
/// deleted a day after it came (<see cref="Kept"/>), by the sender's pass.
/// </summary>
public sealed class SmsEarlyStatus
{
    /// <summary>How long a status for a SID no message carries is kept.</summary>
    public static readonly TimeSpan Kept = TimeSpan.FromDays(1);

    public Guid Id { get; set; }
    public required string ProviderMessageId { get; set; }
    /// <summary><c>delivered</c> or <c>undelivered</c>, as the message would become.</summary>
    public required string Status { get; set; }
    /// <summary>An undelivered one's error (<see cref="TwilioStatusCallbacks.UndeliveredError"/>).</summary>
    public string? Error { get; set; }
    public DateTime ReceivedAt { get; set; }
}

internal sealed class SmsEarlyStatusConfiguration : IEntityTypeConfiguration<SmsEarlyStatus>
{
    public void Configure(EntityTypeBuilder<SmsEarlyStatus> b)
    {
        b.ToTable("sms_early_statuses");
        b.Property(x => x.ProviderMessageId).HasMaxLength(100);
        b.Property(x => x.Status).HasMaxLength(16);
        b.Property(x => x.Error).HasMaxLength(1000);
        b.HasIndex(x => x.ProviderMessageId);
        b.HasIndex(x => x.ReceivedAt);
    }
}
