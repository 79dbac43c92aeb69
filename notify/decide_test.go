package notify_test

import (
	"slices"
	"testing"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/notify"
	"github.com/shopd/shopd/store"
)

// TestForOrderTransition: which messages each transition causes, and the
// keys that make each cause send once.
func TestForOrderTransition(t *testing.T) {
	t.Parallel()
	order := func(status string, refunded int64) store.Order {
		return store.Order{ID: "o1", Status: status, RefundedCents: refunded}
	}
	stripe := store.Actor{Kind: store.ActorStripe}
	system := store.Actor{Kind: store.ActorSystem}
	customer := store.Actor{Kind: store.ActorCustomer}
	admin := store.Actor{Kind: store.ActorAdmin}
	for _, tc := range []struct {
		name     string
		o        store.Order
		events   []string
		by       store.Actor
		phone    bool
		wantKeys []string
	}{
		{"paid", order(shopd.StatusProcessing, 0), []string{shopd.EventPaid}, stripe, false,
			[]string{"order-confirmation:o1"}},
		{"paid after cancellation: the refund tells", order(shopd.StatusCancelled, 0), []string{shopd.EventPaid}, stripe, false, nil},
		{"payment failed", order(shopd.StatusCancelled, 0), []string{shopd.EventPaymentFailed, shopd.EventCancelled}, stripe, false,
			[]string{"payment-failed:o1"}},
		{"payment window expired", order(shopd.StatusCancelled, 0), []string{shopd.EventCancelled}, system, false,
			[]string{"payment-timeout:o1"}},
		{"cancelled by the customer", order(shopd.StatusCancelled, 0), []string{shopd.EventCancelled}, customer, false,
			[]string{"order-cancelled:o1"}},
		{"cancelled by an admin", order(shopd.StatusCancelled, 0), []string{shopd.EventCancelled}, admin, false,
			[]string{"order-cancelled:o1"}},
		{"refund", order(shopd.StatusProcessing, 500), []string{shopd.EventRefunded}, admin, false,
			[]string{"order-refunded:o1:500"}},
		{"a second refund has its own key", order(shopd.StatusProcessing, 1200), []string{shopd.EventRefunded}, stripe, false,
			[]string{"order-refunded:o1:1200"}},
		{"a failed refund tells nothing", order(shopd.StatusProcessing, 0), []string{shopd.EventRefundFailed}, admin, false, nil},
		{"shipped without a phone", order(shopd.StatusFulfilled, 0), []string{shopd.EventFulfilled}, admin, false,
			[]string{"order-shipped:o1"}},
		{"shipped with a phone", order(shopd.StatusFulfilled, 0), []string{shopd.EventFulfilled}, admin, true,
			[]string{"order-shipped:o1", "order-shipped-sms:o1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var keys []string
			for _, p := range notify.ForOrderTransition(tc.o, tc.events, tc.by, tc.phone) {
				keys = append(keys, p.DedupeKey)
				if want := notify.ChannelEmail; p.Template == notify.TemplateOrderShippedSMS {
					if p.Channel != notify.ChannelSMS {
						t.Errorf("%s on %s, want sms", p.Template, p.Channel)
					}
				} else if p.Channel != want {
					t.Errorf("%s on %s, want %s", p.Template, p.Channel, want)
				}
			}
			if !slices.Equal(keys, tc.wantKeys) {
				t.Errorf("keys %v, want %v", keys, tc.wantKeys)
			}
		})
	}
}
