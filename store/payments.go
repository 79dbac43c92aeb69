package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/shopd/shopd"
)

// PaymentOutcome says what a payment event did to its order.
type PaymentOutcome int

// Outcomes of ApplyPaymentEvent.
const (
	OutcomeApplied   PaymentOutcome = iota // the order changed
	OutcomeDuplicate                       // the event id was seen before: nothing done
	OutcomeIgnored                         // recorded, but it does not apply (late, mismatched, unknown order)
	OutcomeRefundDue                       // money arrived for a cancelled order: refund it
)

func (o PaymentOutcome) String() string {
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

// PaymentEvent is a verified Stripe event about an order's payment.
type PaymentEvent struct {
	EventID, Type   string
	OrderID         string // metadata.orderId, may be ""
	PaymentIntentID string
	AmountCents     int64 // for payment_intent.*: the amount; for charge.refunded: amount refunded so far
	Currency        string
}

const recordStripeEventSQL = `
INSERT INTO stripe_events (id, type, order_id)
VALUES ($1, $2, $3)
ON CONFLICT (id) DO NOTHING`

const orderIDByIntentSQL = `SELECT id FROM orders WHERE payment_intent_id = $1`

// ApplyPaymentEvent applies a payment_intent.succeeded,
// payment_intent.payment_failed or charge.refunded event. The event id is
// recorded in the same transaction as the effect, so a redelivery does
// nothing; the order row lock orders it against checkout, cancel and other
// events; and an order never moves backwards.
func (s *Store) ApplyPaymentEvent(ctx context.Context, ev PaymentEvent) (PaymentOutcome, Order, error) {
	outcome := OutcomeIgnored
	var out Order
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		orderID := ev.OrderID
		if orderID == "" && ev.PaymentIntentID != "" {
			err := tx.GetContext(ctx, &orderID, orderIDByIntentSQL, ev.PaymentIntentID)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("order of intent %s: %w", ev.PaymentIntentID, translate(err))
			}
		}
		res, err := tx.ExecContext(ctx, recordStripeEventSQL, ev.EventID, ev.Type, nullID(validOrEmpty(orderID)))
		if err != nil {
			return fmt.Errorf("record stripe event: %w", translate(err))
		}
		if n, _ := res.RowsAffected(); n == 0 {
			outcome = OutcomeDuplicate
			return nil
		}
		o, err := getOrder(ctx, tx, orderID, true)
		if shopd.ErrorCode(err) == shopd.ENotFound {
			return nil // not ours; keep the event id so it is not retried
		} else if err != nil {
			return err
		}
		if o.PaymentIntentID != nil && ev.PaymentIntentID != "" && *o.PaymentIntentID != ev.PaymentIntentID {
			out = o
			return nil // an intent that is not this order's
		}
		apply := map[string]func(context.Context, *sqlx.Tx, *Order, PaymentEvent) (PaymentOutcome, error){
			"payment_intent.succeeded":      applySucceeded,
			"payment_intent.payment_failed": applyFailed,
			"charge.refunded":               applyRefunded,
		}[ev.Type]
		if apply != nil {
			if outcome, err = apply(ctx, tx, &o, ev); err != nil {
				return err
			}
		}
		out = o
		return nil
	})
	return outcome, out, err
}

var byStripe = Actor{Kind: ActorStripe}

// applySucceeded marks the order paid when the amount and currency are what
// it costs and it still waits for payment; money for a cancelled order is
// recorded and due for a refund.
func applySucceeded(ctx context.Context, tx *sqlx.Tx, o *Order, ev PaymentEvent) (PaymentOutcome, error) {
	if ev.AmountCents != o.TotalCents || ev.Currency != o.Currency {
		return OutcomeIgnored, nil // not what the order costs: never mark it paid
	}
	st := o.State()
	if o.PaymentIntentID == nil && ev.PaymentIntentID != "" {
		// Paid before the checkout stored its intent: keep it, or the money
		// could never be refunded.
		o.PaymentIntentID = &ev.PaymentIntentID
	}
	// A refund Stripe reported before this success still counts.
	paid := shopd.PaymentPaid
	if o.RefundedCents > 0 {
		paid = shopd.PaymentStatusAfterRefund(o.TotalCents, o.RefundedCents)
	}
	outcome, note := OutcomeApplied, ""
	switch {
	case st.CanMarkPaid():
		o.Status, o.PaymentStatus = shopd.StatusProcessing, paid
	case o.Status == shopd.StatusCancelled && !st.Captured() && o.PaymentStatus != shopd.PaymentRefunded:
		o.PaymentStatus, note = paid, "paid after cancellation; refunding"
		if o.State().Refundable() > 0 {
			outcome = OutcomeRefundDue
		}
	default:
		return OutcomeIgnored, nil // already paid, or further along: never backwards
	}
	if err := saveState(ctx, tx, o); err != nil {
		return 0, err
	}
	return outcome, recordEvent(ctx, tx, *o, EventPaid, byStripe, &ev.AmountCents, note)
}

// applyFailed cancels an order whose payment failed while it was pending
// and releases its stock; a failure after a success changes nothing.
func applyFailed(ctx context.Context, tx *sqlx.Tx, o *Order, ev PaymentEvent) (PaymentOutcome, error) {
	if !o.State().CanMarkFailed() {
		return OutcomeIgnored, nil
	}
	o.PaymentStatus = shopd.PaymentFailed
	if err := saveState(ctx, tx, o); err != nil {
		return 0, err
	}
	if err := recordEvent(ctx, tx, *o, EventPaymentFailed, byStripe, &ev.AmountCents, ""); err != nil {
		return 0, err
	}
	return OutcomeApplied, cancelLocked(ctx, tx, o, byStripe, "payment failed")
}

// applyRefunded records what Stripe reports refunded so far, whatever the
// order's state: Stripe may deliver the refund before the success, and then
// the success must find it. It only ever grows.
func applyRefunded(ctx context.Context, tx *sqlx.Tx, o *Order, ev PaymentEvent) (PaymentOutcome, error) {
	if ev.Currency != o.Currency || ev.AmountCents <= o.RefundedCents {
		return OutcomeIgnored, nil
	}
	amount := min(ev.AmountCents, o.TotalCents)
	delta := amount - o.RefundedCents
	o.RefundedCents = amount
	if o.State().Captured() {
		o.PaymentStatus = shopd.PaymentStatusAfterRefund(o.TotalCents, o.RefundedCents)
	}
	if err := saveState(ctx, tx, o); err != nil {
		return 0, err
	}
	return OutcomeApplied, recordEvent(ctx, tx, *o, EventRefunded, byStripe, &delta, "reported by Stripe")
}

func validOrEmpty(id string) string {
	if validID(id) {
		return id
	}
	return ""
}

// Refund is a refund of part or all of an order's payment.
type Refund struct {
	ID             string    `db:"id"`
	OrderID        string    `db:"order_id"`
	AmountCents    int64     `db:"amount_cents"`
	Reason         *string   `db:"reason"`
	Status         string    `db:"status"`
	StripeRefundID *string   `db:"stripe_refund_id"`
	CreatedAt      time.Time `db:"created_at"`
}

const (
	pendingRefundsSQL = `SELECT coalesce(sum(amount_cents), 0) FROM refunds WHERE order_id = $1 AND status = 'pending'`
	insertRefundSQL   = `
INSERT INTO refunds (order_id, amount_cents, reason, status)
VALUES ($1, $2, $3, 'pending')
RETURNING id, order_id, amount_cents, reason, status, stripe_refund_id, created_at`
)

// BeginRefund reserves a refund of amountCents (0: all that is left) under
// the order lock, counting refunds still under way, so concurrent refunds
// can never add up to more than was paid. The caller then asks Stripe and
// calls CompleteRefund.
func (s *Store) BeginRefund(ctx context.Context, orderID string, amountCents int64, reason string) (Refund, Order, error) {
	var r Refund
	o, err := s.withLockedOrder(ctx, orderID, func(tx *sqlx.Tx, o *Order) error {
		var pending int64
		if err := tx.GetContext(ctx, &pending, pendingRefundsSQL, o.ID); err != nil {
			return fmt.Errorf("pending refunds: %w", translate(err))
		}
		if amountCents == 0 {
			amountCents = o.State().Refundable() - pending
		}
		if err := o.State().CanRefund(amountCents, pending); err != nil {
			return err
		}
		var why *string
		if reason != "" {
			why = &reason
		}
		if err := tx.GetContext(ctx, &r, insertRefundSQL, o.ID, amountCents, why); err != nil {
			return fmt.Errorf("insert refund: %w", translate(err))
		}
		return nil
	})
	return r, o, err
}

const (
	settleRefundSQL = `
UPDATE refunds
SET status = $2, stripe_refund_id = $3, updated_at = now()
WHERE id = $1
	AND status = 'pending'`
	succeededRefundsSQL = `SELECT coalesce(sum(amount_cents), 0) FROM refunds WHERE order_id = $1 AND status = 'succeeded'`
)

// CompleteRefund records Stripe's answer to a refund begun with BeginRefund.
// refunded_cents only grows: it is the larger of what our refunds add up to
// and what Stripe last reported.
func (s *Store) CompleteRefund(ctx context.Context, r Refund, stripeRefundID string, succeeded bool, by Actor) (Order, error) {
	return s.withLockedOrder(ctx, r.OrderID, func(tx *sqlx.Tx, o *Order) error {
		status, event := "failed", EventRefundFailed
		var sid *string
		if succeeded {
			status, event, sid = "succeeded", EventRefunded, &stripeRefundID
		}
		res, err := tx.ExecContext(ctx, settleRefundSQL, r.ID, status, sid)
		if err != nil {
			return fmt.Errorf("settle refund: %w", translate(err))
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // settled before
		}
		note := ""
		if r.Reason != nil {
			note = *r.Reason
		}
		if succeeded {
			var sum int64
			if err := tx.GetContext(ctx, &sum, succeededRefundsSQL, o.ID); err != nil {
				return fmt.Errorf("refunded sum: %w", translate(err))
			}
			o.RefundedCents = min(max(o.RefundedCents, sum), o.TotalCents)
			o.PaymentStatus = shopd.PaymentStatusAfterRefund(o.TotalCents, o.RefundedCents)
			if err := saveState(ctx, tx, o); err != nil {
				return err
			}
		}
		return recordEvent(ctx, tx, *o, event, by, &r.AmountCents, note)
	})
}

const overdueOrdersSQL = `
SELECT id
FROM orders
WHERE status = 'pending'
	AND payment_status IN ('pending', 'failed')
	AND payment_due_at < $1
ORDER BY payment_due_at
LIMIT 100`

// OverdueOrders returns unpaid orders whose payment window has closed.
func (s *Store) OverdueOrders(ctx context.Context, now time.Time) ([]string, error) {
	var ids []string
	if err := s.db.SelectContext(ctx, &ids, overdueOrdersSQL, now); err != nil {
		return nil, fmt.Errorf("overdue orders: %w", translate(err))
	}
	return ids, nil
}

// ExpireOrder cancels an unpaid order past its payment window and releases
// its stock; a payment that arrived meanwhile wins.
func (s *Store) ExpireOrder(ctx context.Context, orderID string, now time.Time) (Order, bool, error) {
	expired := false
	o, err := s.withLockedOrder(ctx, orderID, func(tx *sqlx.Tx, o *Order) error {
		if o.Status != shopd.StatusPending || o.State().Captured() || !o.PaymentDueAt.Before(now) {
			return nil
		}
		expired = true
		return cancelLocked(ctx, tx, o, Actor{Kind: ActorSystem}, "payment window expired")
	})
	return o, expired, err
}

const unrefundedCancelledSQL = `
SELECT o.id
FROM orders o
WHERE o.status = 'cancelled'
	AND o.payment_status IN ('paid', 'partially_refunded')
	AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = o.id AND r.status = 'pending')
	-- Stripe declined for good this many times: leave it to a person.
	AND (SELECT count(*) FROM refunds r WHERE r.order_id = o.id AND r.status = 'failed') < 3
LIMIT 100`

const stalePendingRefundsSQL = `
SELECT id, order_id, amount_cents, reason, status, stripe_refund_id, created_at
FROM refunds
WHERE status = 'pending'
	AND updated_at < $1
LIMIT 100`

// StalePendingRefunds returns refunds whose Stripe call never got an answer
// (a timeout, a crash); asking again with the same key is safe.
func (s *Store) StalePendingRefunds(ctx context.Context, before time.Time) ([]Refund, error) {
	var rs []Refund
	if err := s.db.SelectContext(ctx, &rs, stalePendingRefundsSQL, before); err != nil {
		return nil, fmt.Errorf("stale refunds: %w", translate(err))
	}
	return rs, nil
}

// CancelledButCaptured returns cancelled orders still holding money: a
// refund that failed or was never made. The reconciler refunds them, but
// gives up on an order after three declined refunds (each one is an event
// on the order, for an admin to act on).
func (s *Store) CancelledButCaptured(ctx context.Context) ([]string, error) {
	var ids []string
	if err := s.db.SelectContext(ctx, &ids, unrefundedCancelledSQL); err != nil {
		return nil, fmt.Errorf("cancelled but captured: %w", translate(err))
	}
	return ids, nil
}
