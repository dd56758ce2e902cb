namespace Gymwire.Data;

/// <summary>The triggers that keep <c>webhook_delivery_counts</c> (<see cref="DeliveryCount"/>), per provider.</summary>
public static class DeliveryCountTriggers
{
    public const string Insert = "webhook_delivery_counts_insert";
    public const string Update = "webhook_delivery_counts_update";
    public const string Delete = "webhook_delivery_counts_delete";

    private const string Columns = "gym_id, subscription_id, bucket, slot, delivered, retrying, undeliverable, pending";

    // The four counted states on PostgreSQL, in the table's column order; first, as the statements below are built from it.
    private static readonly string[] PgStates = ["= 'delivered'", "= 'retrying'", "= 'undeliverable'", "NOT IN ('delivered', 'retrying', 'undeliverable')"];

    private const string AddOnConflict = """
        ON CONFLICT (gym_id, subscription_id, bucket, slot) DO UPDATE SET
            delivered = webhook_delivery_counts.delivered + excluded.delivered,
            retrying = webhook_delivery_counts.retrying + excluded.retrying,
            undeliverable = webhook_delivery_counts.undeliverable + excluded.undeliverable,
            pending = webhook_delivery_counts.pending + excluded.pending
        """;

    // SQLite stores times as text 'yyyy-MM-dd HH:mm:ss.fffffff': the bucket keeps the hour and floors the minutes.
    private static string SqliteBucket(string row) =>
        $"substr({row}.created_at, 1, 14) || printf('%02d', (CAST(substr({row}.created_at, 15, 2) AS INTEGER) / 15) * 15) || ':00'";

    private static string SqliteFigures(string row, int sign) =>
        $"{sign} * ({row}.status = 'delivered'), {sign} * ({row}.status = 'retrying'), {sign} * ({row}.status = 'undeliverable'), "
        + $"{sign} * ({row}.status NOT IN ('delivered', 'retrying', 'undeliverable'))";

    /// <summary>Creates the table's triggers and fills it from the existing deliveries (every delivery, test sends too).</summary>
    public static readonly string Sqlite = SqliteCounting(events: false);

    /// <summary>
    /// SQLite's fill and triggers: of the deliveries of events only (<paramref name="events"/>), or of every delivery.
    /// A delivery's <c>is_test</c> never changes, so a test send is never counted in or out.
    /// </summary>
    private static string SqliteCounting(bool events) => $"""
        INSERT INTO webhook_delivery_counts ({Columns})
        SELECT gym_id, subscription_id, {SqliteBucket("d")}, 0,
               sum(d.status = 'delivered'), sum(d.status = 'retrying'), sum(d.status = 'undeliverable'),
               sum(d.status NOT IN ('delivered', 'retrying', 'undeliverable'))
        FROM webhook_deliveries AS d{(events ? " WHERE d.is_test = 0" : "")} GROUP BY 1, 2, 3;

        CREATE TRIGGER {Insert} AFTER INSERT ON webhook_deliveries{(events ? " WHEN NEW.is_test = 0" : "")} BEGIN
            INSERT INTO webhook_delivery_counts ({Columns})
            VALUES (NEW.gym_id, NEW.subscription_id, {SqliteBucket("NEW")}, 0, {SqliteFigures("NEW", 1)})
            {AddOnConflict};
        END;

        CREATE TRIGGER {Update} AFTER UPDATE OF status ON webhook_deliveries WHEN OLD.status <> NEW.status{(events ? " AND OLD.is_test = 0" : "")} BEGIN
            UPDATE webhook_delivery_counts SET
                delivered = delivered - (OLD.status = 'delivered') + (NEW.status = 'delivered'),
                retrying = retrying - (OLD.status = 'retrying') + (NEW.status = 'retrying'),
                undeliverable = undeliverable - (OLD.status = 'undeliverable') + (NEW.status = 'undeliverable'),
                pending = pending - (OLD.status NOT IN ('delivered', 'retrying', 'undeliverable')) + (NEW.status NOT IN ('delivered', 'retrying', 'undeliverable'))
            WHERE gym_id = OLD.gym_id AND subscription_id = OLD.subscription_id AND bucket = {SqliteBucket("OLD")} AND slot = 0;
        END;

        -- An emptied bucket goes, so old buckets leave with the deliveries retention deletes.
        CREATE TRIGGER {Delete} AFTER DELETE ON webhook_deliveries{(events ? " WHEN OLD.is_test = 0" : "")} BEGIN
            UPDATE webhook_delivery_counts SET
                delivered = delivered - (OLD.status = 'delivered'),
                retrying = retrying - (OLD.status = 'retrying'),
                undeliverable = undeliverable - (OLD.status = 'undeliverable'),
                pending = pending - (OLD.status NOT IN ('delivered', 'retrying', 'undeliverable'))
            WHERE gym_id = OLD.gym_id AND subscription_id = OLD.subscription_id AND bucket = {SqliteBucket("OLD")} AND slot = 0;
            DELETE FROM webhook_delivery_counts
            WHERE gym_id = OLD.gym_id AND subscription_id = OLD.subscription_id AND bucket = {SqliteBucket("OLD")} AND slot = 0
                AND delivered = 0 AND retrying = 0 AND undeliverable = 0 AND pending = 0;
        END;
        """;

    public static readonly string DropSqlite = $"""
        DROP TRIGGER IF EXISTS {Insert};
        DROP TRIGGER IF EXISTS {Update};
        DROP TRIGGER IF EXISTS {Delete};
        """;

    private static string PgBucket(string row) => $"to_timestamp(floor(extract(epoch FROM {row}.created_at) / 900) * 900)";

    private static string PgFigures(string row, int sign) =>
        $"{sign} * ({row}.status = 'delivered')::int, {sign} * ({row}.status = 'retrying')::int, {sign} * ({row}.status = 'undeliverable')::int, "
        + $"{sign} * ({row}.status NOT IN ('delivered', 'retrying', 'undeliverable'))::int";

    private static readonly string PostgresFill = $$"""
        INSERT INTO webhook_delivery_counts ({{Columns}})
        SELECT d.gym_id, d.subscription_id, {{PgBucket("d")}}, 0,
               count(*) FILTER (WHERE d.status = 'delivered'), count(*) FILTER (WHERE d.status = 'retrying'),
               count(*) FILTER (WHERE d.status = 'undeliverable'), count(*) FILTER (WHERE d.status NOT IN ('delivered', 'retrying', 'undeliverable'))
        FROM webhook_deliveries AS d GROUP BY 1, 2, 3;
        """;

    /// <summary>
    /// Row triggers, replaced by <see cref="PostgresByStatement"/>: they update one count row once per delivery of a
    /// statement, in time growing with the square of its rows (docs/benchmark-findings.md).
    /// </summary>
    public static readonly string PostgresByRow = $$"""
        CREATE FUNCTION webhook_delivery_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            IF TG_OP IN ('UPDATE', 'DELETE') THEN
                INSERT INTO webhook_delivery_counts ({{Columns}})
                VALUES (OLD.gym_id, OLD.subscription_id, {{PgBucket("OLD")}}, pg_backend_pid(), {{PgFigures("OLD", -1)}})
                {{AddOnConflict}};
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                INSERT INTO webhook_delivery_counts ({{Columns}})
                VALUES (NEW.gym_id, NEW.subscription_id, {{PgBucket("NEW")}}, pg_backend_pid(), {{PgFigures("NEW", 1)}})
                {{AddOnConflict}};
            END IF;
            -- An emptied bucket goes (every slot), so old buckets leave with the deliveries retention deletes.
            IF TG_OP = 'DELETE' AND NOT EXISTS (
                SELECT 1 FROM webhook_deliveries AS d
                WHERE d.gym_id = OLD.gym_id AND d.subscription_id = OLD.subscription_id
                    AND d.created_at >= {{PgBucket("OLD")}} AND d.created_at < {{PgBucket("OLD")}} + interval '15 minutes') THEN
                DELETE FROM webhook_delivery_counts
                WHERE gym_id = OLD.gym_id AND subscription_id = OLD.subscription_id AND bucket = {{PgBucket("OLD")}};
            END IF;
            RETURN NULL;
        END
        $fn$;

        CREATE TRIGGER {{Insert}} AFTER INSERT ON webhook_deliveries
            FOR EACH ROW EXECUTE FUNCTION webhook_delivery_counts_apply();
        CREATE TRIGGER {{Update}} AFTER UPDATE OF status ON webhook_deliveries
            FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION webhook_delivery_counts_apply();
        CREATE TRIGGER {{Delete}} AFTER DELETE ON webhook_deliveries
            FOR EACH ROW EXECUTE FUNCTION webhook_delivery_counts_apply();
        """;

    /// <summary>
    /// The first version on PostgreSQL (migration DeliveryCountsAndActivityOrder): fills the table and adds row triggers.
    /// Kept as it was, since a migration must not change; <see cref="PostgresByStatement"/> replaces its triggers.
    /// </summary>
    // Declared after the two parts: static fields are initialized in the order they are written.
    public static readonly string Postgres = PostgresFill + PostgresByRow;

    private static string PgSums(string rows) => string.Join(", ", PgStates.Select(state => $"sum({rows}.sign * ({rows}.status {state})::int)"));

    private static string PgAnyChanged(string rows) => string.Join(" OR ", PgStates.Select(state => $"sum({rows}.sign * ({rows}.status {state})::int) <> 0"));

    private static string PgAdd(string changes) => $"""
        INSERT INTO webhook_delivery_counts ({Columns})
        SELECT x.gym_id, x.subscription_id, {PgBucket("x")}, pg_backend_pid(), {PgSums("x")}
        FROM ({changes}) AS x
        GROUP BY 1, 2, 3
        {AddOnConflict};
        """;

    // Each updated row whose status changed: out of its old status, into its new one.
    private const string StatusChanges = """
        SELECT o.gym_id, o.subscription_id, o.created_at, o.status, -1 AS sign
        FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id WHERE o.status IS DISTINCT FROM n.status
        UNION ALL
        SELECT n.gym_id, n.subscription_id, n.created_at, n.status, 1
        FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id WHERE o.status IS DISTINCT FROM n.status
        """;

    private static string Events(bool events, string column) => events ? $" WHERE NOT {column}is_test" : "";

    // The delete trigger's body: counts the old rows out; an emptied bucket goes (every slot), so old buckets leave
    // with the deliveries retention deletes.
    private static string PgDeleted(bool events) => $$"""
        BEGIN
            {{PgAdd("SELECT gym_id, subscription_id, created_at, status, -1 AS sign FROM old_rows" + Events(events, ""))}}
            DELETE FROM webhook_delivery_counts AS c
            USING (SELECT DISTINCT o.gym_id, o.subscription_id, {{PgBucket("o")}} AS bucket FROM old_rows AS o) AS g
            WHERE c.gym_id = g.gym_id AND c.subscription_id = g.subscription_id AND c.bucket = g.bucket
                AND NOT EXISTS (
                    SELECT 1 FROM webhook_deliveries AS d
                    WHERE d.gym_id = g.gym_id AND d.subscription_id = g.subscription_id{{(events ? " AND NOT d.is_test" : "")}}
                        AND d.created_at >= g.bucket AND d.created_at < g.bucket + interval '15 minutes');
            RETURN NULL;
        END
        """;

    // The update trigger's body without a join (see PostgresUpdateWithoutJoin).
    private static string PgUpdatedWithoutJoin(bool events) => $$"""
        BEGIN
            INSERT INTO webhook_delivery_counts ({{Columns}})
            SELECT x.gym_id, x.subscription_id, {{PgBucket("x")}}, pg_backend_pid(), {{PgSums("x")}}
            FROM (SELECT gym_id, subscription_id, created_at, status, -1 AS sign FROM old_rows{{Events(events, "")}}
                  UNION ALL
                  SELECT gym_id, subscription_id, created_at, status, 1 FROM new_rows{{Events(events, "")}}) AS x
            GROUP BY 1, 2, 3
            HAVING {{PgAnyChanged("x")}}
            {{AddOnConflict}};
            RETURN NULL;
        END
        """;

    /// <summary>
    /// Statement triggers over transition tables: one grouped insert per statement, whatever its number of rows, so
    /// bulk changes (fan-out, the recorder's group commit, retry-all, retention) cost time in proportion to their rows.
    /// An UPDATE trigger cannot both name a column and keep transition tables, so it sees every update and counts the
    /// rows whose status changed.
    /// </summary>
    public static readonly string PostgresByStatement = $$"""
        DROP TRIGGER IF EXISTS {{Insert}} ON webhook_deliveries;
        DROP TRIGGER IF EXISTS {{Update}} ON webhook_deliveries;
        DROP TRIGGER IF EXISTS {{Delete}} ON webhook_deliveries;
        DROP FUNCTION IF EXISTS webhook_delivery_counts_apply();
        CREATE FUNCTION webhook_delivery_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            {{PgAdd("SELECT gym_id, subscription_id, created_at, status, 1 AS sign FROM new_rows")}}
            RETURN NULL;
        END
        $fn$;
        CREATE FUNCTION webhook_delivery_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            {{PgAdd(StatusChanges)}}
            RETURN NULL;
        END
        $fn$;
        CREATE FUNCTION webhook_delivery_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $fn$
        {{PgDeleted(events: false)}}
        $fn$;
        CREATE TRIGGER {{Insert}} AFTER INSERT ON webhook_deliveries
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION webhook_delivery_counts_inserted();
        CREATE TRIGGER {{Update}} AFTER UPDATE ON webhook_deliveries
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION webhook_delivery_counts_updated();
        CREATE TRIGGER {{Delete}} AFTER DELETE ON webhook_deliveries
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION webhook_delivery_counts_deleted();
        """;

    /// <summary>
    /// The update trigger without a join: each statement's old rows count out and its new rows count in, grouped, and
    /// only the groups whose counts changed are written. Joining the old rows to the new by id, the function's cached
    /// plan (made for the first, small statement of a session: a claim) was a nested loop, so a statement over many
    /// rows (a paused endpoint's backlog moved, an owner's disable) took time in the square of its rows
    /// (docs/benchmark-findings.md).
    /// </summary>
    public static readonly string PostgresUpdateWithoutJoin = $$"""
        CREATE OR REPLACE FUNCTION webhook_delivery_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
        {{PgUpdatedWithoutJoin(events: false)}}
        $fn$;
        """;

    /// <summary>Puts the joined update trigger of <see cref="PostgresByStatement"/> back (the migration's Down).</summary>
    public static readonly string PostgresUpdateWithoutJoinDown = $$"""
        CREATE OR REPLACE FUNCTION webhook_delivery_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            {{PgAdd(StatusChanges)}}
            RETURN NULL;
        END
        $fn$;
        """;

    /// <summary>Puts <see cref="PostgresByRow"/> back (the migration's Down).</summary>
    public static readonly string PostgresByStatementDown = $"""
        DROP TRIGGER IF EXISTS {Insert} ON webhook_deliveries;
        DROP TRIGGER IF EXISTS {Update} ON webhook_deliveries;
        DROP TRIGGER IF EXISTS {Delete} ON webhook_deliveries;
        DROP FUNCTION IF EXISTS webhook_delivery_counts_inserted();
        DROP FUNCTION IF EXISTS webhook_delivery_counts_updated();
        DROP FUNCTION IF EXISTS webhook_delivery_counts_deleted();
        """ + PostgresByRow;

    /// <summary>
    /// SQLite's triggers again, counting only the deliveries of events: a test send is the receiver's answer to a
    /// sample, not the webhook's health (migration DeliveryCountsWithoutTests). The table is filled again so.
    /// </summary>
    public static readonly string SqliteWithoutTests = DropSqlite + "DELETE FROM webhook_delivery_counts;\n" + SqliteCounting(events: true);

    /// <summary>Puts <see cref="Sqlite"/>'s triggers and figures back (the migration's Down).</summary>
    public static readonly string SqliteWithoutTestsDown = DropSqlite + "DELETE FROM webhook_delivery_counts;\n" + Sqlite;

    /// <summary>
    /// PostgreSQL's statement triggers, counting only the deliveries of events (<paramref name="events"/> false: every
    /// delivery, as before the migration DeliveryCountsWithoutTests), and the table filled again so.
    /// </summary>
    private static string PostgresCounting(bool events) => $$"""
        CREATE OR REPLACE FUNCTION webhook_delivery_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            {{PgAdd("SELECT gym_id, subscription_id, created_at, status, 1 AS sign FROM new_rows" + Events(events, ""))}}
            RETURN NULL;
        END
        $fn$;
        CREATE OR REPLACE FUNCTION webhook_delivery_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
        {{PgUpdatedWithoutJoin(events)}}
        $fn$;
        CREATE OR REPLACE FUNCTION webhook_delivery_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $fn$
        {{PgDeleted(events)}}
        $fn$;
        DELETE FROM webhook_delivery_counts;
        {{PostgresFill.Replace("GROUP BY 1, 2, 3", Events(events, "d.") + " GROUP BY 1, 2, 3", StringComparison.Ordinal)}}
        """;

    /// <summary>PostgreSQL's triggers counting only the deliveries of events (migration DeliveryCountsWithoutTests).</summary>
    public static readonly string PostgresWithoutTests = PostgresCounting(events: true);

    /// <summary>Counting every delivery again (the migration's Down).</summary>
    public static readonly string PostgresWithoutTestsDown = PostgresCounting(events: false);

    public static readonly string DropPostgres = $"""
        DROP TRIGGER IF EXISTS {Insert} ON webhook_deliveries;
        DROP TRIGGER IF EXISTS {Update} ON webhook_deliveries;
        DROP TRIGGER IF EXISTS {Delete} ON webhook_deliveries;
        DROP FUNCTION IF EXISTS webhook_delivery_counts_apply();
        """;
}
