using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class DeliveriesKeepTheirPages : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AlterTable(
                name: "webhook_deliveries")
                .Annotation("Npgsql:StorageParameter:autovacuum_vacuum_cost_delay", 0)
                .Annotation("Npgsql:StorageParameter:autovacuum_vacuum_scale_factor", 0.02)
                .Annotation("Npgsql:StorageParameter:autovacuum_vacuum_threshold", 1000)
                .Annotation("Npgsql:StorageParameter:fillfactor", 80)
                .Annotation("Npgsql:StorageParameter:vacuum_truncate", false)
                .OldAnnotation("Npgsql:StorageParameter:autovacuum_vacuum_cost_delay", 0)
                .OldAnnotation("Npgsql:StorageParameter:autovacuum_vacuum_scale_factor", 0.02)
                .OldAnnotation("Npgsql:StorageParameter:autovacuum_vacuum_threshold", 1000)
                .OldAnnotation("Npgsql:StorageParameter:fillfactor", 80);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AlterTable(
                name: "webhook_deliveries")
                .Annotation("Npgsql:StorageParameter:autovacuum_vacuum_cost_delay", 0)
                .Annotation("Npgsql:StorageParameter:autovacuum_vacuum_scale_factor", 0.02)
                .Annotation("Npgsql:StorageParameter:autovacuum_vacuum_threshold", 1000)
                .Annotation("Npgsql:StorageParameter:fillfactor", 80)
                .OldAnnotation("Npgsql:StorageParameter:autovacuum_vacuum_cost_delay", 0)
                .OldAnnotation("Npgsql:StorageParameter:autovacuum_vacuum_scale_factor", 0.02)
                .OldAnnotation("Npgsql:StorageParameter:autovacuum_vacuum_threshold", 1000)
                .OldAnnotation("Npgsql:StorageParameter:fillfactor", 80)
                .OldAnnotation("Npgsql:StorageParameter:vacuum_truncate", false);
        }
    }
}
