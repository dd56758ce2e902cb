using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class SmsUncertainSince : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTime>(
                name: "uncertain_since",
                table: "sms_messages",
                type: "TEXT",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "uncertain_since",
                table: "sms_messages");
        }
    }
}
