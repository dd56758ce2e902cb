using Gymwire.Features.ApiKeys;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Gymwire.Data;

internal sealed class ApiKeyConfiguration : IEntityTypeConfiguration<ApiKey>
{
    public void Configure(EntityTypeBuilder<ApiKey> b)
    {
        b.ToGymTable("api_keys");
        b.Property(x => x.Name).HasMaxLength(100);
        b.Property(x => x.KeyPrefix).HasMaxLength(11);
        b.Property(x => x.Scopes).HasMaxLength(32);
        // Authentication looks keys up by hash: unique, so a lookup is one index probe.
        b.HasIndex(x => x.KeyHash).IsUnique();
        b.HasIndex(x => new { x.GymId, x.CreatedAt });
    }
}
