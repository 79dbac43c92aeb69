package notify_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd/notify"
	"github.com/shopd/shopd/orders"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/store"
)

// templates are the templates of the order's notifications, in order.
func (b *bundle) templates(t *testing.T, orderID string) []string {
	t.Helper()
	var out []string
	for _, n := range b.notifications(t, orderID) {
		out = append(out, n.Template)
	}
	return out
}

// TestCancellationsSayWhy: a customer's cancellation, a failed payment
// and an expired payment window each send their own message, once.
func TestCancellationsSayWhy(t *testing.T) {
	t.Parallel()
	b := setup(t, options{paymentWindow: 300 * time.Millisecond})
	in := b.insts[0]
	ctx := context.Background()
	userID, _ := b.customer(t, "Ada", "")

	cancelled := b.order(t, in, userID)
	if _, err := in.svc.Cancel(ctx, cancelled.ID, store.Actor{Kind: store.ActorCustomer, ID: userID}, "changed my mind"); err != nil {
		t.Fatal(err)
	}
	failed := b.order(t, in, userID)
	ev := payments.Event{ID: "evt_" + uuid.NewString(), Type: orders.StripePaymentFailed,
		PaymentIntent: &payments.PaymentIntentEvent{ID: *failed.PaymentIntentID, OrderID: failed.ID, Currency: failed.Currency,
			Status: "requires_payment_method", AmountCents: failed.TotalCents}}
	for range 2 {
		if err := in.svc.HandleEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	expired := b.order(t, in, userID)

	eventually(t, "the unpaid order to expire", func() bool { return len(b.templates(t, expired.ID)) == 1 })
	for _, tc := range []struct {
		o    store.Order
		want string
	}{
		{cancelled, notify.TemplateOrderCancelled},
		{failed, notify.TemplatePaymentFailed},
		{expired, notify.TemplatePaymentTimeout},
	} {
		if got := b.templates(t, tc.o.ID); !slices.Equal(got, []string{tc.want}) {
			t.Errorf("order %s: %v, want [%s]", tc.o.Number(), got, tc.want)
		}
		n := b.settled(t, b.notifications(t, tc.o.ID)[0].ID)
		if n.Status != notify.StatusSent || !strings.Contains(n.Subject, tc.o.Number()) {
			t.Errorf("%s: %s, subject %q; want sent, naming %s", tc.want, n.Status, n.Subject, tc.o.Number())
		}
	}
}

// TestRefundToldOncePerRefund: our refund, then Stripe's charge.refunded
// reporting the same total (twice), tell the customer once; a further
// refund made at Stripe and reported by its webhook tells them again.
func TestRefundToldOncePerRefund(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	in := b.insts[0]
	ctx := context.Background()
	userID, _ := b.customer(t, "Ada", "")
	o := b.order(t, in, userID)
	if err := in.svc.HandleEvent(ctx, succeeded(o, "evt_"+uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	if _, err := in.svc.Refund(ctx, o.ID, 500, "", byAdmin); err != nil {
		t.Fatal(err)
	}
	refunded := func(total int64) payments.Event {
		return payments.Event{ID: "evt_" + uuid.NewString(), Type: orders.StripeChargeRefunded,
			Charge: &payments.ChargeEvent{ID: "ch_1", PaymentIntentID: *o.PaymentIntentID, OrderID: o.ID, Currency: o.Currency,
				AmountCents: o.TotalCents, AmountRefundedCents: total}}
	}
	same := refunded(500)
	for _, ev := range []payments.Event{same, same, refunded(500), refunded(800)} {
		if err := in.svc.HandleEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	for _, n := range b.notifications(t, o.ID) {
		keys = append(keys, n.DedupeKey)
	}
	want := []string{"order-confirmation:" + o.ID, "order-refunded:" + o.ID + ":500", "order-refunded:" + o.ID + ":800"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
}

// TestShippingSMSPhone: the SMS goes to the profile's phone, else the
// shipping address's; without either there is none.
func TestShippingSMSPhone(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	in := b.insts[0]
	ctx := context.Background()
	withAddressPhone, _ := b.customer(t, "Ada", "")
	withoutPhone, _ := b.customer(t, "Bob", "")
	ship := func(userID, addr string) store.Order {
		o := b.orderTo(t, in, userID, addr)
		if err := in.svc.HandleEvent(ctx, succeeded(o, "evt_"+uuid.NewString())); err != nil {
			t.Fatal(err)
		}
		if _, err := in.svc.Fulfill(ctx, o.ID, "TRK-"+o.Number(), byAdmin); err != nil {
			t.Fatal(err)
		}
		return o
	}
	a := ship(withAddressPhone, `{"firstName":"Ada","lastName":"L","line1":"1 Road","city":"London","postalCode":"N1","country":"GB","phone":"+447700900999"}`)
	c := ship(withoutPhone, `{"firstName":"Bob","lastName":"B","line1":"2 Road","city":"London","postalCode":"N1","country":"GB"}`)
	if got := b.templates(t, c.ID); slices.Contains(got, notify.TemplateOrderShippedSMS) {
		t.Errorf("an SMS for a customer without a phone: %v", got)
	}
	var sms notify.Notification
	for _, n := range b.notifications(t, a.ID) {
		if n.Template == notify.TemplateOrderShippedSMS {
			sms = n
		}
	}
	if sms.ID == "" || sms.Recipient != "+447700900999" || sms.Channel != notify.ChannelSMS {
		t.Fatalf("shipping SMS %+v, want one to the address's phone", sms)
	}
	if got := b.settled(t, sms.ID); got.Status != notify.StatusSent {
		t.Fatalf("SMS %s", got.Status)
	}
	sent, _ := b.sms.messages()
	if len(sent) != 1 || sent[0].Get("To") != "+447700900999" || !strings.Contains(sent[0].Get("Body"), "TRK-"+a.Number()) {
		t.Errorf("SMS received %v, want one to +447700900999 with the tracking number", sent)
	}
}
