using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Gymwire.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class RateLimitLeases : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // A node may take several permits of a busy key in one call (PostgresRateLimitStore's leases).
            migrationBuilder.Sql("""
                -- Leases: one row of rate_limit_permits may hold several permits (taken in one call by a busy node).
                ALTER TABLE rate_limit_permits ADD COLUMN permits integer NOT NULL DEFAULT 1;
                DROP FUNCTION gymwire_rate_limit_acquire(text, timestamptz, interval, integer, bigint);
                DROP FUNCTION gymwire_rate_limit_release(text, bigint);

                -- Grants up to p_wanted of the permits p_key has left of p_limit after p_now - p_window, as one row
                -- stamped p_stamp (p_now, or a lease's end, so a leased permit counts for at least a window after its
                -- use). The upsert locks the key's row first, so checks of one key run one at a time on every node,
                -- and each later statement (a new snapshot, as in any VOLATILE function at READ COMMITTED) sees the
                -- previous check's permits. rate_limit_keys.permits is the sum of the key's rows, so no check counts.
                CREATE FUNCTION gymwire_rate_limit_acquire(p_key text, p_now timestamptz, p_window interval, p_limit integer,
                    p_permit bigint, p_wanted integer, p_stamp timestamptz)
                RETURNS TABLE (granted integer, oldest timestamptz) LANGUAGE plpgsql AS $$
                DECLARE
                    v_count integer;
                    v_expired integer;
                BEGIN
                    INSERT INTO rate_limit_keys AS k (key, permits, expires_at) VALUES (p_key, 0, p_stamp + p_window)
                    ON CONFLICT (key) DO UPDATE SET expires_at = GREATEST(k.expires_at, EXCLUDED.expires_at)
                    RETURNING k.permits INTO v_count;
                    WITH gone AS (DELETE FROM rate_limit_permits p WHERE p.key = p_key AND p.admitted_at <= p_now - p_window RETURNING p.permits)
                    SELECT coalesce(sum(gone.permits), 0) INTO v_expired FROM gone;
                    v_count := v_count - v_expired;
                    granted := GREATEST(LEAST(p_wanted, p_limit - v_count), 0);
                    IF granted > 0 THEN
                        INSERT INTO rate_limit_permits (key, admitted_at, permit, permits) VALUES (p_key, p_stamp, p_permit, granted);
                        v_count := v_count + granted;
                    ELSE
                        SELECT min(p.admitted_at) INTO oldest FROM rate_limit_permits p WHERE p.key = p_key;
                    END IF;
                    IF v_expired > 0 OR granted > 0 THEN
                        UPDATE rate_limit_keys k SET permits = v_count WHERE k.key = p_key;
                    END IF;
                    RETURN NEXT;
                END $$;

                -- Gives back p_count permits of the row p_permit (a request that changed nothing, or a lease's unused rest).
                CREATE FUNCTION gymwire_rate_limit_release(p_key text, p_permit bigint, p_count integer) RETURNS void LANGUAGE plpgsql AS $$
                DECLARE
                    v_removed integer;
                BEGIN
                    PERFORM 1 FROM rate_limit_keys k WHERE k.key = p_key FOR UPDATE;
                    WITH r AS (SELECT p.admitted_at, LEAST(p.permits, p_count) AS n FROM rate_limit_permits p WHERE p.key = p_key AND p.permit = p_permit),
                    upd AS (UPDATE rate_limit_permits p SET permits = p.permits - r.n FROM r
                            WHERE p.key = p_key AND p.permit = p_permit AND p.admitted_at = r.admitted_at RETURNING r.n)
                    SELECT coalesce(sum(upd.n), 0) INTO v_removed FROM upd;
                    DELETE FROM rate_limit_permits p WHERE p.key = p_key AND p.permit = p_permit AND p.permits <= 0;
                    IF v_removed > 0 THEN
                        UPDATE rate_limit_keys k SET permits = k.permits - v_removed WHERE k.key = p_key;
                    END IF;
                END $$;
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            // The windows start afresh (as after a database crash): the old functions count one row per permit.
            migrationBuilder.Sql("""
                DROP FUNCTION gymwire_rate_limit_release(text, bigint, integer);
                DROP FUNCTION gymwire_rate_limit_acquire(text, timestamptz, interval, integer, bigint, integer, timestamptz);
                DELETE FROM rate_limit_permits;
                UPDATE rate_limit_keys SET permits = 0;
                ALTER TABLE rate_limit_permits DROP COLUMN permits;
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
                """);
        }
    }
}
