using Gymwire.Infrastructure;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Gymwire.Data;

internal sealed class IdempotencyRecordConfiguration : IEntityTypeConfiguration<IdempotencyRecord>
{
    public void Configure(EntityTypeBuilder<IdempotencyRecord> b)
    {
        b.ToGymTable("idempotency_records");
        b.Property(x => x.Key).HasMaxLength(255);
        // One outcome per key per gym: the unique index is what makes concurrent retries safe.
        b.HasIndex(x => new { x.GymId, x.Key }).IsUnique();
        b.HasIndex(x => x.CreatedAt);
    }
}
