package handlers_test

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/store"
)

// interrupted is a checkout whose first attempt is made to fail, on a shop
// of its own: a customer with 2 units of a stock-5 product in the cart,
// and the Idempotency-Key every attempt sends.
type interrupted struct {
	*shop
	c   account
	p   store.Product
	key string
}

// newInterrupted arranges one.
func newInterrupted(t *testing.T) *interrupted {
	t.Helper()
	s := newShop(t)
	c := s.newCustomer(t)
	p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: 3000, Stock: new(5)})
	s.fillCart(t, c.token, line{p.ID, 2})
	return &interrupted{shop: s, c: c, p: p, key: newKey()}
}

// attempt checks out with the key.
func (at *interrupted) attempt(t *testing.T) *resp {
	t.Helper()
	return at.checkout(t, at.c.token, at.key)
}

// failFirst makes the first attempt, which must fail with the status as a
// problem, and checks what it leaves: the order placed and pending without
// an intent, the stock taken, the key at order_created. It returns the
// answer and the order's id.
func (at *interrupted) failFirst(t *testing.T, status int) (*resp, string) {
	t.Helper()
	r := at.attempt(t)
	expectProblem(t, r, status)
	id := at.onlyOrderOf(t, at.c.id)
	o := at.storedOrder(t, id)
	if o.Status != "pending" || o.PaymentStatus != "pending" || o.PaymentIntentID != nil {
		t.Errorf("order after the failure: %s/%s intent %v, want pending/pending without intent", o.Status, o.PaymentStatus, o.PaymentIntentID)
	}
	if k := at.keyState(t, at.c.id, at.key); k != "order_created" {
		t.Errorf("key is %q, want order_created", k)
	}
	if st := at.dbStock(t, at.p.ID); st != 3 {
		t.Errorf("stock = %d after the order transaction, want 3", st)
	}
	return r, id
}

// retry checks out again with the key and checks that it finished the
// order: the same order with one PaymentIntent (intentID, when known)
// charging its total, stock and sale taken once, the key finished, and
// the answer replayed from then on.
func (at *interrupted) retry(t *testing.T, orderID, intentID string) gen.CheckoutResult {
	t.Helper()
	r := at.attempt(t)
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		t.Fatalf("retry: status %d: %s", r.status, r.body)
	}
	var out gen.CheckoutResult
	r.decode(t, &out)
	if out.Order.Id != orderID {
		t.Errorf("retry answered order %s, want %s", out.Order.Id, orderID)
	}
	in := at.fake.IntentsForOrder(orderID)
	if len(in) != 1 || at.fake.IntentCount() != 1 {
		t.Fatalf("intents for the order = %d (all: %d), want 1", len(in), at.fake.IntentCount())
	}
	if out.Payment.PaymentIntentId != in[0].ID || out.Order.PaymentIntentId.MustGet() != in[0].ID {
		t.Errorf("retry answered intent %s, Stripe has %s", out.Payment.PaymentIntentId, in[0].ID)
	}
	if intentID != "" && in[0].ID != intentID {
		t.Errorf("intent %s, want the first one %s", in[0].ID, intentID)
	}
	if in[0].Amount != out.Order.TotalCents || in[0].Currency != "usd" {
		t.Errorf("intent %+v does not charge the total %d", in[0], out.Order.TotalCents)
	}
	if st := at.dbStock(t, at.p.ID); st != 3 {
		t.Errorf("stock = %d, want 3 (taken once)", st)
	}
	if rows, units := at.ledgerFor(t, at.p.ID, orderID, "sale"); rows != 1 || units != -2 {
		t.Errorf("sale ledger rows %d (%d units), want 1 (-2)", rows, units)
	}
	if ids := at.ordersOf(t, at.c.id); len(ids) != 1 {
		t.Errorf("orders = %d, want 1", len(ids))
	}
	if k := at.keyState(t, at.c.id, at.key); k != "finished" {
		t.Errorf("key is %q after the retry, want finished", k)
	}
	again := at.attempt(t).want(t, http.StatusOK)
	if !reflect.DeepEqual(asJSON(t, again.body), asJSON(t, r.body)) {
		t.Errorf("replay after recovery differs:\n got %s\nwant %s", again.body, r.body)
	}
	return out
}

// TestCheckoutCrashRecovery: a checkout that dies between phases, or whose
// Stripe call fails, is finished by a retry with the same key, or by the
// reconciler: the same order, one PaymentIntent, stock taken once. One
// case per point of failure.
func TestCheckoutCrashRecovery(t *testing.T) {
	t.Parallel()
	const intents = "/v1/payment_intents"
	cases := []struct {
		name   string
		fail   func(*interrupted) // makes the first attempt fail
		status int                // its answer
		made   int                // intents at Stripe after it
	}{
		{"crash after order_created", func(at *interrupted) { at.crash.Arm("order_created", 1) }, http.StatusInternalServerError, 0},
		{"stripe 500 on payment_intents", func(at *interrupted) { at.fake.FailNext(intents, 1, http.StatusInternalServerError) }, http.StatusServiceUnavailable, 0},
		{"stripe acted, answer lost", func(at *interrupted) { at.fake.LoseNextResponse(intents, 1) }, http.StatusServiceUnavailable, 1},
		{"crash after intent_created", func(at *interrupted) { at.crash.Arm("intent_created", 1) }, http.StatusInternalServerError, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			at := newInterrupted(t)
			c.fail(at)
			first, id := at.failFirst(t, c.status)
			if first.status == http.StatusServiceUnavailable {
				if retryAfter(first) < 1 {
					t.Errorf("503 without Retry-After: %v", first.header)
				}
				if pr := expectProblem(t, first, first.status); strings.Contains(pr.Detail, "stripe") || strings.Contains(pr.Detail, "api_error") {
					t.Errorf("503 leaks provider details: %q", pr.Detail)
				}
			}
			made := at.fake.IntentsForOrder(id)
			if len(made) != c.made || at.fake.IntentCount() != c.made {
				t.Fatalf("intents at Stripe = %d (all: %d) after the failure, want %d", len(made), at.fake.IntentCount(), c.made)
			}
			if c.made == 0 {
				at.retry(t, id, "")
				return
			}
			// The retry finishes with the intent Stripe made, secret and all.
			if out := at.retry(t, id, made[0].ID); out.Payment.ClientSecret != made[0].ClientSecret {
				t.Errorf("client secret %q, want the intent's", out.Payment.ClientSecret)
			}
		})
	}
	t.Run("reconciler finishes an abandoned checkout", testReconcilerFinishesAbandoned)
	t.Run("reconciler expires what Stripe never took", testReconcilerExpiresUntaken)
}

// testReconcilerFinishesAbandoned: a checkout abandoned after its order
// transaction is finished by the reconciler once it is stale, and the key
// then replays the finished answer.
func testReconcilerFinishesAbandoned(t *testing.T) {
	t.Parallel()
	at := newInterrupted(t)
	at.crash.Arm("order_created", 1)
	_, id := at.failFirst(t, http.StatusInternalServerError)
	ctx := context.Background()

	// Not yet stale: a request may still be on it.
	at.Orders.Reconcile(ctx)
	if n := at.fake.IntentCount(); n != 0 {
		t.Fatalf("the reconciler created an intent for a checkout only just begun (%d)", n)
	}
	at.clock.Advance(31 * time.Second)
	at.Orders.Reconcile(ctx)
	in := at.fake.IntentsForOrder(id)
	if len(in) != 1 {
		t.Fatalf("intents after reconciling = %d, want 1", len(in))
	}
	if o := at.storedOrder(t, id); o.PaymentIntentID == nil || *o.PaymentIntentID != in[0].ID {
		t.Errorf("order intent = %v, want %s", o.PaymentIntentID, in[0].ID)
	}
	if k := at.keyState(t, at.c.id, at.key); k != "finished" {
		t.Errorf("key is %q after reconciling, want finished", k)
	}
	var out gen.CheckoutResult
	at.attempt(t).want(t, http.StatusOK).decode(t, &out)
	if out.Order.Id != id || out.Payment.PaymentIntentId != in[0].ID || out.Payment.ClientSecret != in[0].ClientSecret {
		t.Errorf("replay = %+v, want order %s with intent %s", out, id, in[0].ID)
	}
	if n := at.fake.IntentCount(); n != 1 {
		t.Errorf("intents = %d, want 1", n)
	}
}

// testReconcilerExpiresUntaken: with Stripe down, the reconciler keeps
// trying a stale checkout and leaves it pending; past the payment window it
// expires the order and releases its stock; when Stripe comes back, neither
// the reconciler nor a late retry gives the cancelled order an intent.
func testReconcilerExpiresUntaken(t *testing.T) {
	t.Parallel()
	at := newInterrupted(t)
	const path = "/v1/payment_intents"
	at.fake.FailNext(path, 1000, http.StatusInternalServerError)
	_, id := at.failFirst(t, http.StatusServiceUnavailable)
	ctx := context.Background()

	at.clock.Advance(31 * time.Second)
	calls := at.fake.Calls("POST", path)
	at.Orders.Reconcile(ctx)
	if at.fake.Calls("POST", path) == calls {
		t.Error("the reconciler did not try to finish the stale checkout")
	}
	if o := at.storedOrder(t, id); o.Status != "pending" || o.PaymentIntentID != nil {
		t.Errorf("with Stripe down the order became %s (intent %v), want it left pending", o.Status, o.PaymentIntentID)
	}
	if k := at.keyState(t, at.c.id, at.key); k != "order_created" {
		t.Errorf("key is %q, want order_created still", k)
	}

	at.clock.Advance(paymentWindow)
	at.Orders.Reconcile(ctx)
	if o := at.storedOrder(t, id); o.Status != "cancelled" || o.PaymentStatus != "cancelled" {
		t.Fatalf("past the payment window the order is %s/%s, want cancelled/cancelled", o.Status, o.PaymentStatus)
	}
	if st := at.dbStock(t, at.p.ID); st != 5 {
		t.Errorf("stock = %d after expiry, want 5 (released)", st)
	}
	if rows, units := at.ledgerFor(t, at.p.ID, id, "release"); rows != 1 || units != 2 {
		t.Errorf("release ledger rows %d (%d units), want 1 (+2)", rows, units)
	}
	at.ledgerCheck(t, at.p.ID)
	if evs := eventTypes(at.events(t, at.admin, id)); !reflect.DeepEqual(evs, []string{"placed", "cancelled"}) {
		t.Errorf("events = %v, want placed, cancelled", evs)
	}

	// Stripe comes back: an expired order must not get a PaymentIntent (it
	// could be paid for goods already released).
	at.fake.FailNext(path, 0, 0)
	at.Orders.Reconcile(ctx)
	if in := at.fake.IntentsForOrder(id); len(in) != 0 {
		t.Errorf("the reconciler created %d PaymentIntent(s) for the cancelled order %s", len(in), id)
	}
	r := at.attempt(t)
	if in := at.fake.IntentsForOrder(id); len(in) != 0 {
		t.Errorf("a late retry (status %d) created %d PaymentIntent(s) for the cancelled order", r.status, len(in))
	}
	if r.status >= 500 {
		t.Errorf("late retry: status %d: %s", r.status, r.body)
	}
}
