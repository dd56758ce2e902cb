using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class ClusterNodes : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "cluster_nodes",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    host = table.Column<string>(type: "character varying(255)", maxLength: 255, nullable: false),
                    version = table.Column<string>(type: "character varying(100)", maxLength: 100, nullable: false),
                    roles = table.Column<string>(type: "character varying(100)", maxLength: 100, nullable: false),
                    started_at = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    last_seen_at = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    stopped_at = table.Column<DateTime>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_cluster_nodes", x => x.id);
                });

            migrationBuilder.CreateIndex(
                name: "ix_cluster_nodes_last_seen_at",
                table: "cluster_nodes",
                column: "last_seen_at");

            // The shared rate-limit windows (Infrastructure/SharedRateLimitStore.cs), outside the EF model: PostgreSQL
            // only, UNLOGGED (no WAL: a check costs no disk flush; a crash empties the windows), and used through
            // these functions so that each check is one round trip.
            migrationBuilder.Sql("""
                CREATE UNLOGGED TABLE rate_limit_keys (
                    key text PRIMARY KEY,
                    permits integer NOT NULL,
                    expires_at timestamp with time zone NOT NULL);
                CREATE INDEX ix_rate_limit_keys_expires_at ON rate_limit_keys (expires_at);
                CREATE UNLOGGED TABLE rate_limit_permits (
                    key text NOT NULL,
                    admitted_at timestamp with time zone NOT NULL,
                    permit bigint NOT NULL,
                    PRIMARY KEY (key, admitted_at, permit));

                -- Admits when fewer than p_limit permits of p_key were admitted after p_now - p_window. The upsert
                -- locks the key's row first, so checks of one key run one at a time on every node, and each later
                -- statement (a new snapshot, as in any VOLATILE function at READ COMMITTED) sees the previous
                -- check's permits. permits counts the key's rows in rate_limit_permits, so no check counts rows.
                CREATE FUNCTION gymwire_rate_limit_acquire(p_key text, p_now timestamptz, p_window interval, p_limit integer, p_permit bigint)
                RETURNS TABLE (admitted boolean, oldest timestamptz) LANGUAGE plpgsql AS $$
                DECLARE
                    v_count integer;
                    v_expired integer;
                BEGIN
                    INSERT INTO rate_limit_keys AS k (key, permits, expires_at) VALUES (p_key, 0, p_now + p_window)
                    ON CONFLICT (key) DO UPDATE SET expires_at = GREATEST(k.expires_at, EXCLUDED.expires_at)
                    RETURNING k.permits INTO v_count;
                    DELETE FROM rate_limit_permits p WHERE p.key = p_key AND p.admitted_at <= p_now - p_window;
                    GET DIAGNOSTICS v_expired = ROW_COUNT;
                    v_count := v_count - v_expired;
                    IF v_count < p_limit THEN
                        INSERT INTO rate_limit_permits (key, admitted_at, permit) VALUES (p_key, p_now, p_permit);
                        v_count := v_count + 1;
                        admitted := true;
                    ELSE
                        admitted := false;
                        SELECT min(p.admitted_at) INTO oldest FROM rate_limit_permits p WHERE p.key = p_key;
                    END IF;
                    IF v_expired > 0 OR admitted THEN
                        UPDATE rate_limit_keys k SET permits = v_count WHERE k.key = p_key;
                    END IF;
                    RETURN NEXT;
                END $$;

                -- Gives a permit back (the request changed nothing).
                CREATE FUNCTION gymwire_rate_limit_release(p_key text, p_permit bigint) RETURNS void LANGUAGE plpgsql AS $$
                DECLARE
                    v_removed integer;
                BEGIN
                    PERFORM 1 FROM rate_limit_keys k WHERE k.key = p_key FOR UPDATE;
                    DELETE FROM rate_limit_permits p WHERE p.key = p_key AND p.permit = p_permit;
                    GET DIAGNOSTICS v_removed = ROW_COUNT;
                    IF v_removed > 0 THEN
                        UPDATE rate_limit_keys k SET permits = k.permits - v_removed WHERE k.key = p_key;
                    END IF;
                END $$;

                -- Forgets keys with nothing admitted within their window. A key checked meanwhile has a later
                -- expires_at, which the DELETE re-reads after waiting for that check's row lock, and so keeps.
                CREATE FUNCTION gymwire_rate_limit_sweep(p_now timestamptz) RETURNS void LANGUAGE sql AS $$
                    WITH gone AS (DELETE FROM rate_limit_keys k WHERE k.expires_at < p_now RETURNING k.key)
                    DELETE FROM rate_limit_permits p WHERE p.key IN (SELECT key FROM gone);
                $$;
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("""
                DROP FUNCTION gymwire_rate_limit_sweep(timestamptz);
                DROP FUNCTION gymwire_rate_limit_release(text, bigint);
                DROP FUNCTION gymwire_rate_limit_acquire(text, timestamptz, interval, integer, bigint);
                DROP TABLE rate_limit_permits;
                DROP TABLE rate_limit_keys;
                """);

            migrationBuilder.DropTable(
                name: "cluster_nodes");
        }
    }
}
