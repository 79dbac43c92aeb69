package orders_test

import (
	"context"
	"testing"

	"github.com/shopd/shopd/orders"
)

// TestReconcilePurgesExpiredKeys: after 24 h a finished Idempotency-Key
// is deleted (its replay window is over); a younger one is kept.
func TestReconcilePurgesExpiredKeys(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	b.store.Now = b.clock.Now
	ctx := context.Background()
	p := b.product(t, 1000, 10)
	oldUser, oldKey, err := b.checkout(t, p, 1)
	if err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(orders.KeyRetention / 2)
	youngUser, youngKey, err := b.checkout(t, p, 1)
	if err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(orders.KeyRetention/2 + 1)
	svc.Reconcile(ctx)
	count := func(user, key string) int {
		var n int
		if err := b.store.DB().Get(&n, `SELECT count(*) FROM idempotency_keys WHERE user_id = $1 AND key = $2`, user, key); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count(oldUser, oldKey) != 0 {
		t.Error("a key older than 24 h was kept")
	}
	if count(youngUser, youngKey) != 1 {
		t.Error("a key younger than 24 h was purged")
	}
}
