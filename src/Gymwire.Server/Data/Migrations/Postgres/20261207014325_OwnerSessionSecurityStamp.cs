using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class OwnerSessionSecurityStamp : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "security_stamp",
                table: "owner_sessions",
                type: "text",
                nullable: true);

            // Sessions from before this version take their owner's current stamp, so the upgrade logs nobody out.
            migrationBuilder.Sql(
                "UPDATE owner_sessions SET security_stamp = (SELECT o.security_stamp FROM owners o WHERE o.id = owner_sessions.owner_id);");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "security_stamp",
                table: "owner_sessions");
        }
    }
}
