using Gymwire.Features.ApiKeys;
using Gymwire.Features.Attendance;
using Gymwire.Features.Classes;
using Gymwire.Features.Cluster;
using Gymwire.Features.Contracts;
using Gymwire.Features.Email;
using Gymwire.Features.Leads;
using Gymwire.Features.Members;
using Gymwire.Features.Memberships;
using Gymwire.Features.Payments;
using Gymwire.Features.Sms;
using Gymwire.Features.Stripe;
using Gymwire.Features.Training;
using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;

namespace Gymwire.Data;

/// <summary>
/// The one database. Provider-specific subclasses (<see cref="SqliteGymwireDbContext"/>,
/// <see cref="PostgresGymwireDbContext"/>) exist only to carry a migration set each; code uses this type.
/// Entity configurations live in <c>Data/</c> (<c>*Configuration(s).cs</c>), apart from a few kept beside their feature.
/// </summary>
public abstract class GymwireDbContext(DbContextOptions options)
    : IdentityUserContext<Owner, Guid>(options), IDataProtectionKeyContext
{
    public DbSet<Gym> Gyms => Set<Gym>();
    public DbSet<OwnerSession> OwnerSessions => Set<OwnerSession>();
    public DbSet<SignInThrottle> SignInThrottles => Set<SignInThrottle>();
    public DbSet<Member> Members => Set<Member>();
    public DbSet<MembershipPlan> MembershipPlans => Set<MembershipPlan>();
    public DbSet<Membership> Memberships => Set<Membership>();
    public DbSet<Payment> Payments => Set<Payment>();
    public DbSet<TrainingSession> TrainingSessions => Set<TrainingSession>();
    public DbSet<AttendanceRecord> Attendance => Set<AttendanceRecord>();
    public DbSet<ClassSchedule> ClassSchedules => Set<ClassSchedule>();
    public DbSet<Lead> Leads => Set<Lead>();
    public DbSet<Contract> Contracts => Set<Contract>();
    public DbSet<SmsMessage> SmsMessages => Set<SmsMessage>();
    public DbSet<SmsEarlyStatus> SmsEarlyStatuses => Set<SmsEarlyStatus>();
    public DbSet<OutboxEvent> OutboxEvents => Set<OutboxEvent>();
    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();
    public DbSet<IdempotencyRecord> IdempotencyRecords => Set<IdempotencyRecord>();
    public DbSet<WebhookSubscription> WebhookSubscriptions => Set<WebhookSubscription>();
    public DbSet<WebhookDelivery> WebhookDeliveries => Set<WebhookDelivery>();
    public DbSet<WebhookAttempt> WebhookAttempts => Set<WebhookAttempt>();
    public DbSet<DeliveryCount> DeliveryCounts => Set<DeliveryCount>();
    public DbSet<DataProtectionKey> DataProtectionKeys => Set<DataProtectionKey>();
    public DbSet<StripeAccount> StripeAccounts => Set<StripeAccount>();
    public DbSet<StripeEventRecord> StripeEvents => Set<StripeEventRecord>();
    public DbSet<StripeLink> StripeLinks => Set<StripeLink>();
    public DbSet<EmailDelivery> EmailDeliveries => Set<EmailDelivery>();
    public DbSet<ReportSchedule> ReportSchedules => Set<ReportSchedule>();
    public DbSet<ClusterNode> ClusterNodes => Set<ClusterNode>();

    /// <summary>Whether, and for what, this context holds <see cref="SqliteWriteGate"/>'s lock.</summary>
    internal WriteLockState WriteLockState { get; set; }

    /// <summary>The gate whose lock a <c>SaveChanges</c> of this context holds; see <see cref="Dispose"/>.</summary>
    internal SqliteWriteGate? SaveLockGate { get; set; }

    /// <summary>Gives back a write lock a save took and never returned (it threw before it began writing).</summary>
    public override void Dispose()
    {
        SaveLockGate?.LeaveSave(this);
        base.Dispose();
    }

    /// <inheritdoc cref="Dispose"/>
    public override ValueTask DisposeAsync()
    {
        SaveLockGate?.LeaveSave(this);
        return base.DisposeAsync();
    }

    /// <summary>Which provider this context talks to; lets the few provider-specific queries branch.</summary>
    public abstract DatabaseProvider Provider { get; }

    protected override void OnModelCreating(ModelBuilder builder)
    {
        base.OnModelCreating(builder);
        builder.Entity<Owner>().ToTable("owners");
        builder.Entity<Microsoft.AspNetCore.Identity.IdentityUserClaim<Guid>>().ToTable("owner_claims");
        builder.Entity<Microsoft.AspNetCore.Identity.IdentityUserLogin<Guid>>().ToTable("owner_logins");
        builder.Entity<Microsoft.AspNetCore.Identity.IdentityUserToken<Guid>>().ToTable("owner_tokens");
        builder.Entity<DataProtectionKey>().ToTable("data_protection_keys");
        builder.ApplyConfigurationsFromAssembly(typeof(GymwireDbContext).Assembly);
    }
}
