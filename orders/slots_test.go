package orders_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCheckoutSlotsBoundHeldConnections: with Stripe slow, checkouts wait
// for a slot instead of each pinning a pool connection, so at most
// CheckoutSlots sessions ever hold a checkout lock and the rest of the
// pool stays free for every other request.
func TestCheckoutSlotsBoundHeldConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.svc.CheckoutSlots = 3
	e.fake.SetLatency(300 * time.Millisecond)
	p := e.product(t, 1000, 100)

	var maxHeld atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			var n int64
			_ = e.st.DB().Get(&n, `SELECT count(DISTINCT pid) FROM pg_locks WHERE locktype = 'advisory' AND granted
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

	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := e.checkout(t, p, 1); err != nil {
				failed.Add(1)
				t.Errorf("checkout: %v", err)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	if got := maxHeld.Load(); got > 3 || got == 0 {
		t.Errorf("sessions holding checkout locks peaked at %d, want 1..3 (the slots)", got)
	}
	if st := e.stock(t, p.ID); st != 100-12+int(failed.Load()) {
		t.Errorf("stock = %d after %d checkouts", st, 12-failed.Load())
	}
}
