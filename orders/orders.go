// Package orders runs the money path across the database and Stripe:
// checkout in recoverable phases, cancellations and refunds, Stripe's
// payment events, and the reconciler that finishes what a crash left.
package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
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
	// Render builds the checkout response body that replays return verbatim.
	Render func(store.Order) ([]byte, error)
	Log    *slog.Logger
	Now    func() time.Time
	// CheckoutSlots bounds the checkouts in flight on this instance (0:
	// 16). Each holds one database connection, also while Stripe answers,
	// so the pool must keep connections for everything else.
	CheckoutSlots int
	slotsOnce     sync.Once
	slots         chan struct{}
	// AfterPhase, when set, runs after each committed checkout phase
	// ("order_created", "intent_created"); an error aborts the checkout
	// there, as a crash would. Tests use it to inject failures.
	AfterPhase func(phase string) error
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

// CheckoutRequest is one POST /v1/checkout.
type CheckoutRequest struct {
	UserID          string
	Key             string // the client's Idempotency-Key
	RequestHash     string // of the body, to refuse a reused key with another body
	ShippingAddress []byte // JSON
	BillingAddress  []byte // JSON
}

// CheckoutResponse is the response to send: 201 the first time, 200 with
// the identical body on every replay.
type CheckoutResponse struct {
	Status int
	Body   []byte
}

// inFlight answers a retry that arrives while the first attempt runs.
var inFlight = &shopd.Error{Code: shopd.EConflict, RetryAfter: time.Second,
	Message: "A checkout with this Idempotency-Key is in progress; retry shortly."}

// Checkout places the caller's cart as an order and creates its payment,
// exactly once per (user, Idempotency-Key), however often it is retried or
// wherever a previous attempt died. Phases (each committed before the next):
// claim the key; order transaction (stock, lines, number, cart emptied);
// Stripe customer and PaymentIntent (derived idempotency keys); store the
// response. A retry takes over from the last committed phase.
func (s *Service) Checkout(ctx context.Context, req CheckoutRequest) (CheckoutResponse, error) {
	if s.Payments == nil {
		return CheckoutResponse{}, errPaymentsOff
	}
	release, err := s.takeSlot(ctx)
	if err != nil {
		return CheckoutResponse{}, err
	}
	defer release()
	// One connection for the whole checkout: it carries the in-flight lock.
	st, err := s.Store.Pin(ctx)
	if err != nil {
		return CheckoutResponse{}, err
	}
	defer st.Release()
	k, err := st.ClaimIdempotencyKey(ctx, req.UserID, req.Key, req.RequestHash)
	if err != nil {
		return CheckoutResponse{}, err
	}
	if k.RequestHash != req.RequestHash {
		return CheckoutResponse{}, shopd.Errorf(shopd.EKeyReused, "This Idempotency-Key was used with a different request body.")
	}
	if k.RecoveryPoint == store.PointFinished {
		return replay(k)
	}
	lock, ok, err := st.TryLockCheckout(ctx, req.UserID, req.Key)
	if err != nil {
		return CheckoutResponse{}, err
	}
	if !ok {
		return CheckoutResponse{}, inFlight
	}
	defer lock.Unlock()
	// Whoever held the lock before may have finished, or given up.
	k, err = st.IdempotencyKeyByID(ctx, k.ID)
	if shopd.ErrorCode(err) == shopd.ENotFound {
		return CheckoutResponse{}, shopd.Errorf(shopd.EConflict, "The checkout with this Idempotency-Key failed; retry.")
	} else if err != nil {
		return CheckoutResponse{}, err
	}
	if k.RecoveryPoint == store.PointFinished {
		return replay(k)
	}

	var o store.Order
	var u *store.User // loaded once, by whichever phase needs it first
	if k.RecoveryPoint == store.PointStarted {
		o, u, err = s.placeOrder(ctx, st, k, req)
		if err != nil {
			return CheckoutResponse{}, err
		}
		if err := s.afterPhase(store.PointOrderCreated); err != nil {
			return CheckoutResponse{}, err
		}
	} else {
		if o, err = st.Order(ctx, *k.OrderID); err != nil {
			return CheckoutResponse{}, err
		}
	}
	return s.finishCheckout(ctx, st, k, o, u)
}

// slotWait is how long a checkout waits for a free slot before a 503.
const slotWait = 10 * time.Second

var errBusy = &shopd.Error{Code: shopd.EUnavailable, RetryAfter: 2 * time.Second,
	Message: "Too many checkouts in progress; retry with the same Idempotency-Key."}

// takeSlot waits for one of the instance's checkout slots.
func (s *Service) takeSlot(ctx context.Context) (func(), error) {
	s.slotsOnce.Do(func() {
		n := s.CheckoutSlots
		if n <= 0 {
			n = 16
		}
		s.slots = make(chan struct{}, n)
	})
	t := time.NewTimer(slotWait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	case <-t.C:
		return nil, errBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stripeDeadline bounds each Stripe call of a checkout, so a slow Stripe
// cannot hold a slot and its connection for long: the caller gets a 503
// and its retry resumes from the last committed phase.
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

// replay answers a finished key: its stored order, or its stored refusal.
func replay(k store.IdempotencyKey) (CheckoutResponse, error) {
	if k.ResponseStatus != nil && *k.ResponseStatus == http.StatusConflict {
		var p struct{ Detail string }
		_ = json.Unmarshal(k.ResponseBody, &p)
		return CheckoutResponse{}, shopd.Errorf(shopd.EConflict, "%s", p.Detail)
	}
	return CheckoutResponse{Status: http.StatusOK, Body: []byte(k.ResponseBody)}, nil
}

// placeOrder runs the order transaction. A refusal that changed nothing
// (empty cart, short stock, quota) frees the key for another try.
func (s *Service) placeOrder(ctx context.Context, st *store.Store, k store.IdempotencyKey, req CheckoutRequest) (store.Order, *store.User, error) {
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
	u, err := st.UserByID(ctx, req.UserID)
	if err != nil {
		return forget(err)
	}
	o, err := st.PlaceOrder(ctx, store.PlaceOrder{
		KeyID: k.ID, UserID: req.UserID, Email: u.Email,
		ShippingAddress: req.ShippingAddress, BillingAddress: req.BillingAddress,
		Pricing: s.Pricing, PaymentDueAt: s.now().Add(s.PaymentWindow),
	})
	if err != nil {
		if c := shopd.ErrorCode(err); c == shopd.EInvalid || c == shopd.EConflict {
			return forget(err)
		}
		return store.Order{}, nil, err
	}
	return o, &u, nil
}

// finishCheckout creates (or, on a retry, gets back) the order's one
// PaymentIntent and stores the response. A Stripe failure leaves the key at
// order_created: the next retry, or the reconciler, continues from here.
func (s *Service) finishCheckout(ctx context.Context, st *store.Store, k store.IdempotencyKey, o store.Order, u *store.User) (CheckoutResponse, error) {
	if o.PaymentIntentID == nil && o.Status == shopd.StatusCancelled {
		return s.refuseCancelled(ctx, st, k, o, "")
	}
	if o.PaymentIntentID == nil {
		if u == nil {
			found, err := st.UserByID(ctx, o.CustomerID)
			if err != nil {
				return CheckoutResponse{}, err
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
				return CheckoutResponse{}, stripeFailure(ctx, "stripe customer", err)
			}
			if err := st.SetStripeCustomer(ctx, u.ID, customerID); err != nil {
				return CheckoutResponse{}, err
			}
		}
		sctx, cancel := context.WithTimeout(ctx, stripeDeadline)
		intent, err := s.Payments.CreatePaymentIntent(sctx, payments.IntentParams{
			OrderID: o.ID, AmountCents: o.TotalCents, Currency: o.Currency, CustomerID: customerID,
			Description: "Order " + o.Number(),
		})
		cancel()
		if err != nil {
			return CheckoutResponse{}, stripeFailure(ctx, "payment intent", err)
		}
		if err := s.afterPhase("intent_created"); err != nil {
			return CheckoutResponse{}, err
		}
		// On an error AttachPaymentIntent returns no order: keep o for the refusal.
		attached, err := st.AttachPaymentIntent(ctx, o, intent.ID, intent.ClientSecret)
		if errors.Is(err, store.ErrOrderCancelled) {
			return s.refuseCancelled(ctx, st, k, o, intent.ID)
		}
		if err != nil {
			return CheckoutResponse{}, err
		}
		o = attached
	}
	body, err := s.Render(o)
	if err != nil {
		return CheckoutResponse{}, fmt.Errorf("render checkout: %w", err)
	}
	if err := st.FinishIdempotencyKey(ctx, k.ID, http.StatusCreated, body); err != nil {
		return CheckoutResponse{}, err
	}
	return CheckoutResponse{Status: http.StatusCreated, Body: body}, nil
}

// refuseCancelled ends a checkout whose order was cancelled (expired, or by
// its owner) before its PaymentIntent was handed out: the stock is back on
// sale, so the order must never become payable. An intent already created
// at Stripe is cancelled there; the key ends with a 409 that retries replay.
func (s *Service) refuseCancelled(ctx context.Context, st *store.Store, k store.IdempotencyKey, o store.Order, intentID string) (CheckoutResponse, error) {
	if intentID != "" {
		s.cancelIntent(ctx, o.ID, intentID)
	}
	msg := fmt.Sprintf("Order %s was cancelled before payment could start; check out again.", o.Number())
	body, _ := json.Marshal(map[string]string{"detail": msg})
	if err := st.FinishIdempotencyKey(ctx, k.ID, http.StatusConflict, body); err != nil {
		return CheckoutResponse{}, err
	}
	return CheckoutResponse{}, shopd.Errorf(shopd.EConflict, "%s", msg)
}

// cancelIntent cancels a PaymentIntent nobody should pay any more. It is
// best effort: should a payment still arrive, the success webhook finds the
// order cancelled and refunds it.
func (s *Service) cancelIntent(ctx context.Context, orderID, intentID string) {
	if _, err := s.Payments.CancelPaymentIntent(ctx, intentID); err != nil {
		s.Log.WarnContext(ctx, "cancel payment intent", "order_id", orderID, "intent", intentID, "err", err)
	}
}
