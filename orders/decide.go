package orders

import (
	"time"

	"github.com/shopd/shopd"
)

// The decisions of the money path: what an event or a request does to an
// order, as plain functions of the order's state. They do no I/O; the
// Service runs them under the order's row lock and applies their
// Transition (see apply).

// Step is one recorded transition: its event (a shopd Event constant), the
// order's state after it, and what it moved.
type Step struct {
	Event string
	State shopd.OrderState
	// AmountCents is the money the event is about, if any.
	AmountCents *int64
	Note        string
	// ReleasesStock puts the order's units back on sale (release ledger
	// rows) as part of this step.
	ReleasesStock bool
}

// Transition is what a decision does to an order. Without steps nothing
// applies and the order stays as it is: a late, duplicate or mismatched
// event never moves an order backwards.
type Transition struct {
	Steps []Step
	// AttachIntent is a PaymentIntent the order lacks and must keep (it was
	// paid before checkout stored it), so that the money can be refunded.
	AttachIntent string
	// RefundDue says money is held for a cancelled order: refund it once
	// the transition is committed.
	RefundDue bool
	// CancelIntent says the order's PaymentIntent must not be paid any more
	// (the order was cancelled and its stock released): cancel it at Stripe
	// once committed.
	CancelIntent bool
}

// Applies reports whether the transition changes the order.
func (t Transition) Applies() bool { return len(t.Steps) > 0 }

// Payment is what a Stripe event says about an order's money: for
// payment_intent.* the intent's amount, for charge.refunded the amount
// refunded so far.
type Payment struct {
	IntentID    string
	AmountCents int64
	Currency    string
}

// Stripe event types the money path acts on.
const (
	StripePaymentSucceeded = "payment_intent.succeeded"
	StripePaymentFailed    = "payment_intent.payment_failed"
	StripeChargeRefunded   = "charge.refunded"
)

// OnPaymentEvent is what a Stripe event of type typ does to the order. An
// event about another PaymentIntent than the order's, or of a type the
// money path does not act on, changes nothing.
func OnPaymentEvent(st shopd.OrderState, typ string, p Payment) Transition {
	if st.PaymentIntentID != "" && p.IntentID != "" && st.PaymentIntentID != p.IntentID {
		return Transition{}
	}
	switch typ {
	case StripePaymentSucceeded:
		return PaymentSucceeded(st, p)
	case StripePaymentFailed:
		return PaymentFailed(st, p)
	case StripeChargeRefunded:
		return ChargeRefunded(st, p)
	}
	return Transition{}
}

// PaymentSucceeded marks the order paid when the amount and currency are
// what it costs and it still waits for payment. Money for a cancelled order
// is recorded and due for a refund. A refund Stripe reported before the
// success still counts.
func PaymentSucceeded(st shopd.OrderState, p Payment) Transition {
	if p.AmountCents != st.TotalCents || p.Currency != st.Currency {
		return Transition{} // not what the order costs: never mark it paid
	}
	paid := shopd.PaymentPaid
	if st.RefundedCents > 0 {
		paid = shopd.PaymentStatusAfterRefund(st.TotalCents, st.RefundedCents)
	}
	next := st
	var t Transition
	note := ""
	switch {
	case st.CanMarkPaid():
		next.Status, next.PaymentStatus = shopd.StatusProcessing, paid
	case st.Status == shopd.StatusCancelled && !st.Captured() && st.PaymentStatus != shopd.PaymentRefunded:
		next.PaymentStatus, note = paid, "paid after cancellation; refunding"
		t.RefundDue = next.Refundable() > 0
	default:
		return Transition{} // already paid, or further along
	}
	if st.PaymentIntentID == "" && p.IntentID != "" {
		t.AttachIntent = p.IntentID
		next.PaymentIntentID = p.IntentID
	}
	amount := p.AmountCents
	t.Steps = []Step{{Event: shopd.EventPaid, State: next, AmountCents: &amount, Note: note}}
	return t
}

// PaymentFailed cancels an order whose payment failed while pending and
// puts its stock back; its intent is cancelled too, or Stripe would let the
// customer retry it with another card. A failure after a success changes
// nothing.
func PaymentFailed(st shopd.OrderState, p Payment) Transition {
	if !st.CanMarkFailed() {
		return Transition{}
	}
	failed := st
	failed.PaymentStatus = shopd.PaymentFailed
	cancelled := failed
	cancelled.Status = shopd.StatusCancelled
	amount := p.AmountCents
	return Transition{
		Steps: []Step{
			{Event: shopd.EventPaymentFailed, State: failed, AmountCents: &amount},
			{Event: shopd.EventCancelled, State: cancelled, Note: "payment failed", ReleasesStock: true},
		},
		CancelIntent: st.PaymentIntentID != "",
	}
}

// ChargeRefunded records what Stripe reports refunded so far, whatever the
// order's state: Stripe may deliver the refund before the success, and the
// success must then find it. The refunded amount only ever grows, and never
// past the total.
func ChargeRefunded(st shopd.OrderState, p Payment) Transition {
	if p.Currency != st.Currency || p.AmountCents <= st.RefundedCents {
		return Transition{}
	}
	next := st
	next.RefundedCents = min(p.AmountCents, st.TotalCents)
	if st.Captured() {
		next.PaymentStatus = shopd.PaymentStatusAfterRefund(st.TotalCents, next.RefundedCents)
	}
	delta := next.RefundedCents - st.RefundedCents
	return Transition{Steps: []Step{{Event: shopd.EventRefunded, State: next, AmountCents: &delta, Note: "reported by Stripe"}}}
}

// PaymentRefused cancels an order whose payment the provider refused for
// good before it could start (no PaymentIntent exists), putting its stock
// back. An order that is no longer waiting for its payment to start is left
// as it is.
func PaymentRefused(st shopd.OrderState, reason string) Transition {
	if st.PaymentIntentID != "" || !st.CanMarkFailed() {
		return Transition{}
	}
	failed := st
	failed.PaymentStatus = shopd.PaymentFailed
	cancelled := failed
	cancelled.Status = shopd.StatusCancelled
	return Transition{Steps: []Step{
		{Event: shopd.EventPaymentFailed, State: failed, Note: reason},
		{Event: shopd.EventCancelled, State: cancelled, Note: "payment refused", ReleasesStock: true},
	}}
}

// Expire cancels an unpaid order whose payment window closed before now and
// puts its stock back; a payment that arrived meanwhile wins.
func Expire(st shopd.OrderState, dueAt, now time.Time) Transition {
	if st.Status != shopd.StatusPending || st.Captured() || !dueAt.Before(now) {
		return Transition{}
	}
	return Transition{Steps: []Step{{Event: shopd.EventCancelled, State: cancelledState(st), Note: "payment window expired", ReleasesStock: true}}}
}

// Cancel cancels the order and puts its stock back: by its owner while
// payment is pending, by an admin while it is not fulfilled (otherwise
// EInvalidTransition). Money already taken is the caller's to refund.
func Cancel(st shopd.OrderState, byAdmin bool, reason string) (Transition, error) {
	if err := st.CanCancel(byAdmin); err != nil {
		return Transition{}, err
	}
	return Transition{Steps: []Step{{Event: shopd.EventCancelled, State: cancelledState(st), Note: reason, ReleasesStock: true}}}, nil
}

// cancelledState is st cancelled. A payment still pending will never
// complete, so it is cancelled too: a client must not read "pending" as
// "still payable". Money taken, refunded or failed keeps its status.
func cancelledState(st shopd.OrderState) shopd.OrderState {
	next := st
	next.Status = shopd.StatusCancelled
	if st.PaymentStatus == shopd.PaymentPending {
		next.PaymentStatus = shopd.PaymentCancelled
	}
	return next
}

// Deliver records that a fulfilled order reached its customer (otherwise
// EInvalidTransition); delivered says whether it already did.
func Deliver(st shopd.OrderState, delivered bool) (Transition, error) {
	if err := st.CanDeliver(delivered); err != nil {
		return Transition{}, err
	}
	return Transition{Steps: []Step{{Event: shopd.EventDelivered, State: st}}}, nil
}

// Fulfill ships a paid order (otherwise EInvalidTransition).
func Fulfill(st shopd.OrderState, trackingNumber string) (Transition, error) {
	if err := st.CanFulfill(); err != nil {
		return Transition{}, err
	}
	next := st
	next.Status, next.FulfillmentStatus = shopd.StatusFulfilled, shopd.FulfillmentFulfilled
	return Transition{Steps: []Step{{Event: shopd.EventFulfilled, State: next, Note: "tracking " + trackingNumber}}}, nil
}

// RefundAmount is the refund to reserve when requestedCents (0: all that is
// left) is asked for while pendingCents of refunds still wait for Stripe;
// see shopd.OrderState.CanRefund for the refusals.
func RefundAmount(st shopd.OrderState, requestedCents, pendingCents int64) (int64, error) {
	amount := requestedCents
	if amount == 0 {
		amount = st.Refundable() - pendingCents
	}
	if err := st.CanRefund(amount, pendingCents); err != nil {
		return 0, err
	}
	return amount, nil
}

// RefundSettled records Stripe's answer to a refund of amountCents. A
// success makes the refunded amount the larger of what the shop's
// succeeded refunds add up to (succeededCents, this one included) and what
// Stripe last reported, never past the total; a failure is only recorded.
func RefundSettled(st shopd.OrderState, amountCents int64, succeeded bool, succeededCents int64, reason string) Transition {
	amount := amountCents
	if !succeeded {
		return Transition{Steps: []Step{{Event: shopd.EventRefundFailed, State: st, AmountCents: &amount, Note: reason}}}
	}
	next := st
	next.RefundedCents = min(max(st.RefundedCents, succeededCents), st.TotalCents)
	next.PaymentStatus = shopd.PaymentStatusAfterRefund(st.TotalCents, next.RefundedCents)
	return Transition{Steps: []Step{{Event: shopd.EventRefunded, State: next, AmountCents: &amount, Note: reason}}}
}
