package orders

import (
	"context"

	"github.com/google/uuid"

	"github.com/shopd/shopd/store"
)

// Hooks for the external tests into what the reconciler and webhooks run.

// ExpireOrder is the reconciler's expiry of one order, without asking Stripe.
var ExpireOrder = (*Service).expireOrder

// ApplySuccess applies a new payment_intent.succeeded for the whole of o
// and returns what it did, without the background work HandleEvent adds.
func (s *Service) ApplySuccess(ctx context.Context, o store.Order) (Outcome, error) {
	outcome, _, _, err := s.applyPaymentEvent(ctx, paymentEvent{
		ID: "evt_" + uuid.NewString(), Type: StripePaymentSucceeded, OrderID: o.ID,
		Payment: Payment{IntentID: *o.PaymentIntentID, AmountCents: o.TotalCents, Currency: o.Currency},
	})
	return outcome, err
}
