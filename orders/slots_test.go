package orders_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopd/shopd/internal/shoptest"
)

// TestCheckoutSlotsBoundHeldConnections: with Stripe slow, checkouts wait
// for a slot instead of each pinning a pool connection, so at most
// CheckoutSlots sessions ever hold a checkout lock and the rest of the
// pool stays free for every other request.
func TestCheckoutSlotsBoundHeldConnections(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	svc.CheckoutSlots = 3
	b.fake.SetLatency(300 * time.Millisecond)
	p := b.product(t, 1000, 100)

	var maxHeld atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			var n int64
			_ = b.store.DB().Get(&n, `SELECT count(DISTINCT pid) FROM pg_locks WHERE locktype = 'advisory' AND granted
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
			for {
				m := maxHeld.Load()
				if n <= m || maxHeld.CompareAndSwap(m, n) {
					break
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	var failed atomic.Int64
	shoptest.Concurrently(t, 12, 60*time.Second, func(int) {
		if _, _, err := b.checkout(t, p, 1); err != nil {
			failed.Add(1)
			t.Errorf("checkout: %v", err)
		}
	})
	close(stop)
	<-sampled
	if got := maxHeld.Load(); got > 3 || got == 0 {
		t.Errorf("sessions holding checkout locks peaked at %d, want 1..3 (the slots)", got)
	}
	if st := b.stock(t, p.ID); st != 100-12+int(failed.Load()) {
		t.Errorf("stock = %d after %d checkouts", st, 12-failed.Load())
	}
}
