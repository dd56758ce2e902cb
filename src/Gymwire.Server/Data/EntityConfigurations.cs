using Gymwire.Features.Attendance;
using Gymwire.Features.Classes;
using Gymwire.Features.Contracts;
using Gymwire.Features.Leads;
using Gymwire.Features.Members;
using Gymwire.Features.Memberships;
using Gymwire.Features.Payments;
using Gymwire.Features.Sms;
using Gymwire.Features.Training;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Gymwire.Data;

// Gym data's tables. Every tenant-owned table has a foreign key to gyms and an index that starts with
// gym_id, so every per-gym query (and the "20 newest" triggers) is an index range scan whatever the table size.

internal static class GymTableBuilder
{
    /// <summary>
    /// Names a tenant-owned table and gives it the foreign key to gyms: deleting a gym deletes its rows. By name, as not
    /// every such entity is an <see cref="IGymRow"/>; EF refuses a model whose entity has no <c>GymId</c>.
    /// </summary>
    public static EntityTypeBuilder<T> ToGymTable<T>(this EntityTypeBuilder<T> b, string name) where T : class
    {
        b.ToTable(name);
        b.HasOne<Gym>().WithMany().HasForeignKey(nameof(IGymRow.GymId)).OnDelete(DeleteBehavior.Cascade);
        return b;
    }
}

internal sealed class GymConfiguration : IEntityTypeConfiguration<Gym>
{
    public void Configure(EntityTypeBuilder<Gym> b)
    {
        b.ToTable("gyms");
        b.Property(x => x.Name).HasMaxLength(200);
        // Existing gyms were UTC in everything they showed and exported.
        b.Property(x => x.TimeZone).HasMaxLength(GymTimeZones.MaxLength).HasDefaultValue(GymTimeZones.Utc);
    }
}

internal sealed class OwnerSessionConfiguration : IEntityTypeConfiguration<OwnerSession>
{
    public void Configure(EntityTypeBuilder<OwnerSession> b)
    {
        b.ToTable("owner_sessions");
        b.HasIndex(x => x.TokenHash).IsUnique();
        b.HasOne<Owner>().WithMany().HasForeignKey(x => x.OwnerId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class OwnerConfiguration : IEntityTypeConfiguration<Owner>
{
    public void Configure(EntityTypeBuilder<Owner> b)
    {
        b.HasOne<Gym>().WithMany().HasForeignKey(x => x.GymId).OnDelete(DeleteBehavior.Cascade);
        b.HasIndex(x => x.GymId);
    }
}

internal sealed class MemberConfiguration : IEntityTypeConfiguration<Member>
{
    public void Configure(EntityTypeBuilder<Member> b)
    {
        b.ToGymTable("members");
        // Of two leaves at once, one commits and the other sees it: member.left fires once.
        b.Property(x => x.LeftAt).IsConcurrencyToken();
        b.Property(x => x.UserId).HasMaxLength(100);
        b.Property(x => x.Name).HasMaxLength(200);
        b.Property(x => x.Email).HasMaxLength(320);
        b.Property(x => x.Phone).HasMaxLength(32);
        b.Property(x => x.Role).HasMaxLength(16);
        b.HasIndex(x => new { x.GymId, x.UserId }).IsUnique();
        b.HasIndex(x => new { x.GymId, x.JoinedAt, x.Id });
    }
}

internal sealed class MembershipPlanConfiguration : IEntityTypeConfiguration<MembershipPlan>
{
    public void Configure(EntityTypeBuilder<MembershipPlan> b)
    {
        b.ToGymTable("membership_plans");
        b.Property(x => x.Name).HasMaxLength(200);
        b.Property(x => x.Interval).HasMaxLength(16);
        b.HasIndex(x => x.GymId);
    }
}

internal sealed class MembershipConfiguration : IEntityTypeConfiguration<Membership>
{
    public void Configure(EntityTypeBuilder<Membership> b)
    {
        b.ToGymTable("memberships");
        b.Property(x => x.UserId).HasMaxLength(100);
        // A concurrency token: of two cancels that both read it active (the API's and Stripe's), one commits.
        b.Property(x => x.Status).HasMaxLength(16).IsConcurrencyToken();
        b.HasOne<MembershipPlan>().WithMany().HasForeignKey(x => x.PlanId).OnDelete(DeleteBehavior.Restrict);
        b.HasIndex(x => new { x.GymId, x.UserId });
    }
}

internal sealed class PaymentConfiguration : IEntityTypeConfiguration<Payment>
{
    public void Configure(EntityTypeBuilder<Payment> b)
    {
        b.ToGymTable("payments");
        b.Property(x => x.UserId).HasMaxLength(100);
        b.Property(x => x.Currency).HasMaxLength(3);
        // A concurrency token: of two refunds that both read it paid (the API's and Stripe's), one commits.
        b.Property(x => x.Status).HasMaxLength(16).IsConcurrencyToken();
        b.Property(x => x.FailureReason).HasMaxLength(500);
        b.HasIndex(x => new { x.GymId, x.CreatedAt, x.Id });
        b.HasIndex(x => new { x.GymId, x.RecordedAt, x.Id });
        // Scheduled reports find a day's refunds by when they were recorded; most payments are never refunded, so only
        // refunded ones are in it.
        b.HasIndex(x => new { x.GymId, x.RefundRecordedAt }).HasFilter("refund_recorded_at IS NOT NULL");
    }
}

internal sealed class TrainingSessionConfiguration : IEntityTypeConfiguration<TrainingSession>
{
    public void Configure(EntityTypeBuilder<TrainingSession> b)
    {
        b.ToGymTable("training_sessions");
        b.Property(x => x.UserId).HasMaxLength(100);
        b.Property(x => x.SessionType).HasMaxLength(50);
        b.HasIndex(x => new { x.GymId, x.CreatedAt, x.Id });
    }
}

internal sealed class AttendanceConfiguration : IEntityTypeConfiguration<AttendanceRecord>
{
    public void Configure(EntityTypeBuilder<AttendanceRecord> b)
    {
        b.ToGymTable("attendance");
        b.Property(x => x.UserId).HasMaxLength(100);
        b.Property(x => x.Status).HasMaxLength(16);
        b.Property(x => x.Source).HasMaxLength(16);
        b.HasOne<ClassSchedule>().WithMany().HasForeignKey(x => x.ClassScheduleId).OnDelete(DeleteBehavior.SetNull);
        b.HasIndex(x => new { x.GymId, x.CheckedInAt, x.Id });
    }
}

internal sealed class ClassScheduleConfiguration : IEntityTypeConfiguration<ClassSchedule>
{
    public void Configure(EntityTypeBuilder<ClassSchedule> b)
    {
        b.ToGymTable("class_schedules");
        b.Property(x => x.Title).HasMaxLength(200);
        b.Property(x => x.Discipline).HasMaxLength(50);
        b.HasIndex(x => new { x.GymId, x.CreatedAt, x.Id });
    }
}

internal sealed class LeadConfiguration : IEntityTypeConfiguration<Lead>
{
    public void Configure(EntityTypeBuilder<Lead> b)
    {
        b.ToGymTable("leads");
        b.Property(x => x.FirstName).HasMaxLength(200);
        b.Property(x => x.LastName).HasMaxLength(200);
        b.Property(x => x.Email).HasMaxLength(320);
        b.Property(x => x.Phone).HasMaxLength(32);
        b.Property(x => x.Source).HasMaxLength(100);
        b.HasIndex(x => new { x.GymId, x.CreatedAt, x.Id });
    }
}

internal sealed class ContractConfiguration : IEntityTypeConfiguration<Contract>
{
    public void Configure(EntityTypeBuilder<Contract> b)
    {
        b.ToGymTable("contracts");
        b.Property(x => x.UserId).HasMaxLength(100);
        b.Property(x => x.Title).HasMaxLength(200);
        b.HasIndex(x => new { x.GymId, x.SignedAt });
    }
}

internal sealed class SmsMessageConfiguration : IEntityTypeConfiguration<SmsMessage>
{
    public void Configure(EntityTypeBuilder<SmsMessage> b)
    {
        b.ToGymTable("sms_messages");
        b.Property(x => x.Phone).HasMaxLength(32);
        b.Property(x => x.Message).HasMaxLength(1600);
        b.Property(x => x.Status).HasMaxLength(16);
        b.Property(x => x.ProviderMessageId).HasMaxLength(100);
        b.Property(x => x.Error).HasMaxLength(1000);
        b.HasIndex(x => new { x.GymId, x.CreatedAt });
        b.HasIndex(x => new { x.Status, x.CreatedAt });
        // The SMS sender's work list: queued messages by due time.
        b.HasIndex(x => new { x.Status, x.NextAttemptAt });
        // Twilio's status callbacks find their message by its SID; one SID is one message (both stores allow many NULLs).
        b.HasIndex(x => x.ProviderMessageId).IsUnique();
    }
}

internal sealed class OutboxEventConfiguration : IEntityTypeConfiguration<OutboxEvent>
{
    public void Configure(EntityTypeBuilder<OutboxEvent> b)
    {
        b.ToGymTable("outbox_events");
        b.HasKey(x => x.Sequence);
        b.Property(x => x.Sequence).ValueGeneratedOnAdd();
        b.Property(x => x.Type).HasMaxLength(64);
        b.Property(x => x.TraceContext).HasMaxLength(EventTrace.MaxLength);
        b.HasIndex(x => x.Id).IsUnique();
        b.HasIndex(x => new { x.GymId, x.Sequence });
        // The Activity page: a gym's events newest first by when they happened (the sequence breaks ties).
        b.HasIndex(x => new { x.GymId, x.OccurredAt, x.Sequence });
        // The dispatcher's work list: small, because dispatched rows leave it.
        b.HasIndex(x => x.Sequence).HasFilter("dispatched_at IS NULL").HasDatabaseName("ix_outbox_events_undispatched");
    }
}
