// Package orders runs the money path across the database and Stripe:
// checkout in recoverable phases, cancellations and refunds, Stripe's
// payment events, and the jobs that finish what a crash or silence left.
package orders

import (
	"context"
	"log/slog"
	"time"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/ratelimit"
	"github.com/shopd/shopd/store"
)

// Payments is the part of Stripe the money path uses.
type Payments interface {
	CreateCustomer(ctx context.Context, userID, email, name string) (string, error)
	CreatePaymentIntent(ctx context.Context, p payments.IntentParams) (payments.Intent, error)
	Refund(ctx context.Context, p payments.RefundParams) (payments.Refund, error)
	CancelPaymentIntent(ctx context.Context, id string) (payments.Intent, error)
	PaymentIntent(ctx context.Context, id string) (payments.Intent, error)
}

// Service is the money path.
type Service struct {
	Store *store.Store
	// Payments is nil when Stripe is not configured: checkout then answers
	// 503 instead of taking stock it cannot charge for.
	Payments      Payments
	Pricing       shopd.Pricing
	PaymentWindow time.Duration
	Limiter       ratelimit.Limiter
	// CheckoutLimit is checkouts per customer (new keys only; replays are free).
	CheckoutLimit ratelimit.Limit
	// MaxChargeCents is the most the payment provider takes in one payment,
	// in minor units; 0 means Stripe's, 99,999,999 (for usd and most other
	// currencies). Checkout refuses a larger total before taking stock.
	MaxChargeCents int64
	Log            *slog.Logger
	Now            func() time.Time
	// LeaseTTL is how long a checkout's lease on its key lasts unless
	// renewed (0: DefaultLeaseTTL): after an instance dies mid-checkout, a
	// retry takes the key over at most this much later.
	LeaseTTL time.Duration
	// AfterPhase, when set, runs after each committed checkout phase
	// ("order_created", "intent_created"); an error aborts the checkout
	// there, as a crash would. Tests use it to inject failures.
	AfterPhase func(phase string) error
	// Jobs enqueues background work (jobs.go) in the transaction of its
	// cause. Nil (tools, tests of the money path alone): nothing is
	// enqueued and Reconcile does that work when called.
	Jobs JobInserter
	// ResumeCheckoutAfter is when, after its order transaction, a
	// checkout's resume job runs (0: 30 s).
	ResumeCheckoutAfter time.Duration
	// RefundRetryAfter is when, after a refund is begun, its settle job
	// looks whether Stripe answered (0: 30 s, after the Stripe call's
	// deadline).
	RefundRetryAfter time.Duration
	// Notify writes the messages of each transition to the outbox in its
	// transaction; nil sends none (tools, tests of the money path alone).
	Notify Notifier
	// PaymentRecheckAfter is how long an expiry waits for a payment Stripe
	// is still processing before it looks again (0: 1 min).
	PaymentRecheckAfter time.Duration
	// FollowUps are the delays of the workflows after payment and shipping
	// (workflows.go).
	FollowUps FollowUps
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) afterPhase(phase string) error {
	if s.AfterPhase == nil {
		return nil
	}
	return s.AfterPhase(phase)
}

var errPaymentsOff = shopd.Errorf(shopd.EUnavailable, "Payments are not configured on this server.")

// cancelIntent cancels a PaymentIntent nobody should pay any more. It is
// best effort: should a payment still arrive, the success webhook finds the
// order cancelled and refunds it.
func (s *Service) cancelIntent(ctx context.Context, orderID, intentID string) {
	if _, err := s.Payments.CancelPaymentIntent(ctx, intentID); err != nil {
		s.Log.WarnContext(ctx, "cancel payment intent", "order_id", orderID, "intent", intentID, "err", err)
	}
}
