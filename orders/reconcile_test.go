package orders_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/store"
)

// TestReconcileSettlesLostRefund: Stripe refunded but the answer was lost;
// the refund stays pending until the reconciler asks again with the same
// idempotency key, and exactly one refund exists at Stripe.
func TestReconcileSettlesLostRefund(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	o := b.pay(t, b.placed(t, b.product(t, 5000, 5), 1)) // 5000 + 500 + 1000 = 6500

	b.fake.LoseNextResponse("/v1/refunds", 1)
	_, err := svc.Refund(ctx, o.ID, 1000, "requested_by_customer", admin)
	if shopd.ErrorCode(err) != shopd.EUnavailable {
		t.Fatalf("refund with a lost answer: %v, want unavailable", err)
	}
	if rs := b.refunds(t, o.ID); len(rs) != 1 || rs[0].Status != "pending" {
		t.Fatalf("refund rows = %+v, want one pending", rs)
	}
	if n := len(b.fake.Refunds()); n != 1 {
		t.Fatalf("refunds at Stripe = %d, want 1 (it acted)", n)
	}
	if got := b.order(t, o.ID); got.RefundedCents != 0 || got.PaymentStatus != shopd.PaymentPaid {
		t.Errorf("order = %s refunded %d before the answer", got.PaymentStatus, got.RefundedCents)
	}
	// The pending refund counts against what is left.
	if _, err := svc.Refund(ctx, o.ID, o.TotalCents-999, "", admin); shopd.ErrorCode(err) != shopd.EInvalidTransition {
		t.Errorf("refund over what is left beside a pending one: %v, want invalid transition", err)
	}

	svc.Reconcile(ctx) // too soon: the request may still be waiting
	if calls := b.fake.Calls("POST", "/v1/refunds"); calls != 1 {
		t.Errorf("refund calls = %d before the refund is stale, want 1", calls)
	}
	b.clock.Advance(31 * time.Second)
	svc.Reconcile(ctx)
	rs := b.refunds(t, o.ID)
	fake := b.fake.Refunds()
	if len(rs) != 1 || rs[0].Status != "succeeded" || rs[0].StripeRefundID == nil || len(fake) != 1 || *rs[0].StripeRefundID != fake[0].ID {
		t.Fatalf("after reconciling: rows %+v, Stripe %+v; want one succeeded refund, the same at both", rs, fake)
	}
	if fake[0].IdempotencyKey != "refund-"+rs[0].ID || fake[0].Amount != 1000 {
		t.Errorf("Stripe refund = %+v", fake[0])
	}
	got := b.order(t, o.ID)
	if got.RefundedCents != 1000 || got.PaymentStatus != shopd.PaymentPartiallyRefunded {
		t.Errorf("order = %s refunded %d, want partially_refunded 1000", got.PaymentStatus, got.RefundedCents)
	}
	b.clock.Advance(time.Minute)
	svc.Reconcile(ctx)
	if n := len(b.fake.Refunds()); n != 1 {
		t.Errorf("refunds at Stripe after another pass = %d, want 1", n)
	}
}

// TestReconcileRefundsCancelledButCaptured: an admin cancels a paid order
// but Stripe declines the refund; the reconciler refunds it later.
func TestReconcileRefundsCancelledButCaptured(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	p := b.product(t, 2000, 5)
	o := b.pay(t, b.placed(t, p, 2))

	// The cancellation stands although Stripe declines the refund: the
	// caller gets the order as it is (cancelled, still paid).
	b.fake.FailNext("/v1/refunds", 1, http.StatusPaymentRequired)
	cancelled, err := svc.Cancel(ctx, o.ID, admin, "fraud check")
	if err != nil {
		t.Fatalf("cancel with a declined refund: %v", err)
	}
	if cancelled.Status != shopd.StatusCancelled || cancelled.PaymentStatus != shopd.PaymentPaid {
		t.Errorf("cancel answered %s/%s, want cancelled/paid", cancelled.Status, cancelled.PaymentStatus)
	}
	got := b.order(t, o.ID)
	if got.Status != shopd.StatusCancelled || got.PaymentStatus != shopd.PaymentPaid {
		t.Fatalf("order = %s/%s, want cancelled and still paid", got.Status, got.PaymentStatus)
	}
	if rs := b.refunds(t, o.ID); len(rs) != 1 || rs[0].Status != "failed" {
		t.Errorf("refund rows = %+v, want one failed", rs)
	}
	if st := b.stock(t, p.ID); st != 5 {
		t.Errorf("stock = %d, want 5 (released by the cancel)", st)
	}

	svc.Reconcile(ctx)
	got = b.order(t, o.ID)
	if got.PaymentStatus != shopd.PaymentRefunded || got.RefundedCents != o.TotalCents || got.Status != shopd.StatusCancelled {
		t.Errorf("after reconciling: %s/%s refunded %d, want cancelled/refunded %d", got.Status, got.PaymentStatus, got.RefundedCents, o.TotalCents)
	}
	if fake := b.fake.Refunds(); len(fake) != 1 || fake[0].Amount != o.TotalCents {
		t.Errorf("refunds at Stripe = %+v, want one of %d", fake, o.TotalCents)
	}
	if st := b.stock(t, p.ID); st != 5 {
		t.Errorf("stock = %d, want 5 (released once)", st)
	}
	svc.Reconcile(ctx)
	if n := len(b.fake.Refunds()); n != 1 {
		t.Errorf("refunds after another pass = %d", n)
	}
}

// TestReconcileConcurrently: the reconciler may run on every instance at
// once. Four passes together finish each abandoned checkout with one
// intent, expire each overdue order once and settle a lost refund once.
func TestReconcileConcurrently(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	p := b.product(t, 1000, 100)

	// Overdue: placed, never paid, window passes.
	var overdue []store.Order
	for range 3 {
		overdue = append(overdue, b.placed(t, p, 2))
	}
	// A paid order whose refund answer got lost.
	paid := b.pay(t, b.placed(t, p, 1))
	b.fake.LoseNextResponse("/v1/refunds", 1)
	if _, err := svc.Refund(ctx, paid.ID, 0, "", admin); shopd.ErrorCode(err) != shopd.EUnavailable {
		t.Fatalf("refund: %v", err)
	}
	b.clock.Advance(time.Hour + time.Minute)
	// Abandoned after the order transaction; due an hour from "now".
	type abandoned struct{ userID, key string }
	var stuck []abandoned
	b.crash.Arm(store.PointOrderCreated, 5)
	for range 5 {
		userID, key, err := b.checkout(t, p, 1)
		if !errors.Is(err, shoptest.ErrCrash) {
			t.Fatalf("checkout: %v, want the injected crash", err)
		}
		stuck = append(stuck, abandoned{userID, key})
	}
	intentsBefore := b.fake.IntentCount()
	b.clock.Advance(31 * time.Second)

	shoptest.Concurrently(t, 4, 60*time.Second, func(int) { svc.Reconcile(ctx) })
	// A stuck checkout whose lock was busy is picked up by the next pass.
	svc.Reconcile(ctx)

	for _, a := range stuck {
		o := b.orderOf(t, a.userID)
		in := b.fake.IntentsForOrder(o.ID)
		if len(in) != 1 || o.PaymentIntentID == nil || *o.PaymentIntentID != in[0].ID || o.Status != shopd.StatusPending {
			t.Errorf("abandoned order %s: %d intents, attached %v, status %s", o.ID, len(in), o.PaymentIntentID, o.Status)
		}
		var point string
		if err := b.store.DB().Get(&point, `SELECT recovery_point FROM idempotency_keys WHERE user_id = $1 AND key = $2`, a.userID, a.key); err != nil {
			t.Fatal(err)
		}
		if point != store.PointFinished {
			t.Errorf("abandoned key is %s, want finished", point)
		}
	}
	if n := b.fake.IntentCount(); n != intentsBefore+len(stuck) {
		t.Errorf("intents = %d, want %d", n, intentsBefore+len(stuck))
	}
	for _, o := range overdue {
		got := b.order(t, o.ID)
		var releases int
		if err := b.store.DB().Get(&releases, `SELECT count(*) FROM inventory_transactions WHERE type = 'release' AND reference_id = $1`, o.ID); err != nil {
			t.Fatal(err)
		}
		if got.Status != shopd.StatusCancelled || releases != 1 {
			t.Errorf("overdue order %s: %s with %d release rows, want cancelled with 1", o.ID, got.Status, releases)
		}
		var cancels int
		if err := b.store.DB().Get(&cancels, `SELECT count(*) FROM order_events WHERE type = 'cancelled' AND order_id = $1`, o.ID); err != nil {
			t.Fatal(err)
		}
		if cancels != 1 {
			t.Errorf("overdue order %s: %d cancel events", o.ID, cancels)
		}
		if in, _ := b.fake.Intent(*o.PaymentIntentID); in.Status != "canceled" {
			t.Errorf("overdue order %s: its intent is %q at Stripe, want canceled", o.ID, in.Status)
		}
	}
	if got := b.order(t, paid.ID); got.PaymentStatus != shopd.PaymentRefunded {
		t.Errorf("lost refund: order %s", got.PaymentStatus)
	}
	if n := len(b.fake.Refunds()); n != 1 {
		t.Errorf("refunds at Stripe = %d, want 1", n)
	}
	// 3 overdue x 2 released; 3x2 + 1 + 5 sold remain out.
	if st := b.stock(t, p.ID); st != 100-1-5 {
		t.Errorf("stock = %d, want %d", st, 100-1-5)
	}
	var sum int
	if err := b.store.DB().Get(&sum, `SELECT sum(quantity_change) FROM inventory_transactions WHERE product_id = $1`, p.ID); err != nil {
		t.Fatal(err)
	}
	if sum != b.stock(t, p.ID) {
		t.Errorf("ledger adds up to %d, stock is %d", sum, b.stock(t, p.ID))
	}
}

// TestHandleEventConcurrentDuplicates: Stripe may deliver one event to
// several instances at once; it applies once.
func TestHandleEventConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	p := b.product(t, 1000, 10)
	o := b.placed(t, p, 3)
	ev := payments.Event{ID: "evt_" + uuid.NewString(), Type: "payment_intent.payment_failed",
		PaymentIntent: &payments.PaymentIntentEvent{ID: *o.PaymentIntentID, OrderID: o.ID, Currency: o.Currency, AmountCents: o.TotalCents}}
	errs := make([]error, 10)
	shoptest.Concurrently(t, len(errs), 60*time.Second, func(i int) {
		errs[i] = svc.HandleEvent(context.Background(), ev)
	})
	for _, err := range errs {
		if err != nil {
			t.Errorf("HandleEvent: %v", err)
		}
	}
	if st := b.stock(t, p.ID); st != 10 {
		t.Errorf("stock = %d, want 10 (released exactly once)", st)
	}
	var events []string
	if err := b.store.DB().Select(&events, `SELECT type FROM order_events WHERE order_id = $1 ORDER BY id`, o.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{"placed", "payment_intent_created", "payment_failed", "cancelled"}
	if got := b.order(t, o.ID); got.Status != shopd.StatusCancelled || got.PaymentStatus != shopd.PaymentFailed || !slices.Equal(events, want) {
		t.Errorf("order = %s/%s with events %v, want cancelled/failed with %v", got.Status, got.PaymentStatus, events, want)
	}
}
