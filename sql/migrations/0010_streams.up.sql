-- Live updates: the events the Server-Sent Event streams serve.
--
-- stream_events is filled by triggers on order_events and
-- low_stock_crossings, so every path that records a transition or a
-- crossing (checkout, webhooks, jobs, admin calls, anything later) feeds the
-- streams in its own transaction, and nothing is streamed that did not
-- commit. The same trigger sends the NOTIFY, which PostgreSQL delivers only
-- when (and if) that transaction commits.
--
-- Order of delivery. An identity id is taken at insert, not at commit: a
-- transaction that inserted id 10 may commit after one that inserted id 11,
-- and a client that saw 11 and resumed "after 11" would never see 10. So
-- each row also records its transaction's id (xid), and the streams order by
-- (xid, id) and serve only rows below stream_horizon(): the oldest
-- transaction of this database still running. Those rows are all committed
-- and visible, no transaction can add a row before them any more, and the
-- set only grows at its end: a position in (xid, id) order is a resume
-- point that cannot skip a row. The cost is latency, not throughput: a row
-- waits for the transactions that started writing before its own to
-- finish; no writer waits for another.
CREATE TABLE stream_events (
    id                 bigint GENERATED ALWAYS AS IDENTITY,
    xid                xid8 NOT NULL DEFAULT pg_current_xact_id(),
    type               text NOT NULL,
    order_id           uuid REFERENCES orders (id),
    status             text,
    payment_status     text,
    fulfillment_status text,
    product_id         uuid REFERENCES products (id),
    sku                text,
    stock              integer,
    occurred_at        timestamptz NOT NULL,
    PRIMARY KEY (xid, id)
);

-- One order's stream reads only its own rows.
CREATE INDEX stream_events_order_idx ON stream_events (order_id, xid, id)
    WHERE order_id IS NOT NULL;

-- Rows never change (old ones may be deleted: a client resuming from
-- before the oldest row left gets what is left).
CREATE TRIGGER stream_events_immutable BEFORE UPDATE ON stream_events
    FOR EACH ROW EXECUTE FUNCTION forbid_change();

-- stream_horizon is the xid below which every transaction of this
-- database that was running when the calling statement's snapshot was
-- taken has finished: the oldest of the snapshot's running transactions,
-- leaving out those that pg_stat_activity shows running in another
-- database (they cannot write here; a transaction's xid is cluster-wide, so
-- pg_snapshot_xmin alone would make every database wait for the others'
-- long transactions). A running transaction that cannot be placed (it ended
-- since the snapshot, or its session is not visible to this role) counts
-- as this database's: the horizon is then lower than it could be, for one
-- read. STABLE: it runs in its caller's snapshot; call it as a scalar
-- subquery, once per statement.
CREATE FUNCTION stream_horizon() RETURNS xid8
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT x
         FROM pg_snapshot_xip(pg_current_snapshot()) AS x
         WHERE x::text::bigint % 4294967296 NOT IN (
             SELECT backend_xid::text::bigint
             FROM pg_stat_activity
             WHERE backend_xid IS NOT NULL
                 AND datname IS DISTINCT FROM current_database())
         ORDER BY x
         LIMIT 1),
        pg_snapshot_xmax(pg_current_snapshot()))
$$;

-- The payload is empty: listeners read the table from where they are, so a
-- notification only says "look". Identical notifications of one
-- transaction are folded into one by PostgreSQL, so a transition with
-- several events, or a checkout that crosses several thresholds, costs
-- one.
CREATE FUNCTION stream_order_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    name text;
BEGIN
    -- The public event names; payment_intent_created and refund_failed
    -- have none and are not streamed.
    name := CASE NEW.type
        WHEN 'placed' THEN 'order.placed'
        WHEN 'paid' THEN 'order.paid'
        WHEN 'payment_failed' THEN 'order.payment_failed'
        WHEN 'cancelled' THEN 'order.cancelled'
        WHEN 'fulfilled' THEN 'order.fulfilled'
        WHEN 'delivered' THEN 'order.delivered'
        WHEN 'refunded' THEN 'order.refunded'
    END;
    IF name IS NOT NULL THEN
        INSERT INTO stream_events (type, order_id, status, payment_status, fulfillment_status, occurred_at)
        VALUES (name, NEW.order_id, NEW.status, NEW.payment_status, NEW.fulfillment_status, NEW.created_at);
        PERFORM pg_notify('shopd_stream_events', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER order_events_stream AFTER INSERT ON order_events
    FOR EACH ROW EXECUTE FUNCTION stream_order_event();

-- The SKU is copied as it is when the stock crosses (a later rename does
-- not rewrite history).
CREATE FUNCTION stream_low_stock_crossing() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO stream_events (type, product_id, sku, stock, occurred_at)
    SELECT 'inventory.low_stock', p.id, p.sku, NEW.stock, NEW.occurred_at
    FROM products p
    WHERE p.id = NEW.product_id;
    PERFORM pg_notify('shopd_stream_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER low_stock_crossings_stream AFTER INSERT ON low_stock_crossings
    FOR EACH ROW EXECUTE FUNCTION stream_low_stock_crossing();
