-- Order workflows. A cancelled order whose payment never completed has
-- payment status 'cancelled', not 'pending': nothing was taken and nothing
-- may be, and a client must not read it as still payable. An order whose
-- payment failed keeps 'failed' (that payment completed, as a failure).
ALTER TABLE orders
    DROP CONSTRAINT orders_payment_status_check,
    ADD CONSTRAINT orders_payment_status_check
        CHECK (payment_status IN ('pending', 'paid', 'failed', 'refunded', 'partially_refunded', 'cancelled'));

-- Orders cancelled before this release while their payment was pending.
UPDATE orders
SET payment_status = 'cancelled'
WHERE status = 'cancelled'
    AND payment_status = 'pending';

-- A payment status 'cancelled' goes only with a cancelled order.
ALTER TABLE orders
    ADD CONSTRAINT orders_payment_cancelled_only_when_cancelled
        CHECK (payment_status <> 'cancelled' OR status = 'cancelled');
