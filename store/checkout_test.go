package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
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
	k, _, _, err := s.ClaimCheckout(ctx, userID, "key-"+uuid.NewString(), "h", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	o, err := placeOrder(ctx, s, store.PlaceOrder{KeyID: k.ID, UserID: userID,
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
	if err != nil {
		return store.Order{}, err
	}
	// Numbered as it committed.
	o.OrderNumber, _, err = s.PlacedOrder(ctx, o.ID)
	return o, err
}

// TestClaimCheckoutConcurrent: many requests with one key make one row,
// and exactly one of them holds its lease.
func TestClaimCheckoutConcurrent(t *testing.T) {
	t.Parallel()
	s := store.New(pgtest.NewDB(t))
	ctx := context.Background()
	userID := shoptest.User(ctx, t, s, nil).ID
	const n = 20
	ids := make([]int64, n)
	leased := make([]bool, n)
	errs := make([]error, n)
	shoptest.Concurrently(t, n, 60*time.Second, func(i int) {
		k, _, ok, err := s.ClaimCheckout(ctx, userID, "same-key", "hash-1", time.Minute)
		ids[i], leased[i], errs[i] = k.ID, ok, err
	})
	holders := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("claim %d got key %d, claim 0 got %d", i, ids[i], ids[0])
		}
		if leased[i] {
			holders++
		}
	}
	if holders != 1 {
		t.Errorf("%d claims hold the lease, want exactly 1", holders)
	}
	var rows int
	if err := s.DB().Get(&rows, `SELECT count(*) FROM idempotency_keys`); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("%d key rows, want 1", rows)
	}
	// The first hash wins; a later body is told apart by the caller, and
	// takes no lease.
	k, _, ok, err := s.ClaimCheckout(context.Background(), userID, "same-key", "hash-2", time.Minute)
	if err != nil || ok || k.ID != ids[0] || k.RequestHash != "hash-1" || k.RecoveryPoint != store.PointStarted {
		t.Errorf("claim with another hash = %+v, leased %v, %v", k, ok, err)
	}
}

// TestCheckoutLeaseScope: a lease holds one (user, key) only, until it is
// released or runs out; renewing or finishing needs the lease to be the
// caller's, so an attempt whose lease was taken over cannot overwrite the
// key.
func TestCheckoutLeaseScope(t *testing.T) {
	t.Parallel()
	s := store.New(pgtest.NewDB(t))
	ctx := context.Background()
	u1, u2 := shoptest.User(ctx, t, s, nil).ID, shoptest.User(ctx, t, s, nil).ID
	claim := func(user, key string, ttl time.Duration) (store.IdempotencyKey, store.Lease, bool) {
		t.Helper()
		k, l, ok, err := s.ClaimCheckout(ctx, user, key, "h", ttl)
		if err != nil {
			t.Fatal(err)
		}
		return k, l, ok
	}
	k, held, ok := claim(u1, "k", time.Minute)
	if !ok || k.LeaseOwner == nil || *k.LeaseOwner != held.Owner || k.LeaseExpiresAt == nil {
		t.Fatalf("first claim: leased %v, row %+v", ok, k)
	}
	if _, _, ok := claim(u1, "k", time.Minute); ok {
		t.Error("(u1, k) leased twice")
	}
	for _, c := range [][2]string{{u1, "k2"}, {u2, "k"}, {u1, "K"}} {
		if _, l, ok := claim(c[0], c[1], time.Minute); !ok {
			t.Errorf("(%s, %s) refused while only (u1, k) is held", c[0], c[1])
		} else if err := s.ReleaseLease(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RenewLease(ctx, held); err != nil {
		t.Errorf("renew a held lease: %v", err)
	}
	if err := s.ReleaseLease(ctx, held); err != nil {
		t.Fatal(err)
	}
	if err := s.RenewLease(ctx, held); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("renew after release: %v, want ErrLeaseLost", err)
	}

	// A lease that runs out is taken over; its old holder can neither
	// renew it, nor release the new one, nor finish the key.
	const short = 20 * time.Millisecond
	before := time.Now()
	_, dead, ok := claim(u1, "k", short)
	if !ok {
		t.Fatal("lease refused after release")
	}
	// Taken at once it must be refused; on a loaded machine the claim may
	// come after the lease ran out, and then it may be taken.
	if _, l, ok := claim(u1, "k", time.Minute); ok {
		if time.Since(before) < short {
			t.Fatal("a live lease was taken over")
		}
		if err := s.ReleaseLease(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	var took store.Lease
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ok bool
		if _, took, ok = claim(u1, "k", time.Minute); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an expired lease was never taken over")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.RenewLease(ctx, dead); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("renew by the old holder: %v, want ErrLeaseLost", err)
	}
	if err := s.ReleaseLease(ctx, dead); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishKeyCreated(ctx, dead, store.Order{ID: uuid.NewString()}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("finish by the old holder: %v, want ErrLeaseLost", err)
	}
	k, err := s.IdempotencyKeyByID(ctx, took.KeyID)
	if err != nil || k.LeaseOwner == nil || *k.LeaseOwner != took.Owner || k.RecoveryPoint != store.PointStarted {
		t.Errorf("after the old holder's attempts: key %+v, %v; want it started and leased by the new holder", k, err)
	}
	if err := s.FinishKeyCreated(ctx, took, store.Order{ID: uuid.NewString()}); err != nil {
		t.Fatal(err)
	}
	if k, err := s.IdempotencyKeyByID(ctx, took.KeyID); err != nil || k.RecoveryPoint != store.PointFinished || k.LeaseOwner != nil || k.LeaseExpiresAt != nil {
		t.Errorf("finished key %+v, %v: want finished with its lease freed", k, err)
	}
	// A finished key is never leased again.
	if _, _, ok := claim(u1, "k", time.Minute); ok {
		t.Error("a finished key was leased")
	}
}

// TestFinishCheckoutSnapshotIsTheOrder: the key's snapshot, which
// FinishCheckout writes in SQL and returns, is the order as stored with
// its intent, every field of it, and the lines; a finish under a lease
// taken over attaches the intent but leaves the key to the new holder.
func TestFinishCheckoutSnapshotIsTheOrder(t *testing.T) {
	t.Parallel()
	s := store.New(pgtest.NewDB(t))
	ctx := context.Background()
	p := shoptest.Product(ctx, t, s, &shoptest.ProductOpts{PriceCents: 1250})
	userID := shoptest.User(ctx, t, s, nil).ID
	place := func(key string) (store.Order, store.Lease) {
		t.Helper()
		if _, err := s.AddToCart(ctx, userID, p.ID, 2); err != nil {
			t.Fatal(err)
		}
		k, l, ok, err := s.ClaimCheckout(ctx, userID, key, "h", time.Minute)
		if err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		o, err := placeOrder(ctx, s, store.PlaceOrder{KeyID: k.ID, UserID: userID,
			ShippingAddress: []byte(`{"city": "London"}`), BillingAddress: []byte(`{"city": "Paris"}`),
			Pricing: shopd.DefaultPricing, PaymentDueAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return o, l
	}

	o, l := place("k1")
	got, err := s.FinishCheckout(ctx, l, o, "pi_1", "pi_1_secret")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := s.Order(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.PaymentIntentID == nil || *stored.PaymentIntentID != "pi_1" || stored.OrderNumber == 0 {
		t.Fatalf("stored order %+v: want intent pi_1 and a number", stored)
	}
	sameOrder(t, "answer", got, stored)
	k, err := s.IdempotencyKeyByID(ctx, l.KeyID)
	if err != nil || k.RecoveryPoint != store.PointFinished || k.LeaseOwner != nil {
		t.Fatalf("key %+v, %v: want finished and free", k, err)
	}
	replayed, err := k.Order()
	if err != nil {
		t.Fatal(err)
	}
	sameOrder(t, "replay", replayed, stored)

	o, l = place("k2")
	stale := l
	stale.Owner = uuid.NewString()
	if _, err := s.FinishCheckout(ctx, stale, o, "pi_2", "pi_2_secret"); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("finish under a lost lease: %v, want ErrLeaseLost", err)
	}
	if cur, err := s.Order(ctx, o.ID); err != nil || cur.PaymentIntentID == nil || *cur.PaymentIntentID != "pi_2" {
		t.Errorf("order after a finish under a lost lease: %+v, %v: want intent pi_2 attached", cur, err)
	}
	if k, err := s.IdempotencyKeyByID(ctx, l.KeyID); err != nil || k.RecoveryPoint != store.PointOrderCreated || k.LeaseOwner == nil || *k.LeaseOwner != l.Owner {
		t.Errorf("key after a finish under a lost lease: %+v, %v: want it left to its holder", k, err)
	}
	// The holder finishes it: the intent is already there.
	got, err = s.FinishCheckout(ctx, l, o, "pi_2", "pi_2_secret")
	if err != nil {
		t.Fatal(err)
	}
	if stored, err = s.Order(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	sameOrder(t, "answer after an earlier attach", got, stored)
}

// sameOrder fails unless got and want agree on every field, times as
// instants.
func sameOrder(t *testing.T, what string, got, want store.Order) {
	t.Helper()
	g, w := orderFields(t, got), orderFields(t, want)
	for name, wv := range w {
		gv := g[name]
		if wt, ok := wv.(time.Time); ok {
			if gt, ok := gv.(time.Time); !ok || !gt.Equal(wt) {
				t.Errorf("%s: %s = %v, want %v", what, name, gv, wv)
			}
			continue
		}
		if !reflect.DeepEqual(gv, wv) {
			t.Errorf("%s: %s = %#v, want %#v", what, name, gv, wv)
		}
	}
}

// orderFields maps an order's JSON fields to their values, times parsed.
func orderFields(t *testing.T, o store.Order) map[string]any {
	t.Helper()
	raw, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for name, v := range m {
		if s, ok := v.(string); ok && strings.HasSuffix(name, "At") {
			if tm, err := time.Parse(time.RFC3339Nano, s); err == nil {
				m[name] = tm
			}
		}
	}
	if len(m) < 25 {
		t.Fatalf("order JSON has %d fields, want every one of Order's: %s", len(m), raw)
	}
	return m
}
