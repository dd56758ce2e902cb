-- What counting each endpoint's in-flight deliveries for the whole cluster would cost PostgreSQL: the least a
-- cluster-wide Webhooks:MaxConcurrentPerEndpoint needs (a counter per subscription, raised by each claim and lowered by
-- each record), replayed in M4's shape without HTTP: per event, 100 deliveries to 100 subscriptions fanned out, claimed
-- and recorded as delivered (with an attempt row), each step its own transaction. docs/benchmark-findings.md (Cluster)
-- has the figures.
-- Run on a throwaway PostgreSQL 15 (the bench's settings: fsync, synchronous_commit and full_page_writes off):
--   psql -d DB -f bench/replays/cluster-in-flight-count.sql
--   psql -d DB -c "CALL replay(100, false, null)"            -- warm-up
--   psql -d DB -c "CALL replay(600, false, null)"            -- 60,000 deliveries without the counter: elapsed time
--   psql -d DB -c "CALL replay(600, true, null)"             -- with it; alternate the two, swapping their order
DROP TABLE IF EXISTS webhook_attempts, webhook_deliveries, webhook_subscriptions;
CREATE TABLE webhook_subscriptions (id uuid PRIMARY KEY, gym_id uuid NOT NULL, in_flight int NOT NULL DEFAULT 0,
  paused_until timestamptz, probe_claimed_until timestamptz, url text NOT NULL DEFAULT 'http://127.0.0.1/x');
CREATE TABLE webhook_deliveries (id uuid PRIMARY KEY, gym_id uuid NOT NULL, subscription_id uuid NOT NULL REFERENCES webhook_subscriptions(id),
  event_id uuid, event text NOT NULL, status text NOT NULL, attempt_count int NOT NULL DEFAULT 0, next_attempt_at timestamptz,
  locked_until timestamptz, claimed_by uuid, due_before_claim timestamptz, last_attempt_at timestamptz, last_status_code int,
  last_error text, created_at timestamptz NOT NULL);
CREATE INDEX ix_due ON webhook_deliveries (next_attempt_at) WHERE status IN ('pending','retrying');
CREATE INDEX ix_log ON webhook_deliveries (subscription_id, gym_id, created_at);
CREATE UNIQUE INDEX ix_fanout ON webhook_deliveries (gym_id, event_id, subscription_id);
CREATE TABLE webhook_attempts (id uuid PRIMARY KEY, gym_id uuid NOT NULL, delivery_id uuid NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
  number int NOT NULL, status_code int, duration_ms int, attempted_at timestamptz NOT NULL, trigger text NOT NULL);
CREATE INDEX ix_attempts_delivery ON webhook_attempts (delivery_id);
INSERT INTO webhook_subscriptions (id, gym_id) SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000001' FROM generate_series(1,100);

CREATE OR REPLACE PROCEDURE replay(events int, count_in_flight boolean, INOUT took interval)
LANGUAGE plpgsql AS $$
DECLARE
  gym uuid := '00000000-0000-0000-0000-000000000001';
  node uuid := gen_random_uuid();
  started timestamptz := clock_timestamp();
  ids uuid[];
BEGIN
  FOR e IN 1..events LOOP
    -- fan-out: one event, a delivery per subscription
    INSERT INTO webhook_deliveries (id, gym_id, subscription_id, event_id, event, status, next_attempt_at, created_at)
    SELECT gen_random_uuid(), gym, s.id, ev, 'lead.created', 'pending', now() - interval '1 s', now()
    FROM webhook_subscriptions s, (SELECT gen_random_uuid() AS ev) x;
    COMMIT;
    -- claim
    WITH due AS (
      SELECT id, next_attempt_at FROM webhook_deliveries
      WHERE status IN ('pending','retrying') AND next_attempt_at <= clock_timestamp() AND (locked_until IS NULL OR locked_until <= clock_timestamp())
      ORDER BY next_attempt_at LIMIT 100 FOR UPDATE SKIP LOCKED),
    claimed AS (
      UPDATE webhook_deliveries d SET locked_until = clock_timestamp() + interval '1 min', next_attempt_at = clock_timestamp() + interval '1 min',
        claimed_by = node, due_before_claim = due.next_attempt_at
      FROM due WHERE d.id = due.id RETURNING d.id, d.subscription_id)
    SELECT array_agg(id) INTO ids FROM claimed;
    IF count_in_flight THEN
      UPDATE webhook_subscriptions s SET in_flight = s.in_flight + c.n
      FROM (SELECT subscription_id, count(*) n FROM webhook_deliveries WHERE id = ANY(ids) GROUP BY 1 ORDER BY 1) c WHERE s.id = c.subscription_id;
    END IF;
    COMMIT;
    -- record
    UPDATE webhook_deliveries SET status = 'delivered', attempt_count = attempt_count + 1, last_attempt_at = clock_timestamp(),
      last_status_code = 200, next_attempt_at = NULL, locked_until = NULL, claimed_by = NULL
    WHERE id = ANY(ids);
    INSERT INTO webhook_attempts (id, gym_id, delivery_id, number, status_code, duration_ms, attempted_at, trigger)
    SELECT gen_random_uuid(), gym, i, 1, 200, 2, clock_timestamp(), 'initial' FROM unnest(ids) i;
    IF count_in_flight THEN
      UPDATE webhook_subscriptions s SET in_flight = s.in_flight - c.n
      FROM (SELECT subscription_id, count(*) n FROM webhook_deliveries WHERE id = ANY(ids) GROUP BY 1 ORDER BY 1) c WHERE s.id = c.subscription_id;
    END IF;
    COMMIT;
  END LOOP;
  took := clock_timestamp() - started;
END $$;
