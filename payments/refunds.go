package payments

import (
	"context"
	"errors"
	"fmt"

	"github.com/shopd/shopd"
	"github.com/stripe/stripe-go/v76"
)

// RefundParams describes one refund of a PaymentIntent.
type RefundParams struct {
	PaymentIntentID string
	// AmountCents is the amount to refund; 0 refunds whatever is left.
	AmountCents int64
	// Reason is "", "duplicate", "fraudulent" or "requested_by_customer".
	Reason string
	// IdempotencyKey identifies this refund (the shop uses its refund row,
	// "refund-<id>"). It is required: a random one would let a retry after a crash
	// refund twice.
	IdempotencyKey string
	// OrderID goes into the refund's metadata (orderId) when set.
	OrderID string
}

// Refund is a Stripe refund.
type Refund struct {
	ID string
	// Status is Stripe's: pending, succeeded, failed, requires_action or
	// canceled.
	Status      string
	AmountCents int64
}

// refundReasons are the reasons Stripe accepts from us.
var refundReasons = map[string]bool{
	"":                      true,
	"duplicate":             true,
	"fraudulent":            true,
	"requested_by_customer": true,
}

// Refund refunds all or part of a PaymentIntent.
//
// Errors: shopd.EInvalid (field reason) for a reason Stripe does not know;
// shopd.EPaymentRefused when Stripe refuses (e.g. more than is left to refund);
// shopd.EUnavailable (retry with the same key), context errors, or an
// internal error.
func (c *Client) Refund(ctx context.Context, p RefundParams) (Refund, error) {
	op := fmt.Sprintf("refund payment intent %s", p.PaymentIntentID)
	switch {
	case p.PaymentIntentID == "":
		return Refund{}, errors.New("refund: no payment intent id")
	case p.IdempotencyKey == "":
		return Refund{}, fmt.Errorf("%s: no idempotency key", op)
	case p.AmountCents < 0:
		return Refund{}, fmt.Errorf("%s: negative amount %d", op, p.AmountCents)
	case !refundReasons[p.Reason]:
		return Refund{}, shopd.FieldError("reason", "must be duplicate, fraudulent or requested_by_customer")
	}
	params := &stripe.RefundParams{PaymentIntent: stripe.String(p.PaymentIntentID)}
	if p.AmountCents > 0 {
		params.Amount = stripe.Int64(p.AmountCents)
	}
	if p.Reason != "" {
		params.Reason = stripe.String(p.Reason)
	}
	if p.OrderID != "" {
		params.AddMetadata("orderId", p.OrderID)
	}
	params.Context = ctx
	params.SetIdempotencyKey(p.IdempotencyKey)

	r, err := c.api.Refunds.New(params)
	if err != nil {
		return Refund{}, providerError(ctx, op, err)
	}
	return Refund{ID: r.ID, Status: string(r.Status), AmountCents: r.Amount}, nil
}
