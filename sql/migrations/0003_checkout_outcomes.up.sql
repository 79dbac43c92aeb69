-- A finished idempotency key records what its checkout came to in the
-- shop's own terms, not as HTTP: 'created' with the order as it was
-- answered (order_snapshot, the order's JSON), or 'refused' with the
-- shopd error code and message. The HTTP layer renders either, the same
-- on every replay. Until the checkout ends the key also keeps the cart as
-- checkout found it (cart_snapshot), so that a payment the provider
-- refuses for good can give the customer's cart back.

ALTER TABLE idempotency_keys
    ADD COLUMN outcome text CHECK (outcome IN ('created', 'refused')),
    ADD COLUMN refusal_code text,
    ADD COLUMN refusal_message text,
    ADD COLUMN cart_snapshot jsonb;

ALTER TABLE idempotency_keys RENAME COLUMN response_body TO order_snapshot;

-- Keys finished before this migration stored the HTTP answer. A 409 kept
-- its problem's detail; a 201 the API's checkout body, whose order becomes
-- the snapshot (the API's names are the snapshot's; only the number is
-- stored as ORD-000123 there, and the client secret sat beside the order).
UPDATE idempotency_keys
SET outcome = 'refused',
    refusal_code = 'conflict',
    refusal_message = order_snapshot ->> 'detail',
    order_snapshot = NULL
WHERE recovery_point = 'finished'
    AND response_status = 409;

UPDATE idempotency_keys
SET outcome = 'created',
    order_snapshot = (order_snapshot -> 'order') || jsonb_build_object(
        'orderNumber', substring(order_snapshot -> 'order' ->> 'orderNumber' FROM 5)::bigint,
        'clientSecret', order_snapshot -> 'payment' -> 'clientSecret')
WHERE recovery_point = 'finished'
    AND response_status = 201;

ALTER TABLE idempotency_keys
    DROP COLUMN response_status,
    ADD CONSTRAINT idempotency_keys_finished_outcome
        CHECK ((recovery_point = 'finished') = (outcome IS NOT NULL)),
    ADD CONSTRAINT idempotency_keys_created_snapshot
        CHECK (outcome IS DISTINCT FROM 'created' OR order_snapshot IS NOT NULL),
    ADD CONSTRAINT idempotency_keys_refusal
        CHECK (outcome IS DISTINCT FROM 'refused' OR (refusal_code IS NOT NULL AND refusal_message IS NOT NULL));
