-- Customers: profile preferences, saved addresses, and the order
-- statistics their profile shows.

-- total_orders and total_spent_cents are kept by the money path in the
-- transaction of every payment or refund transition (recomputed from the
-- customer's orders, so a redelivered event cannot count twice). They
-- cover orders in usd, the currency a Customer reports them in.
ALTER TABLE users
    ADD COLUMN marketing_opt_in boolean NOT NULL DEFAULT false,
    ADD COLUMN total_orders integer NOT NULL DEFAULT 0 CHECK (total_orders >= 0),
    ADD COLUMN total_spent_cents bigint NOT NULL DEFAULT 0 CHECK (total_spent_cents >= 0),
    -- What the admins' ?q= searches: lower-cased so one trigram index
    -- serves case-insensitive LIKE on the email and both names.
    ADD COLUMN search_text text GENERATED ALWAYS AS (lower(email || ' ' || first_name || ' ' || last_name)) STORED;

CREATE INDEX users_search_idx ON users USING gin (search_text gin_trgm_ops);
-- The admins' customer list walks customers by (created_at, id), newest first.
CREATE INDEX users_listing_idx ON users (created_at DESC, id DESC) WHERE role = 'customer';

-- Orders placed before this migration count too.
UPDATE users u
SET total_orders = s.orders,
    total_spent_cents = s.spent
FROM (
    SELECT customer_id, count(*) AS orders, sum(total_cents - refunded_cents) AS spent
    FROM orders
    WHERE currency = 'usd'
        AND payment_status IN ('paid', 'partially_refunded', 'refunded')
    GROUP BY customer_id
) s
WHERE u.id = s.customer_id;

CREATE TABLE customer_addresses (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    first_name  text NOT NULL CHECK (first_name <> ''),
    last_name   text NOT NULL CHECK (last_name <> ''),
    line1       text NOT NULL CHECK (line1 <> ''),
    line2       text,
    city        text NOT NULL CHECK (city <> ''),
    region      text,
    postal_code text NOT NULL CHECK (postal_code <> ''),
    country     text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    phone       text,
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX customer_addresses_user_idx ON customer_addresses (user_id, created_at DESC, id DESC);

-- At most one default per customer...
CREATE UNIQUE INDEX customer_addresses_one_default ON customer_addresses (user_id) WHERE is_default;

-- ...and at least one while any address exists, checked at commit so that
-- moving the default (clear the old, set the new) may pass through none.
CREATE FUNCTION require_default_address() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    owner uuid;
BEGIN
    IF TG_OP = 'DELETE' THEN
        owner := OLD.user_id;
    ELSE
        owner := NEW.user_id;
    END IF;
    IF EXISTS (SELECT 1 FROM customer_addresses WHERE user_id = owner)
        AND NOT EXISTS (SELECT 1 FROM customer_addresses WHERE user_id = owner AND is_default) THEN
        RAISE EXCEPTION 'customer % has saved addresses but no default', owner
            USING ERRCODE = 'check_violation', CONSTRAINT = 'customer_addresses_have_default';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER customer_addresses_have_default
    AFTER INSERT OR UPDATE OR DELETE ON customer_addresses
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION require_default_address();
