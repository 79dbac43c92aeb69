package orders

import (
	"context"
	"fmt"
	"time"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/store"
)

// Cancel cancels the order and releases its stock; money already taken is
// refunded in full through Stripe.
func (s *Service) Cancel(ctx context.Context, orderID string, by store.Actor, reason string) (store.Order, error) {
	o, err := s.Store.CancelOrder(ctx, orderID, by, reason)
	if err != nil {
		return store.Order{}, err
	}
	if o.State().Refundable() > 0 {
		refunded, err := s.Refund(ctx, o.ID, 0, "requested_by_customer", by)
		if err == nil {
			return refunded, nil
		}
		// The cancellation stands either way. A refund Stripe did not
		// answer stays pending, one it declined is recorded; the reconciler
		// retries both, so report the order as it is now.
		s.Log.WarnContext(ctx, "refund of cancelled order deferred", "order_id", o.ID, "err", err)
		return s.Store.Order(ctx, o.ID)
	}
	if o.PaymentIntentID != nil && s.Payments != nil {
		s.cancelIntent(ctx, o.ID, *o.PaymentIntentID)
	}
	return o, nil
}

// Refund refunds amountCents of the order (0: all that is left). Its
// Stripe idempotency key is derived from the refund row, so a retry after a
// lost answer cannot refund twice.
func (s *Service) Refund(ctx context.Context, orderID string, amountCents int64, reason string, by store.Actor) (store.Order, error) {
	if s.Payments == nil {
		return store.Order{}, errPaymentsOff
	}
	r, o, err := s.Store.BeginRefund(ctx, orderID, amountCents, reason)
	if err != nil {
		return store.Order{}, err
	}
	return s.settleRefund(ctx, r, o, by)
}

func (s *Service) settleRefund(ctx context.Context, r store.Refund, o store.Order, by store.Actor) (store.Order, error) {
	if o.PaymentIntentID == nil {
		return s.Store.CompleteRefund(ctx, r, "", false, by)
	}
	reason := ""
	if r.Reason != nil {
		reason = *r.Reason
	}
	res, err := s.Payments.Refund(ctx, payments.RefundParams{
		PaymentIntentID: *o.PaymentIntentID, AmountCents: r.AmountCents, Reason: reason,
		IdempotencyKey: "refund-" + r.ID, OrderID: o.ID,
	})
	if shopd.ErrorCode(err) == shopd.EUnavailable {
		// Stripe may or may not have refunded: keep it pending; the
		// reconciler asks again with the same key.
		return store.Order{}, err
	}
	if err != nil {
		if _, cerr := s.Store.CompleteRefund(ctx, r, "", false, by); cerr != nil {
			s.Log.ErrorContext(ctx, "record failed refund", "order_id", o.ID, "err", cerr)
		}
		return store.Order{}, fmt.Errorf("refund %s: %w", o.ID, err)
	}
	return s.Store.CompleteRefund(ctx, r, res.ID, true, by)
}

// Fulfill marks a paid order shipped.
func (s *Service) Fulfill(ctx context.Context, orderID, trackingNumber string, by store.Actor) (store.Order, error) {
	return s.Store.FulfillOrder(ctx, orderID, trackingNumber, by)
}

// HandleEvent applies a verified Stripe event. Unknown types and events for
// orders that are not ours are accepted and ignored.
func (s *Service) HandleEvent(ctx context.Context, ev payments.Event) error {
	pe := store.PaymentEvent{EventID: ev.ID, Type: ev.Type}
	switch {
	case ev.PaymentIntent != nil && (ev.Type == "payment_intent.succeeded" || ev.Type == "payment_intent.payment_failed"):
		pi := ev.PaymentIntent
		pe.OrderID, pe.PaymentIntentID, pe.AmountCents, pe.Currency = pi.OrderID, pi.ID, pi.AmountCents, pi.Currency
	case ev.Charge != nil && ev.Type == "charge.refunded":
		ch := ev.Charge
		pe.OrderID, pe.PaymentIntentID, pe.AmountCents, pe.Currency = ch.OrderID, ch.PaymentIntentID, ch.AmountRefundedCents, ch.Currency
	default:
		return nil
	}
	outcome, o, err := s.Store.ApplyPaymentEvent(ctx, pe)
	if err != nil {
		return err
	}
	s.Log.InfoContext(ctx, "stripe event", "event_id", ev.ID, "type", ev.Type, "order_id", o.ID, "outcome", outcome.String())
	if outcome == store.OutcomeApplied && o.Status == shopd.StatusCancelled && o.PaymentIntentID != nil && s.Payments != nil {
		// payment_failed cancelled the order and released its stock; Stripe
		// would still let the customer retry the intent with another card.
		s.cancelIntent(ctx, o.ID, *o.PaymentIntentID)
	}
	if outcome == store.OutcomeRefundDue {
		// Answer Stripe now; refund in the background. If this process dies
		// first, the reconciler finds the cancelled-but-paid order.
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if _, err := s.Refund(ctx, o.ID, 0, "", store.Actor{Kind: store.ActorSystem}); err != nil {
				s.Log.ErrorContext(ctx, "refund payment for cancelled order", "order_id", o.ID, "err", err)
			}
		}()
	}
	return nil
}
