-- A checkout in flight holds a lease on its idempotency key instead of a
-- session advisory lock on a pinned connection: it names its owner (one
-- checkout attempt) and expires, so a checkout waiting on Stripe holds no
-- database connection, and a retry takes over the key of an instance that
-- died once its lease has run out. Leases are taken, renewed and released
-- in single statements (store/checkout.go).
ALTER TABLE idempotency_keys
	ADD COLUMN lease_owner uuid,
	ADD COLUMN lease_expires_at timestamptz,
	ADD CONSTRAINT idempotency_keys_lease_check
		CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL));

-- Orders are numbered by the commit of their checkout ("assigned at
-- commit"): a deferred trigger takes the next number as the transaction
-- commits, so the counter row, which every checkout locks, is held for the
-- commit alone instead of from a statement before it, across round trips
-- to the server, until the commit. Numbers still come without gaps: a
-- transaction that rolls back never fires it. It replaces the deferred
-- check that an order was numbered by the checkout's last statement.
DROP TRIGGER orders_numbered ON orders;
DROP FUNCTION require_order_number();

CREATE FUNCTION number_order() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next bigint;
BEGIN
    IF (SELECT order_number FROM orders WHERE id = NEW.id) IS NULL THEN
        UPDATE order_number_counter SET last = last + 1 RETURNING last INTO next;
        UPDATE orders SET order_number = next WHERE id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER orders_numbered AFTER INSERT ON orders
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION number_order();
