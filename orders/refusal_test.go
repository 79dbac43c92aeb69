package orders_test

import (
	"context"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/orders"
)

// TestReconcilerMeetsPermanentRefusal: the first attempt failed
// transiently (a 500) and left the order holding stock; when the
// reconciler then meets a refusal for good (a declined card), it ends the
// checkout instead of retrying for the whole payment window: the order is
// cancelled, its stock released, the cart given back, and the client's
// retry gets the refusal.
func TestReconcilerMeetsPermanentRefusal(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	p := b.product(t, 1000, 10)
	b.fake.FailNext("/v1/payment_intents", 1, http.StatusInternalServerError)
	userID, key, err := b.checkout(t, p, 3)
	if shopd.ErrorCode(err) != shopd.EUnavailable {
		t.Fatalf("first attempt: %v, want unavailable", err)
	}
	o := b.orderOf(t, userID)
	if o.Status != shopd.StatusPending || b.stock(t, p.ID) != 7 {
		t.Fatalf("after a transient failure: order %s, stock %d; want pending, 7", o.Status, b.stock(t, p.ID))
	}

	b.fake.FailNext("/v1/payment_intents", 1, http.StatusPaymentRequired)
	b.clock.Advance(31 * time.Second)
	svc.Reconcile(ctx)
	got := b.order(t, o.ID)
	if got.Status != shopd.StatusCancelled || got.PaymentStatus != shopd.PaymentFailed {
		t.Errorf("after the refusal: order %s/%s, want cancelled/failed", got.Status, got.PaymentStatus)
	}
	if st := b.stock(t, p.ID); st != 10 {
		t.Errorf("stock = %d, want 10", st)
	}
	cart, err := b.store.Cart(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cart.Lines) != 1 || cart.Lines[0].ProductID != p.ID || cart.Lines[0].Quantity != 3 {
		t.Errorf("cart = %+v, want the 3 units back", cart.Lines)
	}
	calls := b.fake.Calls("POST", "/v1/payment_intents")
	b.clock.Advance(time.Minute)
	svc.Reconcile(ctx)
	if n := b.fake.Calls("POST", "/v1/payment_intents"); n != calls {
		t.Errorf("the reconciler asked Stripe %d more times after the refusal", n-calls)
	}
	_, err = svc.Checkout(ctx, orders.CheckoutRequest{UserID: userID, Key: key, RequestHash: "h",
		ShippingAddress: []byte(`{}`), BillingAddress: []byte(`{}`)})
	if shopd.ErrorCode(err) != shopd.EPaymentRefused {
		t.Errorf("the client's retry: %v, want payment refused", err)
	}
}

func TestPaymentRefusedDecision(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		from shopd.OrderState
		want summary
	}{
		{"waiting for its payment to start", noIntent, summary{Events: []string{"payment_failed", "cancelled"}, Releases: 1,
			Final: with(noIntent, func(s *shopd.OrderState) { s.Status, s.PaymentStatus = shopd.StatusCancelled, shopd.PaymentFailed })}},
		{"already has an intent", pending, summary{Final: pending}},
		{"cancelled meanwhile", with(noIntent, func(s *shopd.OrderState) { s.Status = shopd.StatusCancelled }),
			summary{Final: with(noIntent, func(s *shopd.OrderState) { s.Status = shopd.StatusCancelled })}},
	}
	for _, c := range cases {
		if got := summarize(c.from, orders.PaymentRefused(c.from, "declined")); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}
