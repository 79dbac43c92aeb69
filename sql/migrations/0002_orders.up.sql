-- Carts, orders and their history, checkout idempotency, Stripe events, refunds.

CREATE TABLE carts (
    user_id    uuid PRIMARY KEY REFERENCES users (id),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cart_items (
    user_id    uuid NOT NULL REFERENCES carts (user_id) ON DELETE CASCADE,
    product_id uuid NOT NULL REFERENCES products (id),
    quantity   integer NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, product_id)
);

-- One row: the last order number handed out. Taking the next one locks the
-- row until the order commits, so numbers have no gaps. Every checkout
-- needs this row, so checkout numbers its order in its last statement.
CREATE TABLE order_number_counter (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last      bigint NOT NULL
);
INSERT INTO order_number_counter (last) VALUES (0);

CREATE TABLE orders (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- NULL only inside the checkout transaction (see orders_numbered).
    order_number       bigint UNIQUE,
    customer_id        uuid NOT NULL REFERENCES users (id),
    email              text NOT NULL,
    status             text NOT NULL CHECK (status IN ('pending', 'processing', 'fulfilled', 'cancelled')),
    payment_status     text NOT NULL CHECK (payment_status IN ('pending', 'paid', 'failed', 'refunded', 'partially_refunded')),
    fulfillment_status text NOT NULL CHECK (fulfillment_status IN ('unfulfilled', 'fulfilled')),
    subtotal_cents     bigint NOT NULL CHECK (subtotal_cents >= 0),
    tax_cents          bigint NOT NULL CHECK (tax_cents >= 0),
    shipping_cents     bigint NOT NULL CHECK (shipping_cents >= 0),
    discount_cents     bigint NOT NULL CHECK (discount_cents >= 0),
    total_cents        bigint NOT NULL CHECK (total_cents = subtotal_cents + tax_cents + shipping_cents - discount_cents AND total_cents > 0),
    refunded_cents     bigint NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0 AND refunded_cents <= total_cents),
    currency           text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    shipping_address   jsonb NOT NULL,
    billing_address    jsonb NOT NULL,
    payment_intent_id  text UNIQUE,
    client_secret      text,
    tracking_number    text,
    shipped_at         timestamptz,
    delivered_at       timestamptz,
    payment_due_at     timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX orders_customer_idx ON orders (customer_id, created_at DESC, id DESC);
CREATE INDEX orders_listing_idx ON orders (created_at DESC, id DESC);
CREATE INDEX orders_unpaid_idx ON orders (payment_due_at) WHERE status = 'pending';

CREATE TABLE order_items (
    order_id         uuid NOT NULL REFERENCES orders (id),
    line_no          integer NOT NULL,
    product_id       uuid NOT NULL REFERENCES products (id),
    sku              text NOT NULL,
    name             text NOT NULL,
    unit_price_cents bigint NOT NULL CHECK (unit_price_cents > 0),
    quantity         integer NOT NULL CHECK (quantity > 0),
    line_total_cents bigint NOT NULL CHECK (line_total_cents = unit_price_cents * quantity),
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE order_events (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id           uuid NOT NULL REFERENCES orders (id),
    type               text NOT NULL,
    status             text NOT NULL,
    payment_status     text NOT NULL,
    fulfillment_status text NOT NULL,
    actor              text NOT NULL CHECK (actor IN ('customer', 'admin', 'system', 'stripe')),
    actor_id           uuid,
    amount_cents       bigint,
    note               text,
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX order_events_order_idx ON order_events (order_id, id);

CREATE TABLE refunds (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id         uuid NOT NULL REFERENCES orders (id),
    amount_cents     bigint NOT NULL CHECK (amount_cents > 0),
    reason           text,
    status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    stripe_refund_id text UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX refunds_order_idx ON refunds (order_id);

-- Checkout idempotency (one row per user and Idempotency-Key): the request's
-- hash, how far the checkout got, and once finished the response to replay.
CREATE TABLE idempotency_keys (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id),
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash    text NOT NULL,
    recovery_point  text NOT NULL DEFAULT 'started' CHECK (recovery_point IN ('started', 'order_created', 'finished')),
    order_id        uuid REFERENCES orders (id),
    response_status integer,
    response_body   jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_user_key UNIQUE (user_id, key)
);

CREATE INDEX idempotency_keys_unfinished_idx ON idempotency_keys (updated_at) WHERE recovery_point <> 'finished';

-- Stripe event ids already applied, written in the same transaction as
-- their effect.
CREATE TABLE stripe_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    order_id    uuid,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- A placed order keeps its lines and money forever: changes are new events.
CREATE FUNCTION forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER order_items_immutable BEFORE UPDATE OR DELETE ON order_items
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER order_events_immutable BEFORE UPDATE OR DELETE ON order_events
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
-- Numbering an unnumbered order is the one change of order_number allowed.
CREATE TRIGGER orders_frozen BEFORE UPDATE ON orders
    FOR EACH ROW
    WHEN ((OLD.order_number IS NOT NULL AND OLD.order_number IS DISTINCT FROM NEW.order_number)
        OR OLD.customer_id IS DISTINCT FROM NEW.customer_id
        OR OLD.email IS DISTINCT FROM NEW.email
        OR OLD.subtotal_cents IS DISTINCT FROM NEW.subtotal_cents
        OR OLD.tax_cents IS DISTINCT FROM NEW.tax_cents
        OR OLD.shipping_cents IS DISTINCT FROM NEW.shipping_cents
        OR OLD.discount_cents IS DISTINCT FROM NEW.discount_cents
        OR OLD.total_cents IS DISTINCT FROM NEW.total_cents
        OR OLD.currency IS DISTINCT FROM NEW.currency
        OR OLD.shipping_address IS DISTINCT FROM NEW.shipping_address
        OR OLD.billing_address IS DISTINCT FROM NEW.billing_address
        OR OLD.created_at IS DISTINCT FROM NEW.created_at)
    EXECUTE FUNCTION forbid_change();
CREATE TRIGGER orders_no_delete BEFORE DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION forbid_change();

-- An order is numbered by the last statement of its checkout; it may never
-- be committed without a number.
CREATE FUNCTION require_order_number() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT order_number FROM orders WHERE id = NEW.id) IS NULL THEN
        RAISE EXCEPTION 'order % committed without a number', NEW.id USING ERRCODE = 'not_null_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER orders_numbered AFTER INSERT ON orders
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION require_order_number();
