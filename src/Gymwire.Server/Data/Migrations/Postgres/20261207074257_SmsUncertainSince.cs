using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
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
                type: "timestamp with time zone",
                nullable: true);

            // A message attempted before the upgrade may have had an attempt of unknown outcome that nothing recorded:
            // it gets a look-up before its next send. From its creation, since any of its attempts may be the one.
            migrationBuilder.Sql(
                "UPDATE sms_messages SET uncertain_since = created_at WHERE status IN ('queued', 'failed') AND last_attempt_at IS NOT NULL;");
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
