using Gymwire.Features.Email;
using Gymwire.Features.Exports;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Gymwire.Data;

internal sealed class EmailDeliveryConfiguration : IEntityTypeConfiguration<EmailDelivery>
{
    public void Configure(EntityTypeBuilder<EmailDelivery> b)
    {
        b.ToGymTable("email_deliveries");
        b.Property(x => x.Kind).HasMaxLength(16);
        b.Property(x => x.Recipients).HasMaxLength(2000);
        b.Property(x => x.Subject).HasMaxLength(500);
        b.Property(x => x.Status).HasMaxLength(16);
        b.Property(x => x.Error).HasMaxLength(1000);
        b.HasIndex(x => new { x.GymId, x.CreatedAt });
    }
}

internal sealed class ReportScheduleConfiguration : IEntityTypeConfiguration<ReportSchedule>
{
    public void Configure(EntityTypeBuilder<ReportSchedule> b)
    {
        b.ToTable("report_schedules");
        b.HasKey(x => x.GymId);
        b.Property(x => x.Frequency).HasMaxLength(16);
        b.Property(x => x.Recipients).HasMaxLength(ReportRecipients.MaxLength);
        b.Property(x => x.Format).HasMaxLength(16).HasDefaultValue(ReportFormats.Csv);
        // One word, as the API and the rest of Gymwire write QuickBooks.
        b.Property(x => x.QuickBooksDateOrder).HasColumnName("quickbooks_date_order").HasMaxLength(3).HasDefaultValue(AccountingExports.MonthFirst);
        b.Property(x => x.LastFailure).HasMaxLength(1000);
        b.HasOne<Gym>().WithOne().HasForeignKey<ReportSchedule>(x => x.GymId).OnDelete(DeleteBehavior.Cascade);
    }
}
