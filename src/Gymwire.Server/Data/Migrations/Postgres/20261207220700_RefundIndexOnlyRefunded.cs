using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class RefundIndexOnlyRefunded : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_payments_gym_id_refund_recorded_at",
                table: "payments");

            migrationBuilder.CreateIndex(
                name: "ix_payments_gym_id_refund_recorded_at",
                table: "payments",
                columns: new[] { "gym_id", "refund_recorded_at" },
                filter: "refund_recorded_at IS NOT NULL");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_payments_gym_id_refund_recorded_at",
                table: "payments");

            migrationBuilder.CreateIndex(
                name: "ix_payments_gym_id_refund_recorded_at",
                table: "payments",
                columns: new[] { "gym_id", "refund_recorded_at" });
        }
    }
}
