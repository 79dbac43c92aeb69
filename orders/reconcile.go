package orders

import (
	"context"
	"time"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/store"
)

// KeyRetention is how long an Idempotency-Key replays its checkout; after
// that the key may start a new one.
const KeyRetention = 24 * time.Hour

// Reconcile does, at once and on this instance, every duty the jobs do:
// finishes checkouts whose order exists but whose PaymentIntent does not,
// purges old Idempotency-Keys, expires unpaid orders past their payment
// window, retries refunds that never got an answer and refunds cancelled
// orders still holding money. The server relies on jobs (see jobs.go);
// Reconcile is for tools and tests. Safe to run alongside them: each piece
// works under the same locks and leases as requests and jobs do.
func (s *Service) Reconcile(ctx context.Context) {
	now := s.now()
	if keys, err := s.Store.StaleCheckouts(ctx, now.Add(-s.resumeCheckoutAfter())); err != nil {
		s.Log.ErrorContext(ctx, "reconcile: stale checkouts", "err", err)
	} else {
		for _, k := range keys {
			if _, err := s.resumeCheckout(ctx, k.ID); err != nil {
				s.Log.WarnContext(ctx, "reconcile: resume checkout", "key_id", k.ID, "err", err)
			}
		}
	}
	if ctx.Err() != nil {
		return
	}
	if err := s.purgeKeys(ctx); err != nil {
		s.Log.ErrorContext(ctx, "reconcile: purge idempotency keys", "err", err)
	}
	if ids, err := s.Store.OverdueOrders(ctx, now); err != nil {
		s.Log.ErrorContext(ctx, "reconcile: overdue orders", "err", err)
	} else {
		for _, id := range ids {
			if _, err := s.expire(ctx, id, now); err != nil {
				s.Log.WarnContext(ctx, "reconcile: expire order", "order_id", id, "err", err)
			}
		}
	}
	if s.Payments == nil || ctx.Err() != nil {
		return
	}
	if refunds, err := s.Store.StalePendingRefunds(ctx, now.Add(-s.refundRetryAfter())); err != nil {
		s.Log.ErrorContext(ctx, "reconcile: stale refunds", "err", err)
	} else {
		for _, r := range refunds {
			if err := s.workSettleRefund(ctx, r.ID); err != nil {
				s.Log.ErrorContext(ctx, "reconcile: retry refund", "refund_id", r.ID, "err", err)
			}
		}
	}
	if ids, err := s.Store.CancelledButCaptured(ctx); err != nil {
		s.Log.ErrorContext(ctx, "reconcile: cancelled but paid", "err", err)
	} else {
		for _, id := range ids {
			if err := s.workRefundCancelled(ctx, id); err != nil {
				s.Log.ErrorContext(ctx, "reconcile: refund cancelled order", "order_id", id, "err", err)
			}
		}
	}
}

// expire cancels an unpaid order past its payment window and releases its
// stock, but asks Stripe first: a payment that went through while its
// webhook is late is applied instead, one still being processed is waited
// for (wait says how long until the next look), and otherwise the intent
// is cancelled at Stripe before the stock is released, so released goods
// can no longer be paid for. An order paid or cancelled meanwhile is left
// alone; one not yet due is waited for. An error means: try again later.
func (s *Service) expire(ctx context.Context, id string, now time.Time) (wait time.Duration, err error) {
	o, err := s.Store.Order(ctx, id)
	if shopd.ErrorCode(err) == shopd.ENotFound {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if o.Status != shopd.StatusPending || o.State().Captured() {
		return 0, nil // paid, or cancelled, meanwhile
	}
	if !o.PaymentDueAt.Before(now) {
		return o.PaymentDueAt.Sub(now) + time.Millisecond, nil
	}
	if o.PaymentIntentID != nil {
		if s.Payments == nil {
			s.Log.WarnContext(ctx, "overdue order kept: payments are not configured to ask Stripe about it", "order_id", id)
			return 0, nil // cannot ask Stripe: never release what may be paid
		}
		pi, err := s.Payments.PaymentIntent(ctx, *o.PaymentIntentID)
		if err != nil {
			return 0, err // ask again later
		}
		switch pi.Status {
		case "succeeded":
			// Applied like its webhook; the webhook itself, when it comes, is then a no-op.
			_, _, _, err := s.applyPaymentEvent(ctx, paymentEvent{
				ID: "reconcile:" + pi.ID, Type: StripePaymentSucceeded, OrderID: o.ID,
				Payment: Payment{IntentID: pi.ID, AmountCents: pi.AmountCents, Currency: pi.Currency},
			})
			return 0, err
		case "processing", "requires_capture":
			return s.paymentRecheckAfter(), nil // the money is on its way; its webhook settles the order
		case "canceled":
		default:
			if _, err := s.Payments.CancelPaymentIntent(ctx, pi.ID); err != nil {
				return 0, err // maybe it just succeeded: look again later
			}
		}
	}
	expired, err := s.expireOrder(ctx, id, now)
	if err != nil {
		return 0, err
	}
	if expired {
		s.Log.InfoContext(ctx, "order expired unpaid; stock released", "order_id", id)
	}
	return 0, nil
}

// expireOrder cancels the order and releases its stock if it is still
// unpaid past its payment window (see Expire), under its row lock, and
// reports whether it did.
func (s *Service) expireOrder(ctx context.Context, id string, now time.Time) (bool, error) {
	expired := false
	_, err := s.Store.UpdateOrder(ctx, id, func(tx *store.Tx, o *store.Order) error {
		t := Expire(o.State(), o.PaymentDueAt, now)
		expired = t.Applies()
		return s.apply(ctx, tx, o, t, store.Actor{Kind: store.ActorSystem})
	})
	return expired, err
}

// resumeCheckout finishes the stuck checkout of key keyID unless a request
// holds its lease (busy: look again later). A checkout that ended, or was
// refused for good, needs nothing more; an error means try again later.
func (s *Service) resumeCheckout(ctx context.Context, keyID int64) (busy bool, err error) {
	if s.Payments == nil {
		return false, nil
	}
	k, lease, leased, err := s.Store.LeaseStuckCheckout(ctx, keyID, s.leaseTTL())
	if err != nil {
		return false, err
	}
	if !leased {
		// Gone or past order_created: nothing to do; else someone is on it.
		return k.ID != 0 && k.RecoveryPoint == store.PointOrderCreated, nil
	}
	placed, err := s.underLease(ctx, lease, func(ctx context.Context) (Placed, error) {
		o, err := s.Store.Order(ctx, *k.OrderID)
		if err != nil {
			return Placed{}, err
		}
		return s.finishCheckout(ctx, lease, o, nil)
	})
	switch shopd.ErrorCode(err) {
	case "":
		s.Log.InfoContext(ctx, "stuck checkout finished", "order_id", placed.Order.ID)
		return false, nil
	case shopd.EPaymentRefused, shopd.EConflict:
		// Refused for good, or cancelled before payment: the key records
		// it and every retry of the request gets it.
		return false, nil
	}
	return false, err
}
