using Microsoft.EntityFrameworkCore.ChangeTracking;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Gymwire.Data;

// Webhook tables. Per-gym reads use indexes that hold gym_id beside what they filter on; the workers' claim uses a partial
// index that holds only deliveries still waiting for an attempt, so it stays small however much history accumulates.

internal sealed class WebhookSubscriptionConfiguration : IEntityTypeConfiguration<WebhookSubscription>
{
    public void Configure(EntityTypeBuilder<WebhookSubscription> b)
    {
        b.ToGymTable("webhook_subscriptions");
        b.Property(x => x.Url).HasMaxLength(2048);
        b.Property(x => x.Description).HasMaxLength(WebhookService.MaxDescription);
        b.Property(x => x.Events).HasMaxLength(2000).HasConversion(
            v => string.Join(' ', v),
            v => v.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList(),
            new ValueComparer<List<string>>((a, c) => a!.SequenceEqual(c!), v => v.Aggregate(0, (h, s) => HashCode.Combine(h, s.GetHashCode(StringComparison.Ordinal))), v => v.ToList()));
        b.Property(x => x.SecretProtected).HasMaxLength(2000);
        b.Property(x => x.PreviousSecretProtected).HasMaxLength(2000);
        b.Property(x => x.DisabledReason).HasMaxLength(500);
        b.Ignore(x => x.Health);
        b.HasIndex(x => new { x.GymId, x.CreatedAt });
    }
}

internal sealed class WebhookDeliveryConfiguration : IEntityTypeConfiguration<WebhookDelivery>
{
    public void Configure(EntityTypeBuilder<WebhookDelivery> b)
    {
        // A delivery is sent its stored body, or its outbox event's: it has one or the other.
        // Its triggers keep webhook_delivery_counts (DeliveryCountTriggers); naming them tells EF Core not to read
        // inserted rows back with RETURNING, which SQLite does not allow on a table with triggers.
        b.ToTable("webhook_deliveries", t =>
        {
            t.HasCheckConstraint("ck_webhook_deliveries_body", "payload IS NOT NULL OR event_id IS NOT NULL");
            t.HasTrigger(DeliveryCountTriggers.Insert);
            t.HasTrigger(DeliveryCountTriggers.Update);
            t.HasTrigger(DeliveryCountTriggers.Delete);
        });
        // PostgreSQL: a queue table. Every delivery row is updated when it is claimed and when its attempt is recorded,
        // and the claim walks the due index, through the dead entries those updates leave until a vacuum removes
        // them. So vacuum it once 2% of its rows (not the default 20%) are dead, and without cost throttling.
        b.HasStorageParameter("autovacuum_vacuum_scale_factor", 0.02);
        b.HasStorageParameter("autovacuum_vacuum_threshold", 1000);
        b.HasStorageParameter("autovacuum_vacuum_cost_delay", 0);
        // Room on each page for a row's next versions (claimed, then recorded), so they stay on its page. Neither is a
        // HOT update: a claim moves next_attempt_at to the end of its lease (out of the due index's head), and the
        // recorder sets it again (docs/benchmark-findings.md, M4).
        b.HasStorageParameter("fillfactor", 80);
        // Vacuum never cuts the file down: a queue emptied and vacuumed to no pages made connections plan the attempts'
        // foreign-key check as a table scan and keep that plan while the queue refilled (docs/benchmark-findings.md,
        // M6 isolation). The cut also takes an exclusive lock that stalls every claim.
        b.HasStorageParameter("vacuum_truncate", false);
        b.Property(x => x.Event).HasMaxLength(64);
        b.Property(x => x.Status).HasMaxLength(16);
        b.Property(x => x.LastError).HasMaxLength(WebhookAttempt.MaxErrorLength);
        b.HasOne<Gym>().WithMany().HasForeignKey(x => x.GymId).OnDelete(DeleteBehavior.Cascade);
        b.HasOne<WebhookSubscription>().WithMany().HasForeignKey(x => x.SubscriptionId).OnDelete(DeleteBehavior.Cascade);
        // Every index here is one more B-tree insert per fanned-out delivery, so there are as few as the queries need,
        // and only one is led by the subscription: an event's fan-out writes one entry per subscription, each on a page
        // of its own in such an index, and SQLite's commit writes every page it changed.
        // The delivery log, retention (which walks it subscription by subscription) and the subscription's cascade. The
        // gym is in it because every query names both: without it, each row's gym is checked in the table, and with
        // statistics SQLite's planner then prefers scanning the table. Status stays out of it, so recording an attempt's
        // outcome leaves this index alone.
        b.HasIndex(x => new { x.SubscriptionId, x.GymId, x.CreatedAt });
        // Fan-out is idempotent: one delivery per (event, subscription). Led by the gym and then the event, whose ids
        // grow with time, an event's fan-out lands on one page; it is also the gym's cascade and the activity page's lookup.
        b.HasIndex(x => new { x.GymId, x.EventId, x.SubscriptionId }).IsUnique();
        // The workers' work list.
        b.HasIndex(x => x.NextAttemptAt).HasFilter("status IN ('pending', 'retrying')").HasDatabaseName("ix_webhook_deliveries_due");
    }
}

internal sealed class DeliveryCountConfiguration : IEntityTypeConfiguration<DeliveryCount>
{
    public void Configure(EntityTypeBuilder<DeliveryCount> b)
    {
        // No foreign keys: the triggers write it while the deliveries of a deleted gym or subscription are deleted.
        b.ToTable("webhook_delivery_counts");
        b.HasKey(x => new { x.GymId, x.SubscriptionId, x.Bucket, x.Slot });
    }
}

internal sealed class WebhookAttemptConfiguration : IEntityTypeConfiguration<WebhookAttempt>
{
    public void Configure(EntityTypeBuilder<WebhookAttempt> b)
    {
        b.ToGymTable("webhook_attempts");
        b.Property(x => x.Error).HasMaxLength(WebhookAttempt.MaxErrorLength);
        b.Property(x => x.ResponseHeaders).HasMaxLength(WebhookAttempt.MaxResponseHeadersLength);
        b.Property(x => x.Trigger).HasMaxLength(16);
        b.HasOne<WebhookDelivery>().WithMany().HasForeignKey(x => x.DeliveryId).OnDelete(DeleteBehavior.Cascade);
        b.HasIndex(x => new { x.GymId, x.DeliveryId, x.Number });
    }
}
