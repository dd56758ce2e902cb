namespace Gymwire.Features.Webhooks;

/// <summary>
/// How many of a subscription's deliveries created in one quarter hour are in each status now: the roll-up the
/// dashboard's health panel reads (a week is at most 672 rows per webhook, however many deliveries it had).
/// Database triggers on <c>webhook_deliveries</c> keep it (<see cref="Data.DeliveryCountTriggers"/>): every insert, status
/// change and delete, whoever makes it (fan-out, the recorder, redelivery, retention, a cascade), adjusts it in the
/// same statement, so it cannot drift from the rows. Quarter hours because every time zone's hours and days start on one.
/// </summary>
public sealed class DeliveryCount
{
    public Guid GymId { get; set; }
    public Guid SubscriptionId { get; set; }
    /// <summary>The start of the quarter hour (UTC) in which the deliveries were created.</summary>
    public DateTime Bucket { get; set; }
    /// <summary>
    /// Where writers run concurrently, the database session that wrote the row, so concurrent transactions each add to
    /// a row of their own and never wait on (or deadlock over) a shared counter; a bucket's figures are the sum over its
    /// slots, and a slot may hold negative numbers. With one writer at a time, always 0.
    /// </summary>
    public int Slot { get; set; }
    public int Delivered { get; set; }
    public int Retrying { get; set; }
    public int Undeliverable { get; set; }
    public int Pending { get; set; }
}
