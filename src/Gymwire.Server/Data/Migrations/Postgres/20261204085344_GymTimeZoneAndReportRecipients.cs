using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class GymTimeZoneAndReportRecipients : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "format",
                table: "report_schedules",
                type: "character varying(16)",
                maxLength: 16,
                nullable: false,
                defaultValue: "csv");

            migrationBuilder.AddColumn<string>(
                name: "recipients",
                table: "report_schedules",
                type: "character varying(2000)",
                maxLength: 2000,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "time_zone",
                table: "gyms",
                type: "character varying(64)",
                maxLength: 64,
                nullable: false,
                defaultValue: "UTC");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "format",
                table: "report_schedules");

            migrationBuilder.DropColumn(
                name: "recipients",
                table: "report_schedules");

            migrationBuilder.DropColumn(
                name: "time_zone",
                table: "gyms");
        }
    }
}
