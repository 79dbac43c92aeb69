-- Admin order search (GET /v1/orders?q=): an order number is found through
-- the unique index on order_number; an email prefix through this one.
-- text_pattern_ops lets LIKE 'prefix%' use a btree range scan whatever the
-- database's collation; lower() makes the match case-insensitive even for
-- emails stored before they were normalised.
CREATE INDEX orders_email_prefix_idx ON orders (lower(email) text_pattern_ops);
