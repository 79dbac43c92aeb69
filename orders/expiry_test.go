package orders_test

import (
	"context"
	"testing"
	"time"

	"github.com/shopd/shopd"
)

// TestExpiryAsksStripeFirst: past the payment window the reconciler asks
// Stripe before releasing stock. A payment whose webhook is late makes the
// order paid; one still processing waits; an abandoned one is cancelled at
// Stripe, then expired and released.
func TestExpiryAsksStripeFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	p := e.product(t, 1000, 10)
	paidLate := e.placed(t, p, 1)
	processing := e.placed(t, p, 1)
	abandoned := e.placed(t, p, 1)
	e.fake.SetIntentStatus(*paidLate.PaymentIntentID, "succeeded")
	e.fake.SetIntentStatus(*processing.PaymentIntentID, "processing")

	e.clock.Advance(time.Hour + time.Minute)
	e.svc.Reconcile(ctx)

	if o := e.order(t, paidLate.ID); o.Status != shopd.StatusProcessing || o.PaymentStatus != shopd.PaymentPaid {
		t.Errorf("paid at Stripe, webhook late: %s/%s, want processing/paid", o.Status, o.PaymentStatus)
	}
	if o := e.order(t, processing.ID); o.Status != shopd.StatusPending {
		t.Errorf("payment processing: order %s, want still pending", o.Status)
	}
	if o := e.order(t, abandoned.ID); o.Status != shopd.StatusCancelled {
		t.Errorf("abandoned: order %s, want cancelled", o.Status)
	}
	if in, _ := e.fake.Intent(*abandoned.PaymentIntentID); in.Status != "canceled" {
		t.Errorf("abandoned order's intent is %s at Stripe, want canceled", in.Status)
	}
	if st := e.stock(t, p.ID); st != 8 {
		t.Errorf("stock = %d, want 8 (only the abandoned unit released)", st)
	}
	// Another pass changes nothing.
	e.svc.Reconcile(ctx)
	if st := e.stock(t, p.ID); st != 8 {
		t.Errorf("stock = %d after another pass, want 8", st)
	}
}
