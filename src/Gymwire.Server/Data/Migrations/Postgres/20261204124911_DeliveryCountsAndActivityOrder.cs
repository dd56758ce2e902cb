using System;
using Gymwire.Features.Webhooks;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class DeliveryCountsAndActivityOrder : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "webhook_delivery_counts",
                columns: table => new
                {
                    gym_id = table.Column<Guid>(type: "uuid", nullable: false),
                    subscription_id = table.Column<Guid>(type: "uuid", nullable: false),
                    bucket = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    slot = table.Column<int>(type: "integer", nullable: false),
                    delivered = table.Column<int>(type: "integer", nullable: false),
                    retrying = table.Column<int>(type: "integer", nullable: false),
                    undeliverable = table.Column<int>(type: "integer", nullable: false),
                    pending = table.Column<int>(type: "integer", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_webhook_delivery_counts", x => new { x.gym_id, x.subscription_id, x.bucket, x.slot });
                });

            migrationBuilder.CreateIndex(
                name: "ix_outbox_events_gym_id_occurred_at_sequence",
                table: "outbox_events",
                columns: new[] { "gym_id", "occurred_at", "sequence" });

            // Fills webhook_delivery_counts from the deliveries there are, and adds the triggers that keep it.
            migrationBuilder.Sql(DeliveryCountTriggers.Postgres);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(DeliveryCountTriggers.DropPostgres);

            migrationBuilder.DropTable(
                name: "webhook_delivery_counts");

            migrationBuilder.DropIndex(
                name: "ix_outbox_events_gym_id_occurred_at_sequence",
                table: "outbox_events");
        }
    }
}
