using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class ReportOwnersAtSendTime : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<bool>(
                name: "send_to_owners",
                table: "report_schedules",
                type: "INTEGER",
                nullable: false,
                defaultValue: false);

            // A schedule without addresses went to the owners, and still does.
            migrationBuilder.Sql("UPDATE report_schedules SET send_to_owners = 1 WHERE recipients IS NULL;");

            // The form offered the owners' addresses and saved them as typed, so a schedule whose addresses are exactly
            // the gym's owners' now is taken to mean "the owners": the form's prefill saved unchanged looks like that,
            // and an owner who chose exactly the owners chose the people who see all of this on the dashboard anyway.
            // A list that leaves an owner out, or adds anyone, was edited on purpose and stays as it is.
            migrationBuilder.Sql(
                """
                UPDATE report_schedules SET send_to_owners = 1, recipients = NULL
                WHERE recipients IS NOT NULL
                  AND length(recipients) - length(replace(recipients, ',', '')) + 1 =
                      (SELECT count(*) FROM owners o WHERE o.gym_id = report_schedules.gym_id AND o.email IS NOT NULL)
                  AND NOT EXISTS (SELECT 1 FROM owners o WHERE o.gym_id = report_schedules.gym_id AND o.email IS NOT NULL
                      AND instr(',' || lower(replace(report_schedules.recipients, ' ', '')) || ',', ',' || lower(o.email) || ',') = 0);
                """);

            // A successful send cleared the last failure's reason but not its time: a time without a reason is such a failure.
            migrationBuilder.Sql("UPDATE report_schedules SET last_failure_at = NULL WHERE last_failure IS NULL;");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "send_to_owners",
                table: "report_schedules");
        }
    }
}
