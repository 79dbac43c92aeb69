package orders

import (
	"context"
	"log/slog"
	"time"

	"github.com/shopd/shopd/store"
)

// staleAfter is how long a checkout may sit between phases before the
// reconciler assumes its process died and finishes it.
const staleAfter = 30 * time.Second

// KeyRetention is how long an Idempotency-Key replays its checkout; after
// that the key may start a new one.
const KeyRetention = 24 * time.Hour

// Reconcile finishes what crashes and silence left behind: checkouts whose
// order exists but whose PaymentIntent does not, unpaid orders past their
// payment window (cancelled, stock released), refunds that never got an
// answer, and cancelled orders still holding money. Safe to run on every
// instance at once: each piece works under the same locks as requests do.
func (s *Service) Reconcile(ctx context.Context) {
	now := s.now()
	if keys, err := s.Store.StaleCheckouts(ctx, now.Add(-staleAfter)); err != nil {
		s.sweepFailed(ctx, "reconcile: stale checkouts", "err", err)
	} else {
		for _, k := range keys {
			s.resumeCheckout(ctx, k)
		}
	}
	if ctx.Err() != nil {
		return // shutting down: the next sweep, on any instance, goes on
	}
	if n, err := s.Store.PurgeIdempotencyKeys(ctx, now.Add(-KeyRetention)); err != nil {
		s.sweepFailed(ctx, "reconcile: purge idempotency keys", "err", err)
	} else if n > 0 {
		s.Log.InfoContext(ctx, "reconcile: idempotency keys purged", "count", n)
	}
	if ids, err := s.Store.OverdueOrders(ctx, now); err != nil {
		s.sweepFailed(ctx, "reconcile: overdue orders", "err", err)
	} else {
		for _, id := range ids {
			s.expire(ctx, id, now)
		}
	}
	if s.Payments == nil || ctx.Err() != nil {
		return
	}
	if refunds, err := s.Store.StalePendingRefunds(ctx, now.Add(-staleAfter)); err != nil {
		s.sweepFailed(ctx, "reconcile: stale refunds", "err", err)
	} else {
		for _, r := range refunds {
			o, err := s.Store.Order(ctx, r.OrderID)
			if err == nil {
				_, err = s.settleRefund(ctx, r, o, store.Actor{Kind: store.ActorSystem})
			}
			if err != nil {
				s.sweepFailed(ctx, "reconcile: retry refund", "refund_id", r.ID, "err", err)
			}
		}
	}
	if ids, err := s.Store.CancelledButCaptured(ctx); err != nil {
		s.sweepFailed(ctx, "reconcile: cancelled but paid", "err", err)
	} else {
		for _, id := range ids {
			if _, err := s.Refund(ctx, id, 0, "", store.Actor{Kind: store.ActorSystem}); err != nil {
				s.sweepFailed(ctx, "reconcile: refund cancelled order", "order_id", id, "err", err)
			}
		}
	}
}

// sweepFailed logs what a sweep could not do: an error, unless shutdown
// cancelled ctx, which makes failures expected and harmless (the next
// sweep, on any instance, takes up what this one left).
func (s *Service) sweepFailed(ctx context.Context, msg string, args ...any) {
	level := slog.LevelError
	if ctx.Err() != nil {
		level = slog.LevelDebug
	}
	s.Log.Log(ctx, level, msg, args...)
}

// expire cancels an unpaid order past its payment window and releases its
// stock, but asks Stripe first: a payment that went through while its
// webhook is late is applied instead, one still being processed is waited
// for, and otherwise the intent is cancelled at Stripe before the stock is
// released, so released goods can no longer be paid for.
func (s *Service) expire(ctx context.Context, id string, now time.Time) {
	o, err := s.Store.Order(ctx, id)
	if err != nil {
		s.sweepFailed(ctx, "reconcile: overdue order", "order_id", id, "err", err)
		return
	}
	if o.PaymentIntentID != nil {
		if s.Payments == nil {
			return // cannot ask Stripe: never release what may be paid
		}
		pi, err := s.Payments.PaymentIntent(ctx, *o.PaymentIntentID)
		if err != nil {
			s.Log.WarnContext(ctx, "reconcile: ask Stripe about an overdue order", "order_id", id, "err", err)
			return // ask again next pass
		}
		switch pi.Status {
		case "succeeded":
			// Applied like its webhook; the webhook itself, when it comes, is then a no-op.
			_, _, _, err := s.applyPaymentEvent(ctx, paymentEvent{
				ID: "reconcile:" + pi.ID, Type: StripePaymentSucceeded, OrderID: o.ID,
				Payment: Payment{IntentID: pi.ID, AmountCents: pi.AmountCents, Currency: pi.Currency},
			})
			if err != nil {
				s.sweepFailed(ctx, "reconcile: apply a payment Stripe reports", "order_id", id, "err", err)
			}
			return
		case "processing", "requires_capture":
			return // the money is on its way; its webhook settles the order
		case "canceled":
		default:
			if _, err := s.Payments.CancelPaymentIntent(ctx, pi.ID); err != nil {
				s.Log.WarnContext(ctx, "reconcile: cancel the intent of an overdue order", "order_id", id, "err", err)
				return // maybe it just succeeded: look again next pass
			}
		}
	}
	if expired, err := s.expireOrder(ctx, id, now); err != nil {
		s.sweepFailed(ctx, "reconcile: expire order", "order_id", id, "err", err)
	} else if expired {
		s.Log.InfoContext(ctx, "order expired unpaid; stock released", "order_id", id)
	}
}

// expireOrder cancels the order and releases its stock if it is still
// unpaid past its payment window (see Expire), under its row lock, and
// reports whether it did.
func (s *Service) expireOrder(ctx context.Context, id string, now time.Time) (bool, error) {
	expired := false
	_, err := s.Store.UpdateOrder(ctx, id, func(tx *store.Tx, o *store.Order) error {
		t := Expire(o.State(), o.PaymentDueAt, now)
		expired = t.Applies()
		return apply(ctx, tx, o, t, store.Actor{Kind: store.ActorSystem})
	})
	return expired, err
}

// resumeCheckout finishes one stuck checkout unless a request is on it.
func (s *Service) resumeCheckout(ctx context.Context, k store.IdempotencyKey) {
	st, err := s.Store.Pin(ctx)
	if err != nil {
		return
	}
	defer st.Release()
	lock, ok, err := st.TryLockCheckout(ctx, k.UserID, k.Key)
	if err != nil || !ok {
		return
	}
	defer lock.Unlock()
	k, err = st.IdempotencyKeyByID(ctx, k.ID)
	if err != nil || k.RecoveryPoint != store.PointOrderCreated || k.OrderID == nil {
		return
	}
	o, err := st.Order(ctx, *k.OrderID)
	if err != nil {
		return
	}
	if s.Payments == nil {
		return
	}
	if _, err := s.finishCheckout(ctx, st, k, o, nil); err != nil {
		s.Log.WarnContext(ctx, "reconcile: resume checkout", "order_id", o.ID, "err", err)
		return
	}
	s.Log.InfoContext(ctx, "reconcile: checkout finished", "order_id", o.ID)
}

// RunReconciler reconciles now and then every interval until ctx ends.
func (s *Service) RunReconciler(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.Reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
