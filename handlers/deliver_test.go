package handlers_test

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/internal/shoptest"
)

// TestDeliverOrder: an admin marks a fulfilled order delivered (200,
// deliveredAt set, a delivered event, statuses unchanged); anything not
// fulfilled, or delivered already, is 409 invalid_transition and changes
// nothing; a customer is 403.
func TestDeliverOrder(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	c := s.newCustomer(t)
	p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: 2000, Stock: new(20)})
	deliver := func(id, token string) *resp {
		return s.do(t, http.MethodPost, "/v1/admin/orders/"+id+"/deliver", token, nil)
	}
	wantInvalidTransition := func(t *testing.T, r *resp) {
		t.Helper()
		if pr := expectProblem(t, r, http.StatusConflict); pr.Type != "https://shopd.dev/problems/invalid_transition" {
			t.Errorf("problem type %q, want invalid_transition", pr.Type)
		}
	}

	unpaid := s.placeOrder(t, c, line{p.ID, 1})
	wantInvalidTransition(t, deliver(unpaid.Order.Id, s.admin))

	placed := s.placeOrder(t, c, line{p.ID, 1})
	id := placed.Order.Id
	s.pay(t, placed)
	wantInvalidTransition(t, deliver(id, s.admin)) // paid, not shipped
	orderOf(t, s.do(t, http.MethodPost, "/v1/admin/orders/"+id+"/fulfill", s.admin, map[string]any{"trackingNumber": "1Z1"}), http.StatusOK)
	expectProblem(t, deliver(id, c.token), http.StatusForbidden)

	o := orderOf(t, deliver(id, s.admin), http.StatusOK)
	if o.DeliveredAt.IsNull() || o.Status != gen.OrderStatusFulfilled || o.PaymentStatus != gen.PaymentStatusPaid ||
		o.FulfillmentStatus != gen.FulfillmentStatusFulfilled {
		t.Fatalf("delivered order = %s/%s/%s deliveredAt %v", o.Status, o.PaymentStatus, o.FulfillmentStatus, o.DeliveredAt)
	}
	if at, shipped := o.DeliveredAt.MustGet(), o.ShippedAt.MustGet(); at.Before(shipped) {
		t.Errorf("deliveredAt %v is before shippedAt %v", at, shipped)
	}
	evs := s.events(t, s.admin, id)
	if types := eventTypes(evs); !reflect.DeepEqual(types, []string{"placed", "payment_intent_created", "paid", "fulfilled", "delivered"}) {
		t.Fatalf("events = %v", types)
	}
	if e := evs[len(evs)-1]; e.Actor != gen.OrderEventActorAdmin || e.Status != gen.OrderStatusFulfilled {
		t.Errorf("delivered event = %+v", e)
	}
	if got := s.order(t, c.token, id); got.DeliveredAt.IsNull() || !got.DeliveredAt.MustGet().Equal(o.DeliveredAt.MustGet()) {
		t.Errorf("the owner reads deliveredAt %v, want %v", got.DeliveredAt, o.DeliveredAt)
	}

	wantInvalidTransition(t, deliver(id, s.admin)) // already delivered
	if n := len(s.events(t, s.admin, id)); n != 5 {
		t.Errorf("a refused second delivery recorded an event: %d events", n)
	}
	expectProblem(t, deliver("00000000-0000-4000-8000-000000000000", s.admin), http.StatusNotFound)
}

// TestCancelledUnpaidOrderPaymentStatus: an order cancelled before its
// payment completed reads paymentStatus cancelled (customer cancel, admin
// cancel, expiry), and one whose payment failed keeps failed. A payment
// that still arrives for such an order is refunded, never kept
// (TestWebhookSuccessAfterCancel).
func TestCancelledUnpaidOrderPaymentStatus(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	c := s.newCustomer(t)
	p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: 2000, Stock: new(20)})

	byOwner := s.placeOrder(t, c, line{p.ID, 1})
	o := orderOf(t, s.do(t, http.MethodPost, "/v1/orders/"+byOwner.Order.Id+"/cancel", c.token, nil), http.StatusOK)
	if o.Status != gen.OrderStatusCancelled || o.PaymentStatus != gen.PaymentStatusCancelled {
		t.Errorf("owner-cancelled unpaid order = %s/%s, want cancelled/cancelled", o.Status, o.PaymentStatus)
	}
	byAdmin := s.placeOrder(t, c, line{p.ID, 1})
	o = orderOf(t, s.do(t, http.MethodPost, "/v1/orders/"+byAdmin.Order.Id+"/cancel", s.admin, nil), http.StatusOK)
	if o.PaymentStatus != gen.PaymentStatusCancelled {
		t.Errorf("admin-cancelled unpaid order has paymentStatus %s, want cancelled", o.PaymentStatus)
	}
	evs := s.events(t, s.admin, byAdmin.Order.Id)
	if e := evs[len(evs)-1]; e.Type != "cancelled" || e.PaymentStatus != gen.PaymentStatusCancelled {
		t.Errorf("cancel event = %s with paymentStatus %s, want cancelled/cancelled", e.Type, e.PaymentStatus)
	}

	failed := s.placeOrder(t, c, line{p.ID, 1})
	s.deliver(t, intentEvent(newEventID(), "payment_intent.payment_failed", failed.Payment.PaymentIntentId, failed.Order.Id,
		failed.Order.TotalCents, "usd")).want(t, http.StatusOK)
	if got := s.storedOrder(t, failed.Order.Id); got.Status != "cancelled" || got.PaymentStatus != "failed" {
		t.Errorf("order whose payment failed = %s/%s, want cancelled/failed", got.Status, got.PaymentStatus)
	}

	expired := s.placeOrder(t, c, line{p.ID, 1})
	s.clock.Advance(paymentWindow + time.Minute)
	s.Orders.Reconcile(t.Context())
	if got := s.storedOrder(t, expired.Order.Id); got.Status != "cancelled" || got.PaymentStatus != "cancelled" {
		t.Errorf("expired order = %s/%s, want cancelled/cancelled", got.Status, got.PaymentStatus)
	}
}
