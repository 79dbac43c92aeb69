package orders_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/orders"
)

const intentsPath = "/v1/payment_intents"

// waitFor polls cond until it holds, failing the test after a generous
// deadline (a hang, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestCheckoutWaitingOnStripeHoldsNoConnection: a checkout in flight is
// marked by its lease on the key, not by a session lock, so checkouts
// waiting for Stripe hold no database connection: more of them than the
// pool has connections wait at once, with the pool idle, and all finish.
func TestCheckoutWaitingOnStripeHoldsNoConnection(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	p := b.product(t, 1000, 100)
	b.store.DB().SetMaxOpenConns(4)
	release := b.fake.Hold(intentsPath)
	defer release()

	const buyers = 12
	var failed atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		shoptest.Concurrently(t, buyers, 60*time.Second, func(int) {
			if _, _, err := b.checkout(t, p, 1); err != nil {
				failed.Add(1)
				t.Errorf("checkout: %v", err)
			}
		})
	}()
	waitFor(t, "every checkout waiting on Stripe", func() bool { return b.fake.Held(intentsPath) == buyers })
	if st := b.store.DB().Stats(); st.InUse != 0 {
		t.Errorf("%d pool connections in use while %d checkouts wait on Stripe, want 0", st.InUse, buyers)
	}
	var leased int
	if err := b.store.DB().Get(&leased, `SELECT count(*) FROM idempotency_keys WHERE lease_owner IS NOT NULL AND lease_expires_at > now()`); err != nil {
		t.Fatal(err)
	}
	if leased != buyers {
		t.Errorf("%d keys leased while %d checkouts are in flight", leased, buyers)
	}
	release()
	<-done
	if failed.Load() != 0 {
		return
	}
	if st := b.stock(t, p.ID); st != 100-buyers {
		t.Errorf("stock = %d after %d checkouts", st, buyers)
	}
	if n := b.fake.IntentCount(); n != buyers {
		t.Errorf("intents = %d, want %d", n, buyers)
	}
	var still int
	if err := b.store.DB().Get(&still, `SELECT count(*) FROM idempotency_keys WHERE lease_owner IS NOT NULL OR recovery_point <> 'finished'`); err != nil {
		t.Fatal(err)
	}
	if still != 0 {
		t.Errorf("%d keys unfinished or still leased after every checkout answered", still)
	}
}

// TestCheckoutRenewsItsLease: a Stripe call that outlasts the lease does
// not let a retry in: the checkout renews its lease while it waits, and
// the retry gets 409 in flight until the checkout ends, then its answer.
func TestCheckoutRenewsItsLease(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	svc.LeaseTTL = 60 * time.Millisecond
	p := b.product(t, 1000, 10)
	user := shoptest.User(context.Background(), t, b.store, nil).ID
	if _, err := b.store.AddToCart(context.Background(), user, p.ID, 1); err != nil {
		t.Fatal(err)
	}
	req := orders.CheckoutRequest{UserID: user, Key: "slow", RequestHash: "h", ShippingAddress: []byte(`{}`), BillingAddress: []byte(`{}`)}
	release := b.fake.Hold(intentsPath)
	defer release()
	type result struct {
		placed orders.Placed
		err    error
	}
	first := make(chan result, 1)
	go func() {
		p, err := svc.Checkout(context.Background(), req)
		first <- result{p, err}
	}()
	waitFor(t, "the checkout waiting on Stripe", func() bool { return b.fake.Held(intentsPath) == 1 })

	// Several renewals later (each moves the expiry), the lease is still
	// the checkout's: a retry is refused as in flight.
	expiries := map[time.Time]bool{}
	waitFor(t, "three renewals of the lease", func() bool {
		var at time.Time
		if err := b.store.DB().Get(&at, `SELECT lease_expires_at FROM idempotency_keys WHERE key = 'slow'`); err != nil {
			t.Fatal(err)
		}
		expiries[at] = true
		return len(expiries) >= 4
	})
	if _, err := svc.Checkout(context.Background(), req); shopd.ErrorCode(err) != shopd.EInFlight {
		t.Fatalf("retry while the first waits on Stripe: %v, want in flight", err)
	}
	release()
	r := <-first
	if r.err != nil || r.placed.Replay {
		t.Fatalf("first checkout: %+v, %v", r.placed, r.err)
	}
	again, err := svc.Checkout(context.Background(), req)
	if err != nil || !again.Replay || again.Order.ID != r.placed.Order.ID {
		t.Fatalf("retry after the end: %+v, %v; want a replay of order %s", again, err, r.placed.Order.ID)
	}
	if n := len(b.fake.IntentsForOrder(r.placed.Order.ID)); n != 1 {
		t.Errorf("intents = %d, want 1", n)
	}
}
