using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class Stripe : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "stripe_accounts",
                columns: table => new
                {
                    gym_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    protected_endpoint_secret = table.Column<string>(type: "TEXT", maxLength: 2000, nullable: false),
                    secret_hint = table.Column<string>(type: "TEXT", maxLength: 8, nullable: false),
                    configured_at = table.Column<DateTime>(type: "TEXT", nullable: false),
                    last_event_at = table.Column<DateTime>(type: "TEXT", nullable: true),
                    last_failure_at = table.Column<DateTime>(type: "TEXT", nullable: true),
                    last_failure = table.Column<string>(type: "TEXT", maxLength: 500, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_stripe_accounts", x => x.gym_id);
                    table.ForeignKey(
                        name: "fk_stripe_accounts_gyms_gym_id",
                        column: x => x.gym_id,
                        principalTable: "gyms",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "stripe_events",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "TEXT", nullable: false),
                    gym_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    stripe_event_id = table.Column<string>(type: "TEXT", maxLength: 255, nullable: false),
                    type = table.Column<string>(type: "TEXT", maxLength: 100, nullable: false),
                    received_at = table.Column<DateTime>(type: "TEXT", nullable: false),
                    outcome = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    detail = table.Column<string>(type: "TEXT", maxLength: 1000, nullable: true),
                    customer_id = table.Column<string>(type: "TEXT", maxLength: 255, nullable: true),
                    email = table.Column<string>(type: "TEXT", maxLength: 320, nullable: true),
                    payload = table.Column<string>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_stripe_events", x => x.id);
                    table.ForeignKey(
                        name: "fk_stripe_events_gyms_gym_id",
                        column: x => x.gym_id,
                        principalTable: "gyms",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "stripe_links",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "TEXT", nullable: false),
                    gym_id = table.Column<Guid>(type: "TEXT", nullable: false),
                    stripe_id = table.Column<string>(type: "TEXT", maxLength: 255, nullable: false),
                    kind = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    target_id = table.Column<string>(type: "TEXT", maxLength: 100, nullable: false),
                    created_at = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_stripe_links", x => x.id);
                    table.ForeignKey(
                        name: "fk_stripe_links_gyms_gym_id",
                        column: x => x.gym_id,
                        principalTable: "gyms",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "ix_stripe_events_gym_id_received_at",
                table: "stripe_events",
                columns: new[] { "gym_id", "received_at" });

            migrationBuilder.CreateIndex(
                name: "ix_stripe_events_gym_id_stripe_event_id",
                table: "stripe_events",
                columns: new[] { "gym_id", "stripe_event_id" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "ix_stripe_links_gym_id_kind_stripe_id",
                table: "stripe_links",
                columns: new[] { "gym_id", "kind", "stripe_id" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "stripe_accounts");

            migrationBuilder.DropTable(
                name: "stripe_events");

            migrationBuilder.DropTable(
                name: "stripe_links");
        }
    }
}
