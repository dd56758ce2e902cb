using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class DeliveryIndexTrim : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // IF EXISTS: EF Core's table rebuild below commits in stages (see SqliteMigrationLock),
            // and this step commits with the first, so a run killed in the rebuild has dropped the index already when the
            // next start runs the migration again (Foundation/SqliteUpgradeTests). A plain DropIndex failed there.
            migrationBuilder.Sql("DROP INDEX IF EXISTS \"ix_webhook_deliveries_created_at\";");

            migrationBuilder.DropColumn(
                name: "claim_token",
                table: "webhook_deliveries");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<Guid>(
                name: "claim_token",
                table: "webhook_deliveries",
                type: "TEXT",
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "ix_webhook_deliveries_created_at",
                table: "webhook_deliveries",
                column: "created_at");
        }
    }
}
