-- Notifications: the transactional outbox. A row is written in the
-- transaction of the change that causes it, together with the River job
-- that sends it; dedupe_key (template and cause, e.g.
-- 'order-confirmation:<orderId>') makes a redelivered webhook or a retried
-- job write no second row. The message is rendered when the row is
-- written, so what is sent is what the order was at its cause.
CREATE TABLE notifications (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    channel     text NOT NULL CHECK (channel IN ('email', 'sms')),
    template    text NOT NULL CHECK (template <> ''),
    recipient   text NOT NULL CHECK (recipient <> ''),
    subject     text NOT NULL DEFAULT '',
    body_text   text NOT NULL,
    body_html   text NOT NULL DEFAULT '',
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    -- Real send attempts, across admin retries.
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error  text,
    order_id    uuid REFERENCES orders (id) ON DELETE SET NULL,
    customer_id uuid REFERENCES users (id) ON DELETE SET NULL,
    dedupe_key  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);

-- The admins' list walks notifications by (created_at, id), newest first,
-- filtered by status, template, order or customer.
CREATE INDEX notifications_listing_idx ON notifications (created_at DESC, id DESC);
CREATE INDEX notifications_order_idx ON notifications (order_id, created_at DESC) WHERE order_id IS NOT NULL;
CREATE INDEX notifications_customer_idx ON notifications (customer_id, created_at DESC) WHERE customer_id IS NOT NULL;
CREATE INDEX notifications_unsent_idx ON notifications (status, created_at DESC) WHERE status <> 'sent';
