package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/shopd/shopd"
)

const recordStripeEventSQL = `
INSERT INTO stripe_events (id, type, order_id)
VALUES ($1, $2, $3)
ON CONFLICT (id) DO NOTHING`

// RecordStripeEvent records a Stripe event id (of type typ, about orderID,
// which may be "") and reports whether it is new. Recorded in the same
// transaction as the event's effect, it makes a redelivery do nothing; a
// concurrent delivery of the same id waits here until this transaction
// ends, then finds it recorded.
func (t *Tx) RecordStripeEvent(ctx context.Context, eventID, typ, orderID string) (fresh bool, err error) {
	res, err := t.tx.ExecContext(ctx, recordStripeEventSQL, eventID, typ, nullID(validOrEmpty(orderID)))
	if err != nil {
		return false, fmt.Errorf("record stripe event %s: %w", eventID, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record stripe event %s: %w", eventID, err)
	}
	return n == 1, nil
}

const orderIDByIntentSQL = `SELECT id FROM orders WHERE payment_intent_id = $1`

// OrderIDByIntent returns the id of the order that holds the PaymentIntent,
// or "" when none does.
func (t *Tx) OrderIDByIntent(ctx context.Context, intentID string) (string, error) {
	var id string
	err := t.tx.GetContext(ctx, &id, orderIDByIntentSQL, intentID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("order of intent %s: %w", intentID, translate(err))
	}
	return id, nil
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

const pendingRefundsSQL = `
SELECT coalesce(sum(amount_cents), 0)
FROM refunds
WHERE order_id = $1
	AND status = 'pending'`

// PendingRefundCents is what the order's refunds still waiting for Stripe
// add up to. Under the order's row lock it cannot grow meanwhile.
func (t *Tx) PendingRefundCents(ctx context.Context, orderID string) (int64, error) {
	var sum int64
	if err := t.tx.GetContext(ctx, &sum, pendingRefundsSQL, orderID); err != nil {
		return 0, fmt.Errorf("pending refunds of %s: %w", orderID, translate(err))
	}
	return sum, nil
}

const insertRefundSQL = `
INSERT INTO refunds (order_id, amount_cents, reason, status)
VALUES ($1, $2, $3, 'pending')
RETURNING id, order_id, amount_cents, reason, status, stripe_refund_id, created_at`

// InsertRefund reserves a refund of amountCents, pending until Stripe
// answers (SettleRefund). reason may be "".
func (t *Tx) InsertRefund(ctx context.Context, orderID string, amountCents int64, reason string) (Refund, error) {
	var why *string
	if reason != "" {
		why = &reason
	}
	var r Refund
	if err := t.tx.GetContext(ctx, &r, insertRefundSQL, orderID, amountCents, why); err != nil {
		return Refund{}, fmt.Errorf("insert refund: %w", translate(err))
	}
	return r, nil
}

const refundByIDSQL = `
SELECT id, order_id, amount_cents, reason, status, stripe_refund_id, created_at
FROM refunds
WHERE id = $1`

// Refund returns one refund (ENotFound when there is none).
func (s *Store) Refund(ctx context.Context, id string) (Refund, error) {
	if !validID(id) {
		return Refund{}, shopd.Errorf(shopd.ENotFound, "Not found.")
	}
	var r Refund
	if err := s.db.GetContext(ctx, &r, refundByIDSQL, id); err != nil {
		return Refund{}, fmt.Errorf("refund %s: %w", id, translate(err))
	}
	return r, nil
}

const settleRefundSQL = `
UPDATE refunds
SET status = $2,
	stripe_refund_id = $3,
	updated_at = now()
WHERE id = $1
	AND status = 'pending'`

// SettleRefund records Stripe's answer to a pending refund: succeeded with
// Stripe's refund id, or failed. It reports false when the refund was
// settled before (a retry that lost the race), and then changes nothing.
func (t *Tx) SettleRefund(ctx context.Context, refundID string, succeeded bool, stripeRefundID string) (bool, error) {
	status := "failed"
	var sid *string
	if succeeded {
		status, sid = "succeeded", &stripeRefundID
	}
	res, err := t.tx.ExecContext(ctx, settleRefundSQL, refundID, status, sid)
	if err != nil {
		return false, fmt.Errorf("settle refund %s: %w", refundID, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("settle refund %s: %w", refundID, err)
	}
	return n == 1, nil
}

const succeededRefundsSQL = `
SELECT coalesce(sum(amount_cents), 0)
FROM refunds
WHERE order_id = $1
	AND status = 'succeeded'`

// SucceededRefundCents is what the order's refunds that Stripe made add up
// to.
func (t *Tx) SucceededRefundCents(ctx context.Context, orderID string) (int64, error) {
	var sum int64
	if err := t.tx.GetContext(ctx, &sum, succeededRefundsSQL, orderID); err != nil {
		return 0, fmt.Errorf("refunded sum of %s: %w", orderID, translate(err))
	}
	return sum, nil
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
