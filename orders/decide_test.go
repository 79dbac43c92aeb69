package orders_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/orders"
)

// States the decisions start from: an order of 1000 usd with intent pi_1.
var (
	pending = shopd.OrderState{Status: shopd.StatusPending, PaymentStatus: shopd.PaymentPending,
		FulfillmentStatus: "unfulfilled", TotalCents: 1000, Currency: "usd", PaymentIntentID: "pi_1"}
	paid = with(pending, func(s *shopd.OrderState) { s.Status, s.PaymentStatus = shopd.StatusProcessing, shopd.PaymentPaid })
	// A cancelled order whose payment never completed: its payment is
	// cancelled too.
	cancelled     = with(pending, func(s *shopd.OrderState) { s.Status, s.PaymentStatus = shopd.StatusCancelled, shopd.PaymentCancelled })
	noIntent      = with(pending, func(s *shopd.OrderState) { s.PaymentIntentID = "" })
	refundedEarly = with(pending, func(s *shopd.OrderState) { s.RefundedCents = 300 })
)

func with(s shopd.OrderState, edit func(*shopd.OrderState)) shopd.OrderState {
	edit(&s)
	return s
}

// summary is what a test compares of a transition: its events, the state
// after it, and its effects.
type summary struct {
	Events                  []string
	Final                   shopd.OrderState
	Releases                int
	Attach                  string
	RefundDue, CancelIntent bool
}

func summarize(from shopd.OrderState, t orders.Transition) summary {
	s := summary{Final: from, Attach: t.AttachIntent, RefundDue: t.RefundDue, CancelIntent: t.CancelIntent}
	for _, step := range t.Steps {
		s.Events = append(s.Events, step.Event)
		s.Final = step.State
		if step.ReleasesStock {
			s.Releases++
		}
	}
	return s
}

func TestOnPaymentEvent(t *testing.T) {
	t.Parallel()
	pay := orders.Payment{IntentID: "pi_1", AmountCents: 1000, Currency: "usd"}
	cases := []struct {
		name string
		from shopd.OrderState
		typ  string
		p    orders.Payment
		want summary
	}{
		{"success pays a pending order", pending, orders.StripePaymentSucceeded, pay,
			summary{Events: []string{"paid"}, Final: paid}},
		{"success of another intent is ignored", pending, orders.StripePaymentSucceeded, orders.Payment{IntentID: "pi_2", AmountCents: 1000, Currency: "usd"},
			summary{Final: pending}},
		{"success for another amount is ignored", pending, orders.StripePaymentSucceeded, orders.Payment{IntentID: "pi_1", AmountCents: 999, Currency: "usd"},
			summary{Final: pending}},
		{"success in another currency is ignored", pending, orders.StripePaymentSucceeded, orders.Payment{IntentID: "pi_1", AmountCents: 1000, Currency: "eur"},
			summary{Final: pending}},
		{"success again changes nothing", paid, orders.StripePaymentSucceeded, pay, summary{Final: paid}},
		{"success before the intent was stored keeps the intent", noIntent, orders.StripePaymentSucceeded, pay,
			summary{Events: []string{"paid"}, Final: paid, Attach: "pi_1"}},
		{"success after cancellation is refunded", cancelled, orders.StripePaymentSucceeded, pay,
			summary{Events: []string{"paid"}, Final: with(cancelled, func(s *shopd.OrderState) { s.PaymentStatus = shopd.PaymentPaid }), RefundDue: true}},
		{"success after an early partial refund", refundedEarly, orders.StripePaymentSucceeded, pay,
			summary{Events: []string{"paid"}, Final: with(refundedEarly, func(s *shopd.OrderState) {
				s.Status, s.PaymentStatus = shopd.StatusProcessing, shopd.PaymentPartiallyRefunded
			})}},
		{"failure cancels and releases", pending, orders.StripePaymentFailed, pay,
			summary{Events: []string{"payment_failed", "cancelled"}, Releases: 1, CancelIntent: true,
				Final: with(pending, func(s *shopd.OrderState) { s.Status, s.PaymentStatus = shopd.StatusCancelled, shopd.PaymentFailed })}},
		{"failure after success changes nothing", paid, orders.StripePaymentFailed, pay, summary{Final: paid}},
		{"failure of a cancelled order changes nothing", cancelled, orders.StripePaymentFailed, pay, summary{Final: cancelled}},
		{"refund report is kept before the payment", pending, orders.StripeChargeRefunded, orders.Payment{IntentID: "pi_1", AmountCents: 100, Currency: "usd"},
			summary{Events: []string{"refunded"}, Final: with(pending, func(s *shopd.OrderState) { s.RefundedCents = 100 })}},
		{"refund report of a paid order", paid, orders.StripeChargeRefunded, orders.Payment{IntentID: "pi_1", AmountCents: 400, Currency: "usd"},
			summary{Events: []string{"refunded"}, Final: with(paid, func(s *shopd.OrderState) {
				s.RefundedCents, s.PaymentStatus = 400, shopd.PaymentPartiallyRefunded
			})}},
		{"refund report never passes the total", paid, orders.StripeChargeRefunded, orders.Payment{IntentID: "pi_1", AmountCents: 5000, Currency: "usd"},
			summary{Events: []string{"refunded"}, Final: with(paid, func(s *shopd.OrderState) {
				s.RefundedCents, s.PaymentStatus = 1000, shopd.PaymentRefunded
			})}},
		{"older refund report moves nothing back", refundedEarly, orders.StripeChargeRefunded, orders.Payment{IntentID: "pi_1", AmountCents: 200, Currency: "usd"},
			summary{Final: refundedEarly}},
		{"refund report in another currency is ignored", paid, orders.StripeChargeRefunded, orders.Payment{IntentID: "pi_1", AmountCents: 400, Currency: "eur"},
			summary{Final: paid}},
		{"unknown event type", pending, "charge.captured", pay, summary{Final: pending}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := summarize(c.from, orders.OnPaymentEvent(c.from, c.typ, c.p))
			if c.want.Attach != "" {
				c.want.Final.PaymentIntentID = c.want.Attach
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestExpire(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Second), now.Add(time.Second)
	failed := with(pending, func(s *shopd.OrderState) { s.PaymentStatus = shopd.PaymentFailed })
	cases := []struct {
		name  string
		from  shopd.OrderState
		dueAt time.Time
		want  summary
	}{
		{"unpaid past its window", pending, past, summary{Events: []string{"cancelled"}, Releases: 1, Final: cancelled}},
		{"failed payment past its window", failed, past, summary{Events: []string{"cancelled"}, Releases: 1,
			Final: with(failed, func(s *shopd.OrderState) { s.Status = shopd.StatusCancelled })}},
		{"window still open", pending, future, summary{Final: pending}},
		{"due exactly now", pending, now, summary{Final: pending}},
		{"paid meanwhile", paid, past, summary{Final: paid}},
		{"already cancelled", cancelled, past, summary{Final: cancelled}},
	}
	for _, c := range cases {
		if got := summarize(c.from, orders.Expire(c.from, c.dueAt, now)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestCancelFulfillRefundDecisions(t *testing.T) {
	t.Parallel()
	fulfilled := with(paid, func(s *shopd.OrderState) {
		s.Status, s.FulfillmentStatus = shopd.StatusFulfilled, shopd.FulfillmentFulfilled
	})
	cases := []struct {
		name     string
		from     shopd.OrderState
		decide   func(shopd.OrderState) (orders.Transition, error)
		wantCode string
		want     summary
	}{
		{"owner cancels pending", pending, func(s shopd.OrderState) (orders.Transition, error) { return orders.Cancel(s, false, "") }, "",
			summary{Events: []string{"cancelled"}, Releases: 1, Final: cancelled}},
		{"owner cancels paid", paid, func(s shopd.OrderState) (orders.Transition, error) { return orders.Cancel(s, false, "") }, shopd.EInvalidTransition,
			summary{Final: paid}},
		{"admin cancels paid", paid, func(s shopd.OrderState) (orders.Transition, error) { return orders.Cancel(s, true, "") }, "",
			summary{Events: []string{"cancelled"}, Releases: 1, Final: with(paid, func(s *shopd.OrderState) { s.Status = shopd.StatusCancelled })}},
		{"admin cancels pending", pending, func(s shopd.OrderState) (orders.Transition, error) { return orders.Cancel(s, true, "") }, "",
			summary{Events: []string{"cancelled"}, Releases: 1, Final: cancelled}},
		{"admin cancels fulfilled", fulfilled, func(s shopd.OrderState) (orders.Transition, error) { return orders.Cancel(s, true, "") }, shopd.EInvalidTransition,
			summary{Final: fulfilled}},
		{"fulfil paid", paid, func(s shopd.OrderState) (orders.Transition, error) { return orders.Fulfill(s, "1Z") }, "",
			summary{Events: []string{"fulfilled"}, Final: fulfilled}},
		{"fulfil cancelled", cancelled, func(s shopd.OrderState) (orders.Transition, error) { return orders.Fulfill(s, "1Z") }, shopd.EInvalidTransition,
			summary{Final: cancelled}},
		{"deliver fulfilled", fulfilled, func(s shopd.OrderState) (orders.Transition, error) { return orders.Deliver(s, false) }, "",
			summary{Events: []string{"delivered"}, Final: fulfilled}},
		{"deliver delivered", fulfilled, func(s shopd.OrderState) (orders.Transition, error) { return orders.Deliver(s, true) }, shopd.EInvalidTransition,
			summary{Final: fulfilled}},
		{"deliver paid, not shipped", paid, func(s shopd.OrderState) (orders.Transition, error) { return orders.Deliver(s, false) }, shopd.EInvalidTransition,
			summary{Final: paid}},
		{"deliver cancelled", cancelled, func(s shopd.OrderState) (orders.Transition, error) { return orders.Deliver(s, false) }, shopd.EInvalidTransition,
			summary{Final: cancelled}},
		{"fulfil unpaid", pending, func(s shopd.OrderState) (orders.Transition, error) { return orders.Fulfill(s, "1Z") }, shopd.EInvalidTransition,
			summary{Final: pending}},
	}
	for _, c := range cases {
		tr, err := c.decide(c.from)
		if got := shopd.ErrorCode(err); got != c.wantCode {
			t.Errorf("%s: error %v, want code %q", c.name, err, c.wantCode)
		}
		if got := summarize(c.from, tr); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}

	amounts := []struct {
		name               string
		from               shopd.OrderState
		requested, pending int64
		want               int64
		wantCode           string
	}{
		{"all that is left", paid, 0, 0, 1000, ""},
		{"all that is left beside a pending one", paid, 0, 300, 700, ""},
		{"a part", paid, 250, 0, 250, ""},
		{"more than is left", paid, 800, 300, 0, shopd.EInvalidTransition},
		{"unpaid", pending, 0, 0, 0, shopd.EInvalidTransition},
		{"negative", paid, -5, 0, 0, shopd.EInvalid},
	}
	for _, c := range amounts {
		got, err := orders.RefundAmount(c.from, c.requested, c.pending)
		if got != c.want || shopd.ErrorCode(err) != c.wantCode {
			t.Errorf("RefundAmount %s = %d, %v; want %d, code %q", c.name, got, err, c.want, c.wantCode)
		}
	}

	settled := []struct {
		name           string
		from           shopd.OrderState
		amount         int64
		succeeded      bool
		succeededCents int64
		want           summary
	}{
		{"a part succeeded", paid, 400, true, 400, summary{Events: []string{"refunded"},
			Final: with(paid, func(s *shopd.OrderState) { s.RefundedCents, s.PaymentStatus = 400, shopd.PaymentPartiallyRefunded })}},
		{"Stripe reported more before", with(paid, func(s *shopd.OrderState) { s.RefundedCents = 600 }), 400, true, 400,
			summary{Events: []string{"refunded"}, Final: with(paid, func(s *shopd.OrderState) {
				s.RefundedCents, s.PaymentStatus = 600, shopd.PaymentPartiallyRefunded
			})}},
		{"the rest succeeded", paid, 1000, true, 1000, summary{Events: []string{"refunded"},
			Final: with(paid, func(s *shopd.OrderState) { s.RefundedCents, s.PaymentStatus = 1000, shopd.PaymentRefunded })}},
		{"declined", paid, 400, false, 0, summary{Events: []string{"refund_failed"}, Final: paid}},
	}
	for _, c := range settled {
		tr := orders.RefundSettled(c.from, c.amount, c.succeeded, c.succeededCents, "")
		if got := summarize(c.from, tr); !reflect.DeepEqual(got, c.want) {
			t.Errorf("RefundSettled %s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}
