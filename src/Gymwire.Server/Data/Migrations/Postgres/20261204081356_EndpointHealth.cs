using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class EndpointHealth : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "consecutive_failures",
                table: "webhook_subscriptions",
                type: "integer",
                nullable: false,
                defaultValue: 0);

            migrationBuilder.AddColumn<TimeSpan>(
                name: "pause_length",
                table: "webhook_subscriptions",
                type: "interval",
                nullable: true);

            migrationBuilder.AddColumn<DateTime>(
                name: "paused_until",
                table: "webhook_subscriptions",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<DateTime>(
                name: "probe_claimed_until",
                table: "webhook_subscriptions",
                type: "timestamp with time zone",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "consecutive_failures",
                table: "webhook_subscriptions");

            migrationBuilder.DropColumn(
                name: "pause_length",
                table: "webhook_subscriptions");

            migrationBuilder.DropColumn(
                name: "paused_until",
                table: "webhook_subscriptions");

            migrationBuilder.DropColumn(
                name: "probe_claimed_until",
                table: "webhook_subscriptions");
        }
    }
}
