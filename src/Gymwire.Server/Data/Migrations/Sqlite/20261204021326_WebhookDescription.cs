using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class WebhookDescription : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "description",
                table: "webhook_subscriptions",
                type: "TEXT",
                maxLength: 200,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "description",
                table: "webhook_subscriptions");
        }
    }
}
