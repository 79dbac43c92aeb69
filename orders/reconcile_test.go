package orders_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/stripefake"
	"github.com/shopd/shopd/orders"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/store"
)

// clock is real time plus an offset the test advances.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// env is the money path on a fresh database and a Stripe double.
type env struct {
	svc   *orders.Service
	st    *store.Store
	fake  *stripefake.Server
	clock *clock
	crash atomic.Int32 // checkouts still to fail after order_created
}

var errCrash = errors.New("injected crash")

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{st: store.New(pgtest.NewDB(t)), fake: stripefake.New(t), clock: &clock{}}
	e.svc = &orders.Service{
		Store:         e.st,
		Payments:      payments.New(payments.Config{SecretKey: "sk_test_x", APIBase: e.fake.URL, MaxNetworkRetries: -1}),
		Pricing:       shopd.DefaultPricing,
		PaymentWindow: time.Hour,
		Log:           slog.New(slog.DiscardHandler),
		Now:           e.clock.Now,
		AfterPhase: func(phase string) error {
			if phase == store.PointOrderCreated && e.crash.Add(-1) >= 0 {
				return errCrash
			}
			return nil
		},
	}
	return e
}

func (e *env) user(t *testing.T) string {
	t.Helper()
	u, err := e.st.CreateUser(context.Background(), store.NewUser{
		Email: "u-" + uuid.NewString() + "@example.com", PasswordHash: "x", Role: "customer", FirstName: "Ada", LastName: "Lovelace",
	})
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

func (e *env) product(t *testing.T, priceCents int64, stock int) store.Product {
	t.Helper()
	p, err := e.st.CreateProduct(context.Background(), store.NewProduct{
		SKU: "SKU-" + uuid.NewString()[:8], Name: "Product", PriceCents: priceCents, Stock: stock, IsActive: true,
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *env) stock(t *testing.T, productID string) int {
	t.Helper()
	var n int
	if err := e.st.DB().Get(&n, `SELECT stock FROM products WHERE id = $1`, productID); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkout puts qty of the product in a new customer's cart and checks out
// with a new key; it returns the key and the checkout's error.
func (e *env) checkout(t *testing.T, p store.Product, qty int) (userID, key string, err error) {
	t.Helper()
	userID = e.user(t)
	if _, err := e.st.AddToCart(context.Background(), userID, p.ID, qty); err != nil {
		t.Fatal(err)
	}
	key = "key-" + uuid.NewString()
	addr := []byte(`{"firstName":"Ada","lastName":"Lovelace","line1":"1 Road","city":"London","postalCode":"N1","country":"GB"}`)
	_, err = e.svc.Checkout(context.Background(), orders.CheckoutRequest{
		UserID: userID, Key: key, RequestHash: "h", ShippingAddress: addr, BillingAddress: addr,
	})
	return userID, key, err
}

// orderOf is the user's one order.
func (e *env) orderOf(t *testing.T, userID string) store.Order {
	t.Helper()
	var id string
	if err := e.st.DB().Get(&id, `SELECT id FROM orders WHERE customer_id = $1`, userID); err != nil {
		t.Fatal(err)
	}
	return e.order(t, id)
}

func (e *env) order(t *testing.T, id string) store.Order {
	t.Helper()
	o, err := e.st.Order(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// placed is a checked-out order with its intent.
func (e *env) placed(t *testing.T, p store.Product, qty int) store.Order {
	t.Helper()
	userID, _, err := e.checkout(t, p, qty)
	if err != nil {
		t.Fatalf("checkout: %v", err)
	}
	return e.orderOf(t, userID)
}

// pay applies a payment_intent.succeeded for the order.
func (e *env) pay(t *testing.T, o store.Order) store.Order {
	t.Helper()
	err := e.svc.HandleEvent(context.Background(), payments.Event{
		ID: "evt_" + uuid.NewString(), Type: "payment_intent.succeeded",
		PaymentIntent: &payments.PaymentIntentEvent{ID: *o.PaymentIntentID, OrderID: o.ID, Currency: o.Currency,
			Status: "succeeded", AmountCents: o.TotalCents},
	})
	if err != nil {
		t.Fatal(err)
	}
	o = e.order(t, o.ID)
	if o.PaymentStatus != shopd.PaymentPaid {
		t.Fatalf("order not paid: %s", o.PaymentStatus)
	}
	return o
}

// refunds are the order's refund rows, oldest first.
func (e *env) refunds(t *testing.T, orderID string) []store.Refund {
	t.Helper()
	var rs []store.Refund
	if err := e.st.DB().Select(&rs, `SELECT id, order_id, amount_cents, reason, status, stripe_refund_id, created_at
		FROM refunds WHERE order_id = $1 ORDER BY created_at, id`, orderID); err != nil {
		t.Fatal(err)
	}
	return rs
}

var admin = store.Actor{Kind: "admin"}

// TestReconcileSettlesLostRefund: Stripe refunded but the answer was lost;
// the refund stays pending until the reconciler asks again with the same
// idempotency key, and exactly one refund exists at Stripe.
func TestReconcileSettlesLostRefund(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	o := e.pay(t, e.placed(t, e.product(t, 5000, 5), 1)) // 5000 + 500 + 1000 = 6500

	e.fake.LoseNextResponse("/v1/refunds", 1)
	_, err := e.svc.Refund(ctx, o.ID, 1000, "requested_by_customer", admin)
	if shopd.ErrorCode(err) != shopd.EUnavailable {
		t.Fatalf("refund with a lost answer: %v, want unavailable", err)
	}
	if rs := e.refunds(t, o.ID); len(rs) != 1 || rs[0].Status != "pending" {
		t.Fatalf("refund rows = %+v, want one pending", rs)
	}
	if n := len(e.fake.Refunds()); n != 1 {
		t.Fatalf("refunds at Stripe = %d, want 1 (it acted)", n)
	}
	if got := e.order(t, o.ID); got.RefundedCents != 0 || got.PaymentStatus != shopd.PaymentPaid {
		t.Errorf("order = %s refunded %d before the answer", got.PaymentStatus, got.RefundedCents)
	}
	// The pending refund counts against what is left.
	if _, err := e.svc.Refund(ctx, o.ID, o.TotalCents-999, "", admin); shopd.ErrorCode(err) != shopd.EInvalidTransition {
		t.Errorf("refund over what is left beside a pending one: %v, want invalid transition", err)
	}

	e.svc.Reconcile(ctx) // too soon: the request may still be waiting
	if calls := e.fake.Calls("POST", "/v1/refunds"); calls != 1 {
		t.Errorf("refund calls = %d before the refund is stale, want 1", calls)
	}
	e.clock.Advance(31 * time.Second)
	e.svc.Reconcile(ctx)
	rs := e.refunds(t, o.ID)
	fake := e.fake.Refunds()
	if len(rs) != 1 || rs[0].Status != "succeeded" || rs[0].StripeRefundID == nil || len(fake) != 1 || *rs[0].StripeRefundID != fake[0].ID {
		t.Fatalf("after reconciling: rows %+v, Stripe %+v; want one succeeded refund, the same at both", rs, fake)
	}
	if fake[0].IdempotencyKey != "refund-"+rs[0].ID || fake[0].Amount != 1000 {
		t.Errorf("Stripe refund = %+v", fake[0])
	}
	got := e.order(t, o.ID)
	if got.RefundedCents != 1000 || got.PaymentStatus != shopd.PaymentPartiallyRefunded {
		t.Errorf("order = %s refunded %d, want partially_refunded 1000", got.PaymentStatus, got.RefundedCents)
	}
	e.clock.Advance(time.Minute)
	e.svc.Reconcile(ctx)
	if n := len(e.fake.Refunds()); n != 1 {
		t.Errorf("refunds at Stripe after another pass = %d, want 1", n)
	}
}

// TestReconcileRefundsCancelledButCaptured: an admin cancels a paid order
// but Stripe declines the refund; the reconciler refunds it later.
func TestReconcileRefundsCancelledButCaptured(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	p := e.product(t, 2000, 5)
	o := e.pay(t, e.placed(t, p, 2))

	// The cancellation stands although Stripe declines the refund: the
	// caller gets the order as it is (cancelled, still paid).
	e.fake.FailNext("/v1/refunds", 1, http.StatusPaymentRequired)
	cancelled, err := e.svc.Cancel(ctx, o.ID, admin, "fraud check")
	if err != nil {
		t.Fatalf("cancel with a declined refund: %v", err)
	}
	if cancelled.Status != shopd.StatusCancelled || cancelled.PaymentStatus != shopd.PaymentPaid {
		t.Errorf("cancel answered %s/%s, want cancelled/paid", cancelled.Status, cancelled.PaymentStatus)
	}
	got := e.order(t, o.ID)
	if got.Status != shopd.StatusCancelled || got.PaymentStatus != shopd.PaymentPaid {
		t.Fatalf("order = %s/%s, want cancelled and still paid", got.Status, got.PaymentStatus)
	}
	if rs := e.refunds(t, o.ID); len(rs) != 1 || rs[0].Status != "failed" {
		t.Errorf("refund rows = %+v, want one failed", rs)
	}
	if st := e.stock(t, p.ID); st != 5 {
		t.Errorf("stock = %d, want 5 (released by the cancel)", st)
	}

	e.svc.Reconcile(ctx)
	got = e.order(t, o.ID)
	if got.PaymentStatus != shopd.PaymentRefunded || got.RefundedCents != o.TotalCents || got.Status != shopd.StatusCancelled {
		t.Errorf("after reconciling: %s/%s refunded %d, want cancelled/refunded %d", got.Status, got.PaymentStatus, got.RefundedCents, o.TotalCents)
	}
	if fake := e.fake.Refunds(); len(fake) != 1 || fake[0].Amount != o.TotalCents {
		t.Errorf("refunds at Stripe = %+v, want one of %d", fake, o.TotalCents)
	}
	if st := e.stock(t, p.ID); st != 5 {
		t.Errorf("stock = %d, want 5 (released once)", st)
	}
	e.svc.Reconcile(ctx)
	if n := len(e.fake.Refunds()); n != 1 {
		t.Errorf("refunds after another pass = %d", n)
	}
}

// TestReconcileConcurrently: the reconciler may run on every instance at
// once. Four passes together finish each abandoned checkout with one
// intent, expire each overdue order once and settle a lost refund once.
func TestReconcileConcurrently(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	p := e.product(t, 1000, 100)

	// Overdue: placed, never paid, window passes.
	var overdue []store.Order
	for range 3 {
		overdue = append(overdue, e.placed(t, p, 2))
	}
	// A paid order whose refund answer got lost.
	paid := e.pay(t, e.placed(t, p, 1))
	e.fake.LoseNextResponse("/v1/refunds", 1)
	if _, err := e.svc.Refund(ctx, paid.ID, 0, "", admin); shopd.ErrorCode(err) != shopd.EUnavailable {
		t.Fatalf("refund: %v", err)
	}
	e.clock.Advance(time.Hour + time.Minute)
	// Abandoned after the order transaction; due an hour from "now".
	type abandoned struct{ userID, key string }
	var stuck []abandoned
	e.crash.Store(5)
	for range 5 {
		userID, key, err := e.checkout(t, p, 1)
		if !errors.Is(err, errCrash) {
			t.Fatalf("checkout: %v, want the injected crash", err)
		}
		stuck = append(stuck, abandoned{userID, key})
	}
	intentsBefore := e.fake.IntentCount()
	e.clock.Advance(31 * time.Second)

	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); e.svc.Reconcile(ctx) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("concurrent reconcilers did not finish")
	}
	// A stuck checkout whose lock was busy is picked up by the next pass.
	e.svc.Reconcile(ctx)

	for _, a := range stuck {
		o := e.orderOf(t, a.userID)
		in := e.fake.IntentsForOrder(o.ID)
		if len(in) != 1 || o.PaymentIntentID == nil || *o.PaymentIntentID != in[0].ID || o.Status != shopd.StatusPending {
			t.Errorf("abandoned order %s: %d intents, attached %v, status %s", o.ID, len(in), o.PaymentIntentID, o.Status)
		}
		var point string
		if err := e.st.DB().Get(&point, `SELECT recovery_point FROM idempotency_keys WHERE user_id = $1 AND key = $2`, a.userID, a.key); err != nil {
			t.Fatal(err)
		}
		if point != store.PointFinished {
			t.Errorf("abandoned key is %s, want finished", point)
		}
	}
	if n := e.fake.IntentCount(); n != intentsBefore+len(stuck) {
		t.Errorf("intents = %d, want %d", n, intentsBefore+len(stuck))
	}
	for _, o := range overdue {
		got := e.order(t, o.ID)
		var releases int
		if err := e.st.DB().Get(&releases, `SELECT count(*) FROM inventory_transactions WHERE type = 'release' AND reference_id = $1`, o.ID); err != nil {
			t.Fatal(err)
		}
		if got.Status != shopd.StatusCancelled || releases != 1 {
			t.Errorf("overdue order %s: %s with %d release rows, want cancelled with 1", o.ID, got.Status, releases)
		}
		var cancels int
		if err := e.st.DB().Get(&cancels, `SELECT count(*) FROM order_events WHERE type = 'cancelled' AND order_id = $1`, o.ID); err != nil {
			t.Fatal(err)
		}
		if cancels != 1 {
			t.Errorf("overdue order %s: %d cancel events", o.ID, cancels)
		}
		if in, _ := e.fake.Intent(*o.PaymentIntentID); in.Status != "canceled" {
			t.Errorf("overdue order %s: its intent is %q at Stripe, want canceled", o.ID, in.Status)
		}
	}
	if got := e.order(t, paid.ID); got.PaymentStatus != shopd.PaymentRefunded {
		t.Errorf("lost refund: order %s", got.PaymentStatus)
	}
	if n := len(e.fake.Refunds()); n != 1 {
		t.Errorf("refunds at Stripe = %d, want 1", n)
	}
	// 3 overdue x 2 released; 3x2 + 1 + 5 sold remain out.
	if st := e.stock(t, p.ID); st != 100-1-5 {
		t.Errorf("stock = %d, want %d", st, 100-1-5)
	}
	var sum int
	if err := e.st.DB().Get(&sum, `SELECT sum(quantity_change) FROM inventory_transactions WHERE product_id = $1`, p.ID); err != nil {
		t.Fatal(err)
	}
	if sum != e.stock(t, p.ID) {
		t.Errorf("ledger adds up to %d, stock is %d", sum, e.stock(t, p.ID))
	}
}

// TestHandleEventConcurrentDuplicates: Stripe may deliver one event to
// several instances at once; it applies once.
func TestHandleEventConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 1000, 10)
	o := e.placed(t, p, 3)
	ev := payments.Event{ID: "evt_" + uuid.NewString(), Type: "payment_intent.payment_failed",
		PaymentIntent: &payments.PaymentIntentEvent{ID: *o.PaymentIntentID, OrderID: o.ID, Currency: o.Currency, AmountCents: o.TotalCents}}
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- e.svc.HandleEvent(context.Background(), ev)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("HandleEvent: %v", err)
		}
	}
	if st := e.stock(t, p.ID); st != 10 {
		t.Errorf("stock = %d, want 10 (released exactly once)", st)
	}
	var events []string
	if err := e.st.DB().Select(&events, `SELECT type FROM order_events WHERE order_id = $1 ORDER BY id`, o.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{"placed", "payment_intent_created", "payment_failed", "cancelled"}
	if got := e.order(t, o.ID); got.Status != shopd.StatusCancelled || got.PaymentStatus != shopd.PaymentFailed || !slices.Equal(events, want) {
		t.Errorf("order = %s/%s with events %v, want cancelled/failed with %v", got.Status, got.PaymentStatus, events, want)
	}
}
