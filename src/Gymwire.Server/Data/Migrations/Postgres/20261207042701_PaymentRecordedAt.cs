using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class PaymentRecordedAt : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTime>(
                name: "recorded_at",
                table: "payments",
                type: "timestamp with time zone",
                nullable: false,
                defaultValue: new DateTime(1, 1, 1, 0, 0, 0, 0, DateTimeKind.Unspecified));

            // Payments recorded before this column were recorded when they were dated.
            migrationBuilder.Sql("UPDATE payments SET recorded_at = created_at;");

            migrationBuilder.CreateIndex(
                name: "ix_payments_gym_id_recorded_at_id",
                table: "payments",
                columns: new[] { "gym_id", "recorded_at", "id" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_payments_gym_id_recorded_at_id",
                table: "payments");

            migrationBuilder.DropColumn(
                name: "recorded_at",
                table: "payments");
        }
    }
}
