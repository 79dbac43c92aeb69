package handlers_test

import (
	"bytes"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/store"
)

// webhookOrder is a placed order (2 units of a stock-5 product) waiting
// for payment.
type webhookOrder struct {
	c   account
	p   store.Product
	out gen.CheckoutResult
}

func (o webhookOrder) id() string     { return o.out.Order.Id }
func (o webhookOrder) intent() string { return o.out.Payment.PaymentIntentId }
func (o webhookOrder) total() int64   { return o.out.Order.TotalCents }

func (s *shop) webhookOrder(t *testing.T) webhookOrder {
	t.Helper()
	c := s.newCustomer(t)
	p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: 2000, Stock: new(5)})
	return webhookOrder{c: c, p: p, out: s.placeOrder(t, c, line{p.ID, 2})}
}

// eventCount is how many events the order has.
func (s *shop) eventCount(t *testing.T, orderID string) int {
	t.Helper()
	return len(s.events(t, s.admin, orderID))
}

// unchanged fails unless the order's statuses and history are as before.
func (s *shop) unchanged(t *testing.T, o webhookOrder, events int, status, payment string) {
	t.Helper()
	got := s.storedOrder(t, o.id())
	if got.Status != status || got.PaymentStatus != payment {
		t.Errorf("order is %s/%s, want %s/%s", got.Status, got.PaymentStatus, status, payment)
	}
	if n := s.eventCount(t, o.id()); n != events {
		t.Errorf("order has %d events, want %d", n, events)
	}
}

func TestWebhookRejectsUnverified(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	o := s.webhookOrder(t)
	events := s.eventCount(t, o.id())
	payload := intentEvent(newEventID(), "payment_intent.succeeded", o.intent(), o.id(), o.total(), "usd")
	now := time.Now()

	tampered := bytes.Replace(payload, []byte(`"status":"succeeded"`), []byte(`"status":"succeeded" `), 1)
	if bytes.Equal(tampered, payload) {
		t.Fatal("tampering changed nothing")
	}
	cases := []struct {
		name    string
		payload []byte
		header  string
	}{
		{"tampered body", tampered, payments.SignWebhook(payload, testWebhookSecret, now)},
		{"stale timestamp", payload, payments.SignWebhook(payload, testWebhookSecret, now.Add(-301*time.Second))},
		{"wrong secret", payload, payments.SignWebhook(payload, "whsec_someone_else", now)},
		{"missing header", payload, ""},
		{"garbage header", payload, "t=now,v1=deadbeef"},
	}
	for _, tc := range cases {
		r := s.webhook(t, tc.payload, tc.header)
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", tc.name, r.status, r.body)
			continue
		}
		expectProblem(t, r, http.StatusBadRequest)
	}
	s.unchanged(t, o, events, "pending", "pending")
	var seen int
	if err := s.Store.DB().Get(&seen, `SELECT count(*) FROM stripe_events`); err != nil {
		t.Fatal(err)
	}
	if seen != 0 {
		t.Errorf("%d rejected events were recorded", seen)
	}

	// Over 64 KiB: 413 before anything is verified.
	big := intentEvent(newEventID(), "payment_intent.succeeded", o.intent(), o.id(), o.total(), "usd")
	big = append(big[:len(big)-1], []byte(`,"padding":"`+strings.Repeat("x", 65<<10)+`"}`)...)
	r := s.webhook(t, big, payments.SignWebhook(big, testWebhookSecret, now))
	expectProblem(t, r, http.StatusRequestEntityTooLarge)
	s.unchanged(t, o, events, "pending", "pending")

	// The same event, properly signed, still applies afterwards.
	s.deliver(t, payload).want(t, http.StatusOK)
	s.unchanged(t, o, events+1, "processing", "paid")
}

func TestWebhookPaymentSucceeded(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	o := s.webhookOrder(t)
	evID := newEventID()
	payload := intentEvent(evID, "payment_intent.succeeded", o.intent(), o.id(), o.total(), "usd")

	r := s.deliver(t, payload).want(t, http.StatusOK)
	if got := asJSON(t, r.body); !reflect.DeepEqual(got, map[string]any{"received": true}) {
		t.Errorf("body = %s", r.body)
	}
	got := s.order(t, o.c.token, o.id())
	if got.Status != gen.OrderStatusProcessing || got.PaymentStatus != gen.PaymentStatusPaid || got.FulfillmentStatus != gen.FulfillmentStatusUnfulfilled {
		t.Errorf("order after success = %s/%s/%s", got.Status, got.PaymentStatus, got.FulfillmentStatus)
	}
	evs := s.events(t, o.c.token, o.id())
	if types := eventTypes(evs); !reflect.DeepEqual(types, []string{"placed", "payment_intent_created", "paid"}) {
		t.Fatalf("events = %v", types)
	}
	if paid := evs[2]; paid.Actor != gen.OrderEventActorStripe || paid.AmountCents.MustGet() != o.total() ||
		paid.Status != gen.OrderStatusProcessing || paid.PaymentStatus != gen.PaymentStatusPaid {
		t.Errorf("paid event = %+v", paid)
	}

	// Stripe redelivers the same event: 200, nothing more.
	s.deliver(t, payload).want(t, http.StatusOK)
	// Concurrent redeliveries too.
	reqs := make([]*http.Request, 8)
	for i := range reqs {
		reqs[i] = s.request(t, http.MethodPost, "/v1/webhooks/stripe", "", payload)
		reqs[i].Header.Set("Stripe-Signature", payments.SignWebhook(payload, testWebhookSecret, time.Now()))
	}
	for i, r := range s.sendAll(t, 30*time.Second, reqs) {
		if r.status != http.StatusOK {
			t.Errorf("redelivery %d: status %d: %s", i, r.status, r.body)
		}
	}
	s.unchanged(t, o, 3, "processing", "paid")

	// A new success event for the same intent (not a redelivery) changes nothing either.
	s.deliver(t, intentEvent(newEventID(), "payment_intent.succeeded", o.intent(), o.id(), o.total(), "usd")).want(t, http.StatusOK)
	// A late failure never moves a paid order back.
	s.deliver(t, intentEvent(newEventID(), "payment_intent.payment_failed", o.intent(), o.id(), o.total(), "usd")).want(t, http.StatusOK)
	s.unchanged(t, o, 3, "processing", "paid")
	if st := s.dbStock(t, o.p.ID); st != 3 {
		t.Errorf("stock = %d, want 3 (a late failure releases nothing)", st)
	}
}

func TestWebhookMismatchedPayment(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	o := s.webhookOrder(t)
	events := s.eventCount(t, o.id())
	cases := []struct {
		name    string
		payload []byte
	}{
		{"amount too low", intentEvent(newEventID(), "payment_intent.succeeded", o.intent(), o.id(), o.total()-1, "usd")},
		{"amount too high", intentEvent(newEventID(), "payment_intent.succeeded", o.intent(), o.id(), o.total()+1, "usd")},
		{"other currency", intentEvent(newEventID(), "payment_intent.succeeded", o.intent(), o.id(), o.total(), "eur")},
		{"another intent", intentEvent(newEventID(), "payment_intent.succeeded", "pi_"+randomHex(12), o.id(), o.total(), "usd")},
		{"unknown order", intentEvent(newEventID(), "payment_intent.succeeded", "pi_"+randomHex(12), "2b1d6f0e-1111-4222-8333-944455566677", o.total(), "usd")},
		{"not a uuid", intentEvent(newEventID(), "payment_intent.succeeded", "pi_"+randomHex(12), "order-1", o.total(), "usd")},
		{"unhandled type", intentEvent(newEventID(), "payment_intent.created", o.intent(), o.id(), o.total(), "usd")},
		{"customer event", mustJSON(map[string]any{"id": newEventID(), "object": "event", "type": "customer.created",
			"api_version": "2023-10-16", "created": time.Now().Unix(),
			"data": map[string]any{"object": map[string]any{"id": "cus_1", "object": "customer"}}})},
	}
	for _, tc := range cases {
		if r := s.deliver(t, tc.payload); r.status != http.StatusOK {
			t.Errorf("%s: status %d, want 200 (acknowledged, ignored): %s", tc.name, r.status, r.body)
		}
		s.unchanged(t, o, events, "pending", "pending")
	}
	// The right event still works after all that.
	s.pay(t, o.out)
}

func TestWebhookPaymentFailed(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	o := s.webhookOrder(t)
	if st := s.dbStock(t, o.p.ID); st != 3 {
		t.Fatalf("stock = %d after checkout, want 3", st)
	}
	s.deliver(t, intentEvent(newEventID(), "payment_intent.payment_failed", o.intent(), o.id(), o.total(), "usd")).want(t, http.StatusOK)
	got := s.order(t, o.c.token, o.id())
	if got.Status != gen.OrderStatusCancelled || got.PaymentStatus != gen.PaymentStatusFailed {
		t.Errorf("after payment_failed: %s/%s, want cancelled/failed", got.Status, got.PaymentStatus)
	}
	if evs := eventTypes(s.events(t, s.admin, o.id())); !slices.Contains(evs, "payment_failed") || evs[len(evs)-1] != "cancelled" {
		t.Errorf("events = %v, want payment_failed then cancelled", evs)
	}
	if st := s.dbStock(t, o.p.ID); st != 5 {
		t.Errorf("stock = %d, want 5 (released)", st)
	}
	if rows, units := s.ledgerFor(t, o.p.ID, o.id(), "release"); rows != 1 || units != 2 {
		t.Errorf("release rows %d (%d units), want 1 (+2)", rows, units)
	}
	s.ledgerCheck(t, o.p.ID)
	// The order is cancelled and its stock back on sale: its intent must
	// not stay payable (Stripe lets a customer retry a declined intent).
	if in, ok := s.fake.Intent(o.intent()); !ok || in.Status != "canceled" {
		t.Errorf("intent of the order cancelled by payment_failed is %q at Stripe, want canceled", in.Status)
	}
	events := s.eventCount(t, o.id())
	// A second failure event releases nothing more.
	s.deliver(t, intentEvent(newEventID(), "payment_intent.payment_failed", o.intent(), o.id(), o.total(), "usd")).want(t, http.StatusOK)
	s.unchanged(t, o, events, "cancelled", "failed")
	if st := s.dbStock(t, o.p.ID); st != 5 {
		t.Errorf("stock = %d after a second failure, want 5", st)
	}
}

func TestWebhookSuccessAfterCancel(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	o := s.webhookOrder(t)
	// The customer cancels while unpaid, then the payment goes through anyway.
	s.do(t, http.MethodPost, "/v1/orders/"+o.id()+"/cancel", o.c.token, nil).want(t, http.StatusOK)
	if st := s.dbStock(t, o.p.ID); st != 5 {
		t.Fatalf("stock = %d after cancel, want 5", st)
	}
	// Cancelling also cancels the intent at Stripe; the payment that still
	// arrives is one Stripe took before that cancel landed.
	if in, _ := s.fake.Intent(o.intent()); in.Status != "canceled" {
		t.Errorf("intent after the order's cancel: %s, want canceled", in.Status)
	}
	s.fake.SetIntentStatus(o.intent(), "succeeded")
	s.deliver(t, intentEvent(newEventID(), "payment_intent.succeeded", o.intent(), o.id(), o.total(), "usd")).want(t, http.StatusOK)

	// The refund runs in the background.
	deadline := time.Now().Add(30 * time.Second)
	for s.storedOrder(t, o.id()).PaymentStatus != "refunded" {
		if time.Now().After(deadline) {
			var rows []struct {
				Status string `db:"status"`
				Amount int64  `db:"amount_cents"`
			}
			_ = s.Store.DB().Select(&rows, `SELECT status, amount_cents FROM refunds WHERE order_id = $1`, o.id())
			got := s.storedOrder(t, o.id())
			t.Fatalf("the payment for the cancelled order was not refunded within 30s: order %s/%s, refund rows %+v, Stripe refunds %+v, events %v",
				got.Status, got.PaymentStatus, rows, s.fake.Refunds(), eventTypes(s.events(t, s.admin, o.id())))
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := s.order(t, o.c.token, o.id())
	if got.Status != gen.OrderStatusCancelled || got.RefundedCents != o.total() {
		t.Errorf("order = %s/%s refunded %d, want cancelled/refunded %d", got.Status, got.PaymentStatus, got.RefundedCents, o.total())
	}
	refunds := s.fake.Refunds()
	if len(refunds) != 1 || refunds[0].PaymentIntentID != o.intent() || refunds[0].Amount != o.total() {
		t.Errorf("refunds at Stripe = %+v, want one of %d on %s", refunds, o.total(), o.intent())
	}
	if st := s.dbStock(t, o.p.ID); st != 5 {
		t.Errorf("stock = %d, want 5 (released once)", st)
	}
	types := eventTypes(s.events(t, s.admin, o.id()))
	if !reflect.DeepEqual(types, []string{"placed", "payment_intent_created", "cancelled", "paid", "refunded"}) {
		t.Errorf("events = %v", types)
	}
	// The reconciler finds nothing more to refund.
	s.clock.Advance(time.Minute)
	s.Orders.Reconcile(t.Context())
	if n := len(s.fake.Refunds()); n != 1 {
		t.Errorf("refunds after reconciling = %d, want 1", n)
	}
}

func TestWebhookChargeRefunded(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	o := s.webhookOrder(t)
	// A refund Stripe reports before the payment (events can arrive out of
	// order) is kept, and counted once the payment arrives.
	s.deliver(t, chargeRefundedEvent(newEventID(), o.intent(), o.id(), o.total(), 100, "usd")).want(t, http.StatusOK)
	if got := s.order(t, o.c.token, o.id()); got.RefundedCents != 100 || got.PaymentStatus != gen.PaymentStatusPending || got.Status != gen.OrderStatusPending {
		t.Errorf("refund before payment: %s/%s refunded %d, want pending/pending refunded 100", got.Status, got.PaymentStatus, got.RefundedCents)
	}

	s.deliver(t, intentEvent(newEventID(), "payment_intent.succeeded", o.intent(), o.id(), o.total(), "usd")).want(t, http.StatusOK)
	if got := s.order(t, o.c.token, o.id()); got.PaymentStatus != gen.PaymentStatusPartiallyRefunded || got.Status != gen.OrderStatusProcessing {
		t.Errorf("paid after an early refund: %s/%s, want processing/partially_refunded", got.Status, got.PaymentStatus)
	}
	part := o.total() / 4
	s.deliver(t, chargeRefundedEvent(newEventID(), o.intent(), o.id(), o.total(), part, "usd")).want(t, http.StatusOK)
	got := s.order(t, o.c.token, o.id())
	if got.PaymentStatus != gen.PaymentStatusPartiallyRefunded || got.RefundedCents != part || got.Status != gen.OrderStatusProcessing {
		t.Errorf("after a partial refund: %s/%s refunded %d, want processing/partially_refunded %d", got.Status, got.PaymentStatus, got.RefundedCents, part)
	}
	// An older report (smaller amount) arriving late moves nothing back.
	s.deliver(t, chargeRefundedEvent(newEventID(), o.intent(), o.id(), o.total(), part/2, "usd")).want(t, http.StatusOK)
	// A report in another currency is ignored.
	s.deliver(t, chargeRefundedEvent(newEventID(), o.intent(), o.id(), o.total(), o.total(), "eur")).want(t, http.StatusOK)
	if got := s.order(t, o.c.token, o.id()); got.RefundedCents != part || got.PaymentStatus != gen.PaymentStatusPartiallyRefunded {
		t.Errorf("after stale/foreign reports: %s refunded %d, want partially_refunded %d", got.PaymentStatus, got.RefundedCents, part)
	}
	// Found by the intent when the charge has no orderId metadata.
	s.deliver(t, chargeRefundedEvent(newEventID(), o.intent(), "", o.total(), o.total(), "usd")).want(t, http.StatusOK)
	got = s.order(t, o.c.token, o.id())
	if got.PaymentStatus != gen.PaymentStatusRefunded || got.RefundedCents != o.total() {
		t.Errorf("after the full refund: %s refunded %d, want refunded %d", got.PaymentStatus, got.RefundedCents, o.total())
	}
	if types := eventTypes(s.events(t, o.c.token, o.id())); !reflect.DeepEqual(types, []string{"placed", "payment_intent_created", "refunded", "paid", "refunded", "refunded"}) {
		t.Errorf("events = %v", types)
	}
	if frozenOf(got).Total != o.total() || !reflect.DeepEqual(frozenOf(got), frozenOf(o.out.Order)) {
		t.Errorf("frozen part changed: %+v vs %+v", frozenOf(got), frozenOf(o.out.Order))
	}
}

// TestWebhookFullRefundBeforeSuccess: Stripe delivers a full refund before
// the payment's success. The order must not end up paid and shippable.
func TestWebhookFullRefundBeforeSuccess(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	o := s.webhookOrder(t)
	s.deliver(t, chargeRefundedEvent(newEventID(), o.intent(), o.id(), o.total(), o.total(), "usd")).want(t, http.StatusOK)
	s.deliver(t, intentEvent(newEventID(), "payment_intent.succeeded", o.intent(), o.id(), o.total(), "usd")).want(t, http.StatusOK)
	got := s.order(t, o.c.token, o.id())
	if got.PaymentStatus != gen.PaymentStatusRefunded || got.RefundedCents != o.total() {
		t.Errorf("order = %s/%s refunded %d, want refunded %d", got.Status, got.PaymentStatus, got.RefundedCents, o.total())
	}
	r := s.do(t, http.MethodPost, "/v1/admin/orders/"+o.id()+"/fulfill", s.admin, map[string]string{"trackingNumber": "TRK1"})
	expectProblem(t, r, http.StatusConflict)
}
