using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <summary>
    /// Every write to the polling triggers' tables names its gym on the <c>gymwire_trigger_data</c> channel, from inside
    /// the writing transaction (delivered only if it commits; PostgreSQL folds a transaction's repeats into one), so
    /// every node's trigger cache (TriggerCacheChannel) hears of it, whoever wrote. PostgreSQL only: SQLite's cache
    /// watches <c>PRAGMA data_version</c> instead. No model change, hence no designer file.
    /// </summary>
    [DbContext(typeof(PostgresGymwireDbContext))]
    [Migration("20261204130000_TriggerPollNotify")]
    public partial class TriggerPollNotify : Migration
    {
        private static readonly string[] Tables = ["members", "payments", "training_sessions", "attendance"];

        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("""
                CREATE FUNCTION gymwire_trigger_data_notify() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF TG_OP <> 'INSERT' THEN
                        PERFORM pg_notify('gymwire_trigger_data', OLD.gym_id::text);
                    END IF;
                    IF TG_OP <> 'DELETE' THEN
                        PERFORM pg_notify('gymwire_trigger_data', NEW.gym_id::text);
                    END IF;
                    RETURN NULL;
                END $$;
                """);
            foreach (var table in Tables)
            {
                migrationBuilder.Sql($"""
                    CREATE TRIGGER {table}_trigger_data_notify AFTER INSERT OR UPDATE OR DELETE ON {table}
                    FOR EACH ROW EXECUTE FUNCTION gymwire_trigger_data_notify();
                    """);
            }
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            foreach (var table in Tables)
            {
                migrationBuilder.Sql($"DROP TRIGGER {table}_trigger_data_notify ON {table};");
            }
            migrationBuilder.Sql("DROP FUNCTION gymwire_trigger_data_notify();");
        }
    }
}
