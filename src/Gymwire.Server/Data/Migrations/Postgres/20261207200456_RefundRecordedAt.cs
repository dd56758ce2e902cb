using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class RefundRecordedAt : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTime>(
                name: "refund_recorded_at",
                table: "payments",
                type: "timestamp with time zone",
                nullable: true);

            // Refunds recorded before this column: as the reports before it counted them, by when they were refunded.
            migrationBuilder.Sql("UPDATE payments SET refund_recorded_at = refunded_at WHERE refunded_at IS NOT NULL;");

            migrationBuilder.CreateIndex(
                name: "ix_payments_gym_id_refund_recorded_at",
                table: "payments",
                columns: new[] { "gym_id", "refund_recorded_at" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_payments_gym_id_refund_recorded_at",
                table: "payments");

            migrationBuilder.DropColumn(
                name: "refund_recorded_at",
                table: "payments");
        }
    }
}
