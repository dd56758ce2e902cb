using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class DeliveryLogIndexWithoutStatus : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_webhook_deliveries_gym_id_subscription_id_created_at_status",
                table: "webhook_deliveries");

            migrationBuilder.CreateIndex(
                name: "ix_webhook_deliveries_gym_id_subscription_id_created_at",
                table: "webhook_deliveries",
                columns: new[] { "gym_id", "subscription_id", "created_at" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_webhook_deliveries_gym_id_subscription_id_created_at",
                table: "webhook_deliveries");

            migrationBuilder.CreateIndex(
                name: "ix_webhook_deliveries_gym_id_subscription_id_created_at_status",
                table: "webhook_deliveries",
                columns: new[] { "gym_id", "subscription_id", "created_at", "status" });
        }
    }
}
