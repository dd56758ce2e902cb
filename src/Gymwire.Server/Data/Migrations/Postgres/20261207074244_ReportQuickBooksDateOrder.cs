using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class ReportQuickBooksDateOrder : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "quickbooks_date_order",
                table: "report_schedules",
                type: "character varying(3)",
                maxLength: 3,
                nullable: false,
                defaultValue: "mdy");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "quickbooks_date_order",
                table: "report_schedules");
        }
    }
}
