using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Sqlite
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
                type: "TEXT",
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
