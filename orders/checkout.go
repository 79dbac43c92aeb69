package orders

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/store"
)

// CheckoutRequest is one POST /v1/checkout.
type CheckoutRequest struct {
	UserID          string
	Key             string // the client's Idempotency-Key
	RequestHash     string // of the body, to refuse a reused key with another body
	ShippingAddress []byte // JSON
	BillingAddress  []byte // JSON
}

// Placed is a checkout's answer: the order as it was when its payment was
// ready to be made. Every retry with the same key gets the same order
// again, with Replay set.
type Placed struct {
	Order  store.Order
	Replay bool
}

// inFlight answers a retry that arrives while the first attempt runs.
var inFlight = &shopd.Error{Code: shopd.EInFlight, RetryAfter: time.Second,
	Message: "A checkout with this Idempotency-Key is in progress; retry shortly."}

// Checkout places the caller's cart as an order and creates its payment,
// exactly once per (user, Idempotency-Key), however often it is retried or
// wherever a previous attempt died. Phases (each committed before the next):
// claim the key and its lease; order transaction (stock, lines, number,
// cart emptied); Stripe customer and PaymentIntent (derived idempotency
// keys); record the outcome on the key. A retry takes over from the last
// committed phase. The lease, not a database session, marks the checkout
// in flight: no connection is held while Stripe answers, and a dead
// instance's lease runs out after LeaseTTL.
//
// Errors: EKeyReused (the key came with another body), EInFlight (another
// request is on the key), EInvalid (empty cart), EInsufficientStock (a
// line, named in its Shortage), EPaymentRefused (the provider refuses the
// payment for good), ERateLimited, EUnavailable (retry with the same key);
// a refusal recorded on the key is returned again on every retry.
func (s *Service) Checkout(ctx context.Context, req CheckoutRequest) (Placed, error) {
	if s.Payments == nil {
		return Placed{}, errPaymentsOff
	}
	k, lease, leased, err := s.Store.ClaimCheckout(ctx, req.UserID, req.Key, req.RequestHash, s.leaseTTL())
	if err != nil {
		return Placed{}, err
	}
	if k.RequestHash != req.RequestHash {
		return Placed{}, shopd.Errorf(shopd.EKeyReused, "This Idempotency-Key was used with a different request body.")
	}
	if k.RecoveryPoint == store.PointFinished {
		return replay(k)
	}
	if !leased {
		return Placed{}, inFlight
	}
	return s.underLease(ctx, lease, func(ctx context.Context) (Placed, error) {
		var o store.Order
		var u *store.User // loaded once, by whichever phase needs it first
		var err error
		if k.RecoveryPoint == store.PointStarted {
			o, u, err = s.placeOrder(ctx, k, req)
			if err != nil {
				return Placed{}, err
			}
			if err := s.afterPhase(store.PointOrderCreated); err != nil {
				return Placed{}, err
			}
		} else if o, err = s.Store.Order(ctx, *k.OrderID); err != nil {
			return Placed{}, err
		}
		return s.finishCheckout(ctx, lease, o, u)
	})
}

// DefaultLeaseTTL is how long a checkout's lease lasts unless renewed: the
// longest a retry waits for the checkout of an instance that died. API.md
// allows 30 s.
const DefaultLeaseTTL = 10 * time.Second

func (s *Service) leaseTTL() time.Duration {
	if s.LeaseTTL > 0 {
		return s.LeaseTTL
	}
	return DefaultLeaseTTL
}

// underLease runs fn while renewing the lease every third of its TTL, so
// a Stripe call that outlasts it keeps the key. Should the lease be lost
// anyway (renewals failed until it ran out and another attempt took the
// key), fn's context is cancelled. A checkout that ends in an error frees
// the key for the next retry at once; one that finished or was refused
// freed it in its last write.
func (s *Service) underLease(ctx context.Context, l store.Lease, fn func(context.Context) (Placed, error)) (Placed, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(l.TTL / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			err := s.Store.RenewLease(ctx, l)
			if errors.Is(err, store.ErrLeaseLost) {
				cancel(err)
				return
			}
			if err != nil && ctx.Err() == nil {
				s.Log.WarnContext(ctx, "renew checkout lease", "key_id", l.KeyID, "err", err)
			}
		}
	}()
	p, err := fn(ctx)
	close(stop)
	<-renewed
	if err == nil {
		return p, nil
	}
	if cause := context.Cause(ctx); errors.Is(cause, store.ErrLeaseLost) {
		return Placed{}, cause
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer rcancel()
	if rerr := s.Store.ReleaseLease(rctx, l); rerr != nil {
		// The lease runs out by itself.
		s.Log.WarnContext(ctx, "release checkout lease", "key_id", l.KeyID, "err", rerr)
	}
	return Placed{}, err
}

// replay answers a finished key: its order as first answered, or its
// refusal.
func replay(k store.IdempotencyKey) (Placed, error) {
	switch {
	case k.Outcome == nil:
	case *k.Outcome == store.OutcomeCreated:
		o, err := k.Order()
		if err != nil {
			return Placed{}, err
		}
		return Placed{Order: o, Replay: true}, nil
	case *k.Outcome == store.OutcomeRefused && k.RefusalCode != nil && k.RefusalMessage != nil:
		return Placed{}, &shopd.Error{Code: *k.RefusalCode, Message: *k.RefusalMessage}
	}
	return Placed{}, fmt.Errorf("replay idempotency key %d: finished without an outcome", k.ID)
}

// stripeDeadline bounds each Stripe call of a checkout, so a slow Stripe
// cannot keep a client waiting for long: the caller gets a 503 and its
// retry resumes from the last committed phase.
const stripeDeadline = 20 * time.Second

// stripeFailure reports a Stripe call that ran out of its own deadline
// while the request itself is still alive as unavailable (503), like any
// other Stripe outage.
func stripeFailure(ctx context.Context, what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("%s: %w", what, &shopd.Error{Code: shopd.EUnavailable,
			Message: "The payment provider did not answer in time; retry with the same Idempotency-Key."})
	}
	return fmt.Errorf("%s: %w", what, err)
}

// stripeMaxChargeCents is the largest amount Stripe charges in one payment
// (99,999,999 minor units: $999,999.99 for usd).
const stripeMaxChargeCents = 99_999_999

// placeOrder runs the order transaction. A refusal that changed nothing
// (empty cart, short stock, a total no payment can take, quota) frees the
// key for another try.
func (s *Service) placeOrder(ctx context.Context, k store.IdempotencyKey, req CheckoutRequest) (store.Order, *store.User, error) {
	st := s.Store
	forget := func(err error) (store.Order, *store.User, error) {
		if ferr := st.ForgetIdempotencyKey(ctx, k.ID); ferr != nil {
			s.Log.ErrorContext(ctx, "forget idempotency key", "err", ferr)
		}
		return store.Order{}, nil, err
	}
	if s.Limiter != nil {
		r, err := s.Limiter.Allow(ctx, "checkout:"+req.UserID, s.CheckoutLimit)
		if err != nil {
			return forget(err)
		}
		if !r.Allowed {
			return forget(&shopd.Error{Code: shopd.ERateLimited, Message: "Checkout quota exceeded; try again later.", RetryAfter: r.RetryAfter})
		}
	}
	var o store.Order
	orderID, due := uuid.NewString(), s.now().Add(s.PaymentWindow)
	err := st.WithTx(ctx, func(tx *store.Tx) error {
		// The jobs go first, before any product row is locked: the hot
		// stock rows stay locked for the order's own statements only.
		if err := s.enqueueCheckoutJobs(ctx, tx, k.ID, orderID, due); err != nil {
			return err
		}
		var err error
		o, err = tx.PlaceOrder(ctx, store.PlaceOrder{
			OrderID: orderID, KeyID: k.ID, UserID: req.UserID,
			ShippingAddress: req.ShippingAddress, BillingAddress: req.BillingAddress,
			Pricing: s.Pricing, PaymentDueAt: due,
		})
		if err != nil {
			return err
		}
		// Before commit: a total no payment can take must not hold stock.
		return s.chargeable(o)
	})
	if err != nil {
		switch shopd.ErrorCode(err) {
		case shopd.EInvalid, shopd.EConflict, shopd.EInsufficientStock, shopd.EPaymentRefused:
			return forget(err)
		}
		return store.Order{}, nil, err
	}
	// Numbered as it committed; its payment needs the customer.
	number, u, err := st.PlacedOrder(ctx, o.ID)
	if err != nil {
		return store.Order{}, nil, err
	}
	o.OrderNumber = number
	return o, &u, nil
}

// chargeable refuses (EPaymentRefused) an order whose total is more than
// the payment provider takes in one payment: asking would only be refused.
func (s *Service) chargeable(o store.Order) error {
	most := s.MaxChargeCents
	if most <= 0 {
		most = stripeMaxChargeCents
	}
	if o.TotalCents <= most {
		return nil
	}
	return shopd.Errorf(shopd.EPaymentRefused,
		"The order total of %s is more than the payment provider takes in one payment (%s); split the cart into smaller orders.",
		minorUnits(o.TotalCents, o.Currency), minorUnits(most, o.Currency))
}

// minorUnits shows an amount of a two-decimal currency, e.g. "1234.50 USD".
func minorUnits(cents int64, currency string) string {
	return fmt.Sprintf("%d.%02d %s", cents/100, cents%100, strings.ToUpper(currency))
}

// finishCheckout creates (or, on a retry, gets back) the order's one
// PaymentIntent and records the outcome on the key. A transient Stripe
// failure leaves the key at order_created: the next retry, or the
// resume_checkout job, continues from here. A permanent refusal ends the checkout
// (refusePayment).
func (s *Service) finishCheckout(ctx context.Context, l store.Lease, o store.Order, u *store.User) (Placed, error) {
	st := s.Store
	if o.PaymentIntentID == nil && o.Status == shopd.StatusCancelled {
		return s.refuseCancelled(ctx, l.KeyID, o, "")
	}
	if o.PaymentIntentID == nil {
		intent, err := s.createIntent(ctx, o, u)
		if shopd.ErrorCode(err) == shopd.EPaymentRefused {
			return s.refusePayment(ctx, l.KeyID, o, err)
		}
		if err != nil {
			return Placed{}, err
		}
		if err := s.afterPhase("intent_created"); err != nil {
			return Placed{}, err
		}
		// The intent goes on the order and the key finishes in one round
		// trip. On an error no order comes back: keep o for the refusal.
		finished, err := st.FinishCheckout(ctx, l, o, intent.ID, intent.ClientSecret)
		switch {
		case errors.Is(err, store.ErrOrderCancelled):
			return s.refuseCancelled(ctx, l.KeyID, o, intent.ID)
		case errors.Is(err, store.ErrLeaseLost):
			return s.takenOver(ctx, l, err)
		case err != nil:
			return Placed{}, err
		}
		return Placed{Order: finished}, nil
	}
	if err := st.FinishKeyCreated(ctx, l, o); errors.Is(err, store.ErrLeaseLost) {
		return s.takenOver(ctx, l, err)
	} else if err != nil {
		return Placed{}, err
	}
	return Placed{Order: o}, nil
}

// takenOver answers a checkout whose lease another attempt took over
// before it could finish the key (lost is ErrLeaseLost): with what that
// attempt recorded, once it has.
func (s *Service) takenOver(ctx context.Context, l store.Lease, lost error) (Placed, error) {
	k, err := s.Store.IdempotencyKeyByID(ctx, l.KeyID)
	if err != nil || k.RecoveryPoint != store.PointFinished {
		return Placed{}, lost
	}
	return replay(k)
}

// createIntent creates the order's PaymentIntent, and its customer's
// Stripe customer when it has none yet (u may be nil: it is loaded then).
func (s *Service) createIntent(ctx context.Context, o store.Order, u *store.User) (payments.Intent, error) {
	st := s.Store
	if u == nil {
		found, err := st.UserByID(ctx, o.CustomerID)
		if err != nil {
			return payments.Intent{}, err
		}
		u = &found
	}
	var customerID string
	if u.StripeCustomerID != nil {
		customerID = *u.StripeCustomerID
	} else {
		var err error
		sctx, cancel := context.WithTimeout(ctx, stripeDeadline)
		customerID, err = s.Payments.CreateCustomer(sctx, u.ID, u.Email, u.FirstName+" "+u.LastName)
		cancel()
		if err != nil {
			return payments.Intent{}, stripeFailure(ctx, "stripe customer", err)
		}
		if err := st.SetStripeCustomer(ctx, u.ID, customerID); err != nil {
			return payments.Intent{}, err
		}
	}
	sctx, cancel := context.WithTimeout(ctx, stripeDeadline)
	defer cancel()
	intent, err := s.Payments.CreatePaymentIntent(sctx, payments.IntentParams{
		OrderID: o.ID, AmountCents: o.TotalCents, Currency: o.Currency, CustomerID: customerID,
		Description: "Order " + o.Number(),
	})
	if err != nil {
		return payments.Intent{}, stripeFailure(ctx, "payment intent", err)
	}
	return intent, nil
}

// refusePayment ends a checkout whose payment the provider refused for
// good (cause is EPaymentRefused): retrying cannot help, so nothing may
// keep holding stock while a job tries for the whole payment
// window. In one transaction the order is cancelled with its events and
// its stock released, the customer's cart is given back as it was, and
// the key records the refusal, which every retry gets again.
func (s *Service) refusePayment(ctx context.Context, keyID int64, o store.Order, cause error) (Placed, error) {
	why := strings.TrimSuffix(shopd.ErrorMessage(cause), ".")
	refusal := &shopd.Error{Code: shopd.EPaymentRefused}
	err := s.Store.WithTx(ctx, func(tx *store.Tx) error {
		// The cart before the order's stock, in the order checkout locks them.
		if err := tx.LockCart(ctx, o.CustomerID); err != nil {
			return err
		}
		var t Transition
		_, err := tx.UpdateOrder(ctx, o.ID, func(tx *store.Tx, cur *store.Order) error {
			t = PaymentRefused(cur.State(), why)
			return s.apply(ctx, tx, cur, t, store.Actor{Kind: store.ActorSystem})
		})
		if err != nil {
			return err
		}
		refusal.Message = fmt.Sprintf("The payment provider refused the payment of order %s (%s); nothing was charged and the order is cancelled.", o.Number(), why)
		if t.Applies() {
			if err := tx.RestoreCart(ctx, keyID); err != nil {
				return err
			}
			refusal.Message = fmt.Sprintf("The payment provider refused the payment of order %s (%s); nothing was charged, the order is cancelled and the cart is as it was.", o.Number(), why)
		}
		return tx.RefuseKey(ctx, keyID, refusal.Code, refusal.Message)
	})
	if err != nil {
		return Placed{}, fmt.Errorf("refuse checkout of order %s: %w", o.ID, err)
	}
	s.Log.WarnContext(ctx, "payment refused for good: order cancelled, stock released, cart restored", "order_id", o.ID, "err", cause)
	return Placed{}, refusal
}

// refuseCancelled ends a checkout whose order was cancelled (expired, or by
// its owner) before its PaymentIntent was handed out: the stock is back on
// sale, so the order must never become payable. An intent already created
// at Stripe is cancelled there; the key records the refusal, which retries
// get again.
func (s *Service) refuseCancelled(ctx context.Context, keyID int64, o store.Order, intentID string) (Placed, error) {
	if intentID != "" {
		s.cancelIntent(ctx, o.ID, intentID)
	}
	refusal := shopd.Errorf(shopd.EConflict, "Order %s was cancelled before payment could start; check out again.", o.Number())
	err := s.Store.WithTx(ctx, func(tx *store.Tx) error {
		return tx.RefuseKey(ctx, keyID, refusal.Code, refusal.Message)
	})
	if err != nil {
		return Placed{}, err
	}
	return Placed{}, refusal
}
