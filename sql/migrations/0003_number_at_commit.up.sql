-- Orders are numbered by the last statement of the checkout transaction,
-- so the counter row (every checkout's one shared lock) is held only from
-- there to commit. The number may be NULL inside that transaction, never
-- after it: a deferred constraint trigger checks it at commit.

ALTER TABLE orders ALTER COLUMN order_number DROP NOT NULL;

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

-- Numbering an unnumbered order is the one change of order_number allowed.
DROP TRIGGER orders_frozen ON orders;
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
