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
