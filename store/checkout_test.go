package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/store"
)

// placeTestOrder checks out qty of the product for a new user, as the
// order transaction of a checkout, due at due.
func placeTestOrder(t *testing.T, s *store.Store, p store.Product, qty int, due time.Time) store.Order {
	t.Helper()
	ctx := context.Background()
	userID := shoptest.User(ctx, t, s, nil).ID
	if _, err := s.AddToCart(ctx, userID, p.ID, qty); err != nil {
		t.Fatal(err)
	}
	k, err := s.ClaimIdempotencyKey(ctx, userID, "key-"+uuid.NewString(), "h")
	if err != nil {
		t.Fatal(err)
	}
	o, err := placeOrder(ctx, s, store.PlaceOrder{KeyID: k.ID, UserID: userID, Email: "x@example.com",
		ShippingAddress: []byte(`{}`), BillingAddress: []byte(`{}`), Pricing: shopd.DefaultPricing, PaymentDueAt: due})
	if err != nil {
		t.Fatalf("place order: %v", err)
	}
	if o, err = s.AttachPaymentIntent(ctx, o, "pi_"+uuid.NewString()[:8], "secret"); err != nil {
		t.Fatal(err)
	}
	return o
}

// placeOrder runs the order transaction on its own, as checkout does.
func placeOrder(ctx context.Context, s *store.Store, p store.PlaceOrder) (store.Order, error) {
	var o store.Order
	err := s.WithTx(ctx, func(tx *store.Tx) error {
		var err error
		o, err = tx.PlaceOrder(ctx, p)
		return err
	})
	return o, err
}

func TestClaimIdempotencyKeyConcurrent(t *testing.T) {
	t.Parallel()
	s := store.New(pgtest.NewDB(t))
	ctx := context.Background()
	userID := shoptest.User(ctx, t, s, nil).ID
	const n = 20
	ids := make([]int64, n)
	errs := make([]error, n)
	shoptest.Concurrently(t, n, 60*time.Second, func(i int) {
		k, err := s.ClaimIdempotencyKey(ctx, userID, "same-key", "hash-1")
		ids[i], errs[i] = k.ID, err
	})
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("claim %d got key %d, claim 0 got %d", i, ids[i], ids[0])
		}
	}
	var rows int
	if err := s.DB().Get(&rows, `SELECT count(*) FROM idempotency_keys`); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("%d key rows, want 1", rows)
	}
	// The first hash wins; a later body is told apart by the caller.
	k, err := s.ClaimIdempotencyKey(context.Background(), userID, "same-key", "hash-2")
	if err != nil || k.ID != ids[0] || k.RequestHash != "hash-1" || k.RecoveryPoint != store.PointStarted {
		t.Errorf("claim with another hash = %+v, %v", k, err)
	}
}

func TestTryLockCheckoutScope(t *testing.T) {
	t.Parallel()
	s := store.New(pgtest.NewDB(t))
	ctx := context.Background()
	u1, u2 := uuid.NewString(), uuid.NewString()
	pinned := func() *store.Conn {
		p, err := s.Pin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Release)
		return p
	}
	try := func(user, key string) (*store.CheckoutLock, bool) {
		t.Helper()
		l, ok, err := pinned().TryLockCheckout(ctx, user, key)
		if err != nil {
			t.Fatal(err)
		}
		return l, ok
	}
	held, ok := try(u1, "k")
	if !ok {
		t.Fatal("first lock refused")
	}
	if _, ok := try(u1, "k"); ok {
		t.Error("(u1, k) locked twice")
	}
	for _, c := range [][2]string{{u1, "k2"}, {u2, "k"}, {u1, "K"}} {
		l, ok := try(c[0], c[1])
		if !ok {
			t.Errorf("(%s, %s) refused while only (u1, k) is held", c[0], c[1])
			continue
		}
		l.Unlock()
	}
	held.Unlock()
	l, ok := try(u1, "k")
	if !ok {
		t.Fatal("lock refused after Unlock")
	}
	l.Unlock()
}
