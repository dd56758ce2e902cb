using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <summary>
    /// Numbers each outbox event under its gym's advisory lock in the insert itself, so a gym's numbers follow commit
    /// order without a lock statement of its own (<see cref="PostgresOutboxOrder"/>, docs/polling.md). PostgreSQL only;
    /// no model change, hence no designer file.
    /// </summary>
    [DbContext(typeof(PostgresGymwireDbContext))]
    [Migration("20261204161000_OutboxOrderTrigger")]
    public partial class OutboxOrderTrigger : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // The lock's keys are PostgresOutboxOrder's: LockSpace (0x47770001), and the gym id's last 32 bits as a signed int.
            migrationBuilder.Sql("""
                CREATE FUNCTION gymwire_outbox_order() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM pg_advisory_xact_lock(1198981121, ('x' || right(NEW.gym_id::text, 8))::bit(32)::int);
                    NEW.sequence := nextval('outbox_events_sequence_seq');
                    RETURN NEW;
                END $$;
                CREATE TRIGGER outbox_events_order BEFORE INSERT ON outbox_events
                FOR EACH ROW EXECUTE FUNCTION gymwire_outbox_order();
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP TRIGGER outbox_events_order ON outbox_events; DROP FUNCTION gymwire_outbox_order();");
        }
    }
}
