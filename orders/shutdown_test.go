package orders_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/store"
)

// paidAfterCancel cancels an unpaid order as its owner, sets Stripe's
// latency, then delivers the payment Stripe took anyway: the order is due a
// refund.
func (b *testBundle) paidAfterCancel(t *testing.T, o store.Order, latency time.Duration) {
	t.Helper()
	ctx := context.Background()
	if _, err := b.svc.Cancel(ctx, o.ID, store.Actor{Kind: store.ActorCustomer, ID: o.CustomerID}, ""); err != nil {
		t.Fatal(err)
	}
	b.fake.SetIntentStatus(*o.PaymentIntentID, "succeeded")
	b.fake.SetLatency(latency)
	err := b.svc.HandleEvent(ctx, payments.Event{
		ID: "evt_" + uuid.NewString(), Type: "payment_intent.succeeded",
		PaymentIntent: &payments.PaymentIntentEvent{ID: *o.PaymentIntentID, OrderID: o.ID, Currency: o.Currency,
			Status: "succeeded", AmountCents: o.TotalCents},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestShutdownWaitsForBackgroundRefund: the refund of money that arrived
// for a cancelled order runs after the webhook is answered; Shutdown waits
// for it. Once shutdown has begun, such a refund is left to the reconciler.
func TestShutdownWaitsForBackgroundRefund(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	p := b.product(t, 1000, 10)
	first, second := b.placed(t, p, 1), b.placed(t, p, 1)
	// Stripe is slow to refund: the webhook's answer comes first.
	b.paidAfterCancel(t, first, 300*time.Millisecond)

	if err := svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Shutdown returned: the refund is done, nothing of it still running.
	if got := b.order(t, first.ID); got.PaymentStatus != shopd.PaymentRefunded || got.RefundedCents != got.TotalCents {
		t.Errorf("after Shutdown: order %s refunded %d, want refunded in full", got.PaymentStatus, got.RefundedCents)
	}
	if n := len(b.fake.Refunds()); n != 1 {
		t.Errorf("refunds at Stripe = %d after Shutdown, want 1", n)
	}

	b.paidAfterCancel(t, second, 0)
	if n := len(b.fake.Refunds()); n != 1 {
		t.Errorf("refunds at Stripe = %d: a refund started after Shutdown", n)
	}
	if got := b.order(t, second.ID); got.Status != shopd.StatusCancelled || got.PaymentStatus != shopd.PaymentPaid {
		t.Errorf("order paid after shutdown began = %s/%s, want cancelled/paid (for the reconciler)", got.Status, got.PaymentStatus)
	}
	svc.Reconcile(ctx)
	if got := b.order(t, second.ID); got.PaymentStatus != shopd.PaymentRefunded {
		t.Errorf("after reconciling: %s, want refunded", got.PaymentStatus)
	}
}

// TestShutdownGivesUp: when Shutdown's context ends first, the running
// refund is cancelled and Shutdown returns once it has stopped; the refund
// stays pending for the reconciler, which settles it once.
func TestShutdownGivesUp(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	o := b.placed(t, b.product(t, 1000, 10), 1)
	b.paidAfterCancel(t, o, time.Minute) // longer than the test may wait

	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := svc.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want its context's deadline", err)
	}
	if rs := b.refunds(t, o.ID); len(rs) != 1 || rs[0].Status != "pending" {
		t.Fatalf("refund rows = %+v, want one left pending", rs)
	}
	b.fake.SetLatency(0)
	b.clock.Advance(31 * time.Second)
	svc.Reconcile(ctx)
	if got := b.order(t, o.ID); got.PaymentStatus != shopd.PaymentRefunded {
		t.Errorf("after reconciling: %s, want refunded", got.PaymentStatus)
	}
	if rs := b.refunds(t, o.ID); len(rs) != 1 || rs[0].Status != "succeeded" {
		t.Errorf("refund rows = %+v, want the one, succeeded", rs)
	}
}

// TestReconcileCutShortLogsNoError: shutdown cancels the reconciler's
// context, before a sweep or in the middle of one (here while Stripe is
// asked about a lost refund). What the sweep leaves is the next sweep's,
// so that is no error to log; and the next sweep does finish it.
func TestReconcileCutShortLogsNoError(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	var logs shoptest.SyncBuffer
	svc.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	o := b.pay(t, b.placed(t, b.product(t, 1000, 5), 1))
	b.fake.LoseNextResponse("/v1/refunds", 1)
	if _, err := svc.Refund(context.Background(), o.ID, 0, "", admin); shopd.ErrorCode(err) != shopd.EUnavailable {
		t.Fatalf("refund with a lost answer: %v, want unavailable", err)
	}
	b.clock.Advance(31 * time.Second)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	svc.Reconcile(cancelled)
	b.fake.SetLatency(time.Second)
	during, cancel := context.WithCancel(context.Background())
	stop := time.AfterFunc(100*time.Millisecond, cancel)
	defer stop.Stop()
	svc.Reconcile(during)
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("a sweep cut short by shutdown logged errors:\n%s", logs.String())
	}

	b.fake.SetLatency(0)
	svc.Reconcile(context.Background())
	if got := b.order(t, o.ID); got.PaymentStatus != shopd.PaymentRefunded {
		t.Errorf("after a whole sweep: %s, want refunded", got.PaymentStatus)
	}
}
