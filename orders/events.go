package orders

import (
	"context"
	"time"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/store"
)

// apply carries out t on the order o, which tx holds locked: each step
// puts the stock back when it says so, takes the step's state and records
// its event as done by by. A transition that moves the order's money
// (paid, refunded) also refreshes its customer's statistics, in the same
// transaction, and the messages it sends are written to the outbox
// (Service.Notify) in it too. Tx.UpdateOrder then saves the order.
func (s *Service) apply(ctx context.Context, tx *store.Tx, o *store.Order, t Transition, by store.Actor) error {
	paymentBefore, refundedBefore := o.PaymentStatus, o.RefundedCents
	if t.AttachIntent != "" {
		id := t.AttachIntent
		o.PaymentIntentID = &id
	}
	for _, step := range t.Steps {
		if step.ReleasesStock {
			if err := tx.ReleaseStock(ctx, *o, "order cancelled"); err != nil {
				return err
			}
		}
		o.Status, o.PaymentStatus = step.State.Status, step.State.PaymentStatus
		o.FulfillmentStatus, o.RefundedCents = step.State.FulfillmentStatus, step.State.RefundedCents
		if err := tx.RecordEvent(ctx, *o, step.Event, by, step.AmountCents, step.Note); err != nil {
			return err
		}
	}
	if o.PaymentStatus != paymentBefore || o.RefundedCents != refundedBefore {
		if err := tx.RefreshCustomerStats(ctx, *o); err != nil {
			return err
		}
	}
	if err := s.scheduleFollowUps(ctx, tx, *o, t); err != nil {
		return err
	}
	return s.notify(ctx, tx, *o, t, by)
}

// Notifier writes the messages an order transition sends, in the
// transition's transaction (the outbox; notify.Outbox is one).
type Notifier interface {
	OrderChanged(ctx context.Context, tx *store.Tx, o store.Order, events []string, by store.Actor) error
	// OrderFollowUp writes the message of a follow-up (a FollowUp
	// constant, also its template) that applies to o.
	OrderFollowUp(ctx context.Context, tx *store.Tx, o store.Order, followUp string) error
}

// notify hands the transition's events to the Notifier, if any.
func (s *Service) notify(ctx context.Context, tx *store.Tx, o store.Order, t Transition, by store.Actor) error {
	if s.Notify == nil || !t.Applies() {
		return nil
	}
	events := make([]string, len(t.Steps))
	for i, step := range t.Steps {
		events[i] = step.Event
	}
	return s.Notify.OrderChanged(ctx, tx, o, events, by)
}

// Outcome says what a payment event did to its order.
type Outcome int

// Outcomes of a payment event.
const (
	OutcomeIgnored   Outcome = iota // recorded, but it does not apply (late, mismatched, not our order)
	OutcomeApplied                  // the order changed
	OutcomeDuplicate                // the event id was seen before: nothing done
	OutcomeRefundDue                // money arrived for a cancelled order: it is being refunded
)

func (o Outcome) String() string {
	switch o {
	case OutcomeApplied:
		return "applied"
	case OutcomeDuplicate:
		return "duplicate"
	case OutcomeRefundDue:
		return "refund_due"
	}
	return "ignored"
}

// paymentEvent is a verified Stripe event about an order's payment.
type paymentEvent struct {
	ID, Type string
	OrderID  string // metadata.orderId, may be ""
	Payment
}

var byStripe = store.Actor{Kind: store.ActorStripe}

// applyPaymentEvent applies a payment event to its order in one
// transaction: the event id is recorded with its effect, so a redelivery
// does nothing; the order's row lock orders it against checkout, cancel and
// other events; OnPaymentEvent decides what it does. The order is found by
// the event's orderId, else by its PaymentIntent; an event for no order of
// ours is recorded and ignored.
func (s *Service) applyPaymentEvent(ctx context.Context, ev paymentEvent) (Outcome, store.Order, Transition, error) {
	outcome := OutcomeIgnored
	var out store.Order
	var t Transition
	err := s.Store.WithTx(ctx, func(tx *store.Tx) error {
		orderID := ev.OrderID
		if orderID == "" && ev.IntentID != "" {
			var err error
			if orderID, err = tx.OrderIDByIntent(ctx, ev.IntentID); err != nil {
				return err
			}
		}
		fresh, err := tx.RecordStripeEvent(ctx, ev.ID, ev.Type, orderID)
		if err != nil {
			return err
		}
		if !fresh {
			outcome = OutcomeDuplicate
			return nil
		}
		o, err := tx.UpdateOrder(ctx, orderID, func(tx *store.Tx, o *store.Order) error {
			t = OnPaymentEvent(o.State(), ev.Type, ev.Payment)
			return s.apply(ctx, tx, o, t, byStripe)
		})
		if shopd.ErrorCode(err) == shopd.ENotFound {
			return nil // not ours; keep the event id so it is not retried
		}
		if err != nil {
			return err
		}
		switch {
		case t.RefundDue:
			outcome = OutcomeRefundDue
			if err := s.enqueue(ctx, tx, RefundCancelledOrderArgs{OrderID: o.ID}, time.Time{}); err != nil {
				return err
			}
		case t.Applies():
			outcome = OutcomeApplied
		}
		out = o
		return nil
	})
	if err != nil {
		return OutcomeIgnored, store.Order{}, Transition{}, err
	}
	return outcome, out, t, nil
}

// HandleEvent applies a verified Stripe event. Unknown types and events for
// orders that are not ours are accepted and ignored. Money that arrives for
// a cancelled order is refunded by a refund_cancelled_order job, enqueued
// with the event; without a job inserter (tools, tests) the refund is made
// before HandleEvent returns.
func (s *Service) HandleEvent(ctx context.Context, ev payments.Event) error {
	pe := paymentEvent{ID: ev.ID, Type: ev.Type}
	switch {
	case ev.PaymentIntent != nil && (ev.Type == StripePaymentSucceeded || ev.Type == StripePaymentFailed):
		pi := ev.PaymentIntent
		pe.OrderID, pe.Payment = pi.OrderID, Payment{IntentID: pi.ID, AmountCents: pi.AmountCents, Currency: pi.Currency}
	case ev.Charge != nil && ev.Type == StripeChargeRefunded:
		ch := ev.Charge
		pe.OrderID, pe.Payment = ch.OrderID, Payment{IntentID: ch.PaymentIntentID, AmountCents: ch.AmountRefundedCents, Currency: ch.Currency}
	default:
		return nil
	}
	outcome, o, t, err := s.applyPaymentEvent(ctx, pe)
	if err != nil {
		return err
	}
	s.Log.InfoContext(ctx, "stripe event", "event_id", ev.ID, "type", ev.Type, "order_id", o.ID, "outcome", outcome.String())
	if t.CancelIntent && o.PaymentIntentID != nil && s.Payments != nil {
		s.cancelIntent(ctx, o.ID, *o.PaymentIntentID)
	}
	if outcome == OutcomeRefundDue && s.Jobs == nil {
		if err := s.workRefundCancelled(ctx, o.ID); err != nil {
			s.Log.ErrorContext(ctx, "refund payment for cancelled order", "order_id", o.ID, "err", err)
		}
	}
	return nil
}
