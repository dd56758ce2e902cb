using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class SignInThrottles : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "sign_in_throttles",
                columns: table => new
                {
                    subject = table.Column<string>(type: "TEXT", maxLength: 80, nullable: false),
                    failed_count = table.Column<int>(type: "INTEGER", nullable: false),
                    window_started_at = table.Column<DateTime>(type: "TEXT", nullable: true),
                    locked_until = table.Column<DateTime>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_sign_in_throttles", x => x.subject);
                });

            migrationBuilder.CreateIndex(
                name: "ix_sign_in_throttles_window_started_at",
                table: "sign_in_throttles",
                column: "window_started_at");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "sign_in_throttles");
        }
    }
}
