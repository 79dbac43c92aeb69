package orders_test

import (
	"context"
	"testing"
	"time"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/orders"
)

// TestExpiryAsksStripeFirst: past the payment window the reconciler asks
// Stripe before releasing stock. A payment whose webhook is late makes the
// order paid; one still processing waits; an abandoned one is cancelled at
// Stripe, then expired and released.
func TestExpiryAsksStripeFirst(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	p := b.product(t, 1000, 10)
	paidLate := b.placed(t, p, 1)
	processing := b.placed(t, p, 1)
	abandoned := b.placed(t, p, 1)
	b.fake.SetIntentStatus(*paidLate.PaymentIntentID, "succeeded")
	b.fake.SetIntentStatus(*processing.PaymentIntentID, "processing")

	b.clock.Advance(time.Hour + time.Minute)
	svc.Reconcile(ctx)

	if o := b.order(t, paidLate.ID); o.Status != shopd.StatusProcessing || o.PaymentStatus != shopd.PaymentPaid {
		t.Errorf("paid at Stripe, webhook late: %s/%s, want processing/paid", o.Status, o.PaymentStatus)
	}
	if o := b.order(t, processing.ID); o.Status != shopd.StatusPending {
		t.Errorf("payment processing: order %s, want still pending", o.Status)
	}
	if o := b.order(t, abandoned.ID); o.Status != shopd.StatusCancelled {
		t.Errorf("abandoned: order %s, want cancelled", o.Status)
	}
	if in, _ := b.fake.Intent(*abandoned.PaymentIntentID); in.Status != "canceled" {
		t.Errorf("abandoned order's intent is %s at Stripe, want canceled", in.Status)
	}
	if st := b.stock(t, p.ID); st != 8 {
		t.Errorf("stock = %d, want 8 (only the abandoned unit released)", st)
	}
	// Another pass changes nothing.
	svc.Reconcile(ctx)
	if st := b.stock(t, p.ID); st != 8 {
		t.Errorf("stock = %d after another pass, want 8", st)
	}
}

// TestExpireVersusPayment: the payment window closing and the payment
// arriving race on the order's row lock. Either the payment wins (paid,
// stock kept) or the expiry does (cancelled, stock released, and the late
// payment is due a refund) — never paid with its stock released.
func TestExpireVersusPayment(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	p := b.product(t, 1000, 100)
	outcomes := map[string]int{}
	for i := range 15 {
		o := b.placed(t, p, 1)
		late := o.PaymentDueAt.Add(time.Minute)
		var outcome orders.Outcome
		var expired bool
		var perr, eerr error
		racers := []func(){
			func() { outcome, perr = svc.ApplySuccess(ctx, o) },
			func() { expired, eerr = orders.ExpireOrder(svc, ctx, o.ID, late) },
		}
		shoptest.Concurrently(t, len(racers), 60*time.Second, func(r int) { racers[r]() })
		if perr != nil || eerr != nil {
			t.Fatalf("round %d: payment %v, expiry %v", i, perr, eerr)
		}
		got := b.order(t, o.ID)
		var releases int
		if err := b.store.DB().Get(&releases, `SELECT count(*) FROM inventory_transactions WHERE type = 'release' AND reference_id = $1`, o.ID); err != nil {
			t.Fatal(err)
		}
		switch {
		case !expired && outcome == orders.OutcomeApplied:
			outcomes["payment first"]++
			if got.Status != shopd.StatusProcessing || got.PaymentStatus != shopd.PaymentPaid || releases != 0 {
				t.Errorf("round %d: payment won but order is %s/%s with %d releases", i, got.Status, got.PaymentStatus, releases)
			}
		case expired && outcome == orders.OutcomeRefundDue:
			outcomes["expiry first"]++
			if got.Status != shopd.StatusCancelled || got.PaymentStatus != shopd.PaymentPaid || releases != 1 {
				t.Errorf("round %d: expiry won but order is %s/%s with %d releases", i, got.Status, got.PaymentStatus, releases)
			}
		default:
			t.Errorf("round %d: expired=%v outcome=%v: inconsistent (order %s/%s, %d releases)", i, expired, outcome, got.Status, got.PaymentStatus, releases)
		}
	}
	t.Logf("outcomes: %v", outcomes)
	var sum int
	if err := b.store.DB().Get(&sum, `SELECT sum(quantity_change) FROM inventory_transactions WHERE product_id = $1`, p.ID); err != nil {
		t.Fatal(err)
	}
	if st := b.stock(t, p.ID); st != sum || st != 100-outcomes["payment first"] {
		t.Errorf("stock %d, ledger %d, want %d", st, sum, 100-outcomes["payment first"])
	}
}
