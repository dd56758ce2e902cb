using Gymwire.Features.Stripe;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Gymwire.Data;

internal sealed class StripeAccountConfiguration : IEntityTypeConfiguration<StripeAccount>
{
    public void Configure(EntityTypeBuilder<StripeAccount> b)
    {
        b.ToTable("stripe_accounts");
        b.HasKey(x => x.GymId);
        b.Property(x => x.ProtectedEndpointSecret).HasMaxLength(2000);
        b.Property(x => x.SecretHint).HasMaxLength(8);
        b.Property(x => x.LastFailure).HasMaxLength(500);
        b.HasOne<Gym>().WithOne().HasForeignKey<StripeAccount>(x => x.GymId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class StripeEventRecordConfiguration : IEntityTypeConfiguration<StripeEventRecord>
{
    public void Configure(EntityTypeBuilder<StripeEventRecord> b)
    {
        b.ToGymTable("stripe_events");
        b.Property(x => x.StripeEventId).HasMaxLength(255);
        b.Property(x => x.Type).HasMaxLength(100);
        b.Property(x => x.Outcome).HasMaxLength(32);
        b.Property(x => x.Detail).HasMaxLength(1000);
        b.Property(x => x.CustomerId).HasMaxLength(255);
        b.Property(x => x.Email).HasMaxLength(320);
        // Stripe retries an event with the same id: the unique index makes the second delivery a no-op, even when
        // two deliveries race.
        b.HasIndex(x => new { x.GymId, x.StripeEventId }).IsUnique();
        b.HasIndex(x => new { x.GymId, x.ReceivedAt });
    }
}

internal sealed class StripeLinkConfiguration : IEntityTypeConfiguration<StripeLink>
{
    public void Configure(EntityTypeBuilder<StripeLink> b)
    {
        b.ToGymTable("stripe_links");
        b.Property(x => x.StripeId).HasMaxLength(255);
        b.Property(x => x.Kind).HasMaxLength(16);
        b.Property(x => x.TargetId).HasMaxLength(100);
        b.HasIndex(x => new { x.GymId, x.Kind, x.StripeId }).IsUnique();
    }
}
