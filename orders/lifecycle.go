package orders

import (
	"context"
	"time"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/store"
)

// Cancel cancels the order and releases its stock: by its owner while
// payment is pending, by an admin while it is not fulfilled (otherwise
// EInvalidTransition). Money already taken is refunded in full through
// Stripe; an intent nobody paid is cancelled there.
func (s *Service) Cancel(ctx context.Context, orderID string, by store.Actor, reason string) (store.Order, error) {
	o, err := s.Store.UpdateOrder(ctx, orderID, func(tx *store.Tx, o *store.Order) error {
		t, err := Cancel(o.State(), by.Kind == store.ActorAdmin, reason)
		if err != nil {
			return err
		}
		return s.apply(ctx, tx, o, t, by)
	})
	if err != nil {
		return store.Order{}, err
	}
	if o.State().Refundable() > 0 {
		refunded, err := s.Refund(ctx, o.ID, 0, "requested_by_customer", by)
		if err == nil {
			return refunded, nil
		}
		// The cancellation stands either way. A refund Stripe did not
		// answer stays pending for its settle_refund job; one it declined
		// is recorded and the sweep enqueues another try; so report the
		// order as it is now.
		s.Log.WarnContext(ctx, "refund of cancelled order deferred", "order_id", o.ID, "err", err)
		return s.Store.Order(ctx, o.ID)
	}
	if o.PaymentIntentID != nil && s.Payments != nil {
		s.cancelIntent(ctx, o.ID, *o.PaymentIntentID)
	}
	return o, nil
}

// Refund refunds amountCents of the order (0: all that is left). The
// refund is first reserved under the order's lock, counting refunds still
// under way, so concurrent refunds never add up to more than was paid. Its
// Stripe idempotency key is derived from the refund row, so a retry after a
// lost answer cannot refund twice; the retry is a settle_refund job,
// enqueued with the row, that runs after the Stripe call's deadline.
func (s *Service) Refund(ctx context.Context, orderID string, amountCents int64, reason string, by store.Actor) (store.Order, error) {
	if s.Payments == nil {
		return store.Order{}, errPaymentsOff
	}
	var r store.Refund
	o, err := s.Store.UpdateOrder(ctx, orderID, func(tx *store.Tx, o *store.Order) error {
		pending, err := tx.PendingRefundCents(ctx, o.ID)
		if err != nil {
			return err
		}
		amount, err := RefundAmount(o.State(), amountCents, pending)
		if err != nil {
			return err
		}
		if r, err = tx.InsertRefund(ctx, o.ID, amount, reason); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, SettleRefundArgs{RefundID: r.ID}, s.now().Add(s.refundRetryAfter()))
	})
	if err != nil {
		return store.Order{}, err
	}
	return s.settleRefund(ctx, r, o, by)
}

// settleRefund asks Stripe for a reserved refund and records the answer.
func (s *Service) settleRefund(ctx context.Context, r store.Refund, o store.Order, by store.Actor) (store.Order, error) {
	if o.PaymentIntentID == nil {
		return s.recordRefund(ctx, r, "", false, by)
	}
	reason := ""
	if r.Reason != nil {
		reason = *r.Reason
	}
	// Bounded, so the settle_refund job, due after this deadline, never
	// asks while this call may still be under way.
	sctx, cancel := context.WithTimeout(ctx, stripeDeadline)
	defer cancel()
	res, err := s.Payments.Refund(sctx, payments.RefundParams{
		PaymentIntentID: *o.PaymentIntentID, AmountCents: r.AmountCents, Reason: reason,
		IdempotencyKey: "refund-" + r.ID, OrderID: o.ID,
	})
	if err != nil {
		err = stripeFailure(ctx, "refund "+o.ID, err)
	}
	if shopd.ErrorCode(err) == shopd.EUnavailable || ctx.Err() != nil {
		// Stripe may or may not have refunded: keep it pending; the
		// settle_refund job asks again with the same key.
		return store.Order{}, err
	}
	if err != nil {
		// When our side gave up (shutdown, a caller gone), Stripe may or may
		// not have refunded either: the refund stays pending, as above.
		if ctx.Err() == nil {
			if _, rerr := s.recordRefund(ctx, r, "", false, by); rerr != nil {
				s.Log.ErrorContext(ctx, "record failed refund", "order_id", o.ID, "err", rerr)
			}
		}
		return store.Order{}, err
	}
	return s.recordRefund(ctx, r, res.ID, true, by)
}

// recordRefund records Stripe's answer to a reserved refund under the
// order's lock; a refund settled before (by a racing retry) changes
// nothing.
func (s *Service) recordRefund(ctx context.Context, r store.Refund, stripeRefundID string, succeeded bool, by store.Actor) (store.Order, error) {
	return s.Store.UpdateOrder(ctx, r.OrderID, func(tx *store.Tx, o *store.Order) error {
		settled, err := tx.SettleRefund(ctx, r.ID, succeeded, stripeRefundID)
		if err != nil || !settled {
			return err
		}
		var sum int64
		if succeeded {
			if sum, err = tx.SucceededRefundCents(ctx, o.ID); err != nil {
				return err
			}
		}
		note := ""
		if r.Reason != nil {
			note = *r.Reason
		}
		return s.apply(ctx, tx, o, RefundSettled(o.State(), r.AmountCents, succeeded, sum, note), by)
	})
}

// Fulfill marks a paid order shipped with its tracking number (otherwise
// EInvalidTransition).
func (s *Service) Fulfill(ctx context.Context, orderID, trackingNumber string, by store.Actor) (store.Order, error) {
	return s.Store.UpdateOrder(ctx, orderID, func(tx *store.Tx, o *store.Order) error {
		t, err := Fulfill(o.State(), trackingNumber)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		o.TrackingNumber, o.ShippedAt = &trackingNumber, &now
		return s.apply(ctx, tx, o, t, by)
	})
}

// Deliver records that a fulfilled order was delivered: it sets
// deliveredAt and records a delivered event (otherwise EInvalidTransition).
func (s *Service) Deliver(ctx context.Context, orderID string, by store.Actor) (store.Order, error) {
	return s.Store.UpdateOrder(ctx, orderID, func(tx *store.Tx, o *store.Order) error {
		t, err := Deliver(o.State(), o.DeliveredAt != nil)
		if err != nil {
			return err
		}
		// As stored (PostgreSQL keeps microseconds), so the answer reads
		// as every later read of the order does.
		now := s.now().UTC().Truncate(time.Microsecond)
		o.DeliveredAt = &now
		return s.apply(ctx, tx, o, t, by)
	})
}
