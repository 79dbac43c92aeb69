package payments

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stripe/stripe-go/v76"
)

// Intent is a Stripe PaymentIntent as the shop sees it.
type Intent struct {
	ID string
	// ClientSecret lets the browser confirm the payment with Stripe.js. It
	// goes to the order's owner and nowhere else: never log it.
	ClientSecret string
	// Status is Stripe's: requires_payment_method, processing, succeeded,
	// canceled, ...
	Status      string
	Currency    string
	AmountCents int64
}

// IntentParams describes the PaymentIntent of one order.
type IntentParams struct {
	OrderID     string
	AmountCents int64
	// Currency is ISO 4217, e.g. "usd"; it is sent lower-case.
	Currency string
	// CustomerID is the Stripe customer (cus_...), or "" for none.
	CustomerID  string
	Description string
}

// intentIdempotencyKey is the Stripe idempotency key of the order's one
// PaymentIntent. It is derived from the order id, never random, so that a
// retry after a crash gets the intent the first attempt created.
func intentIdempotencyKey(orderID string) string {
	return "order-" + orderID + "-payment-intent"
}

// CreatePaymentIntent creates the order's one PaymentIntent, with metadata
// orderId and automatic payment methods enabled. Calling it again for the
// same order with the same parameters returns the same intent for as long
// as Stripe keeps the idempotency key (at least 24 h); the caller stores
// the id for anything later.
//
// Errors: shopd.EUnavailable (transient: retry), shopd.EPaymentRefused
// (Stripe refused the request for good), context errors, or an internal
// error.
func (c *Client) CreatePaymentIntent(ctx context.Context, p IntentParams) (Intent, error) {
	op := fmt.Sprintf("create payment intent for order %s", p.OrderID)
	switch {
	case p.OrderID == "":
		return Intent{}, errors.New("create payment intent: no order id")
	case p.AmountCents <= 0:
		return Intent{}, fmt.Errorf("%s: amount %d is not positive", op, p.AmountCents)
	case p.Currency == "":
		return Intent{}, fmt.Errorf("%s: no currency", op)
	}
	params := &stripe.PaymentIntentParams{
		Amount:   stripe.Int64(p.AmountCents),
		Currency: stripe.String(strings.ToLower(p.Currency)),
		AutomaticPaymentMethods: &stripe.PaymentIntentAutomaticPaymentMethodsParams{
			Enabled: stripe.Bool(true),
		},
	}
	if p.CustomerID != "" {
		params.Customer = stripe.String(p.CustomerID)
	}
	if p.Description != "" {
		params.Description = stripe.String(p.Description)
	}
	params.AddMetadata("orderId", p.OrderID)
	params.Context = ctx
	params.SetIdempotencyKey(intentIdempotencyKey(p.OrderID))

	pi, err := c.api.PaymentIntents.New(params)
	if err != nil {
		return Intent{}, providerError(ctx, op, err)
	}
	return toIntent(pi), nil
}

// PaymentIntent fetches an intent, for reconciling an order whose webhook
// never came.
//
// Errors: as CreatePaymentIntent; an unknown id is shopd.EPaymentRefused.
func (c *Client) PaymentIntent(ctx context.Context, id string) (Intent, error) {
	params := &stripe.PaymentIntentParams{}
	params.Context = ctx
	pi, err := c.api.PaymentIntents.Get(id, params)
	if err != nil {
		return Intent{}, providerError(ctx, "get payment intent "+id, err)
	}
	return toIntent(pi), nil
}

// CancelPaymentIntent cancels an unpaid intent, so that a cancelled order
// can no longer be paid. Its idempotency key is derived from the intent id.
//
// Errors: as CreatePaymentIntent; an intent that already succeeded or was
// cancelled is shopd.EPaymentRefused.
func (c *Client) CancelPaymentIntent(ctx context.Context, id string) (Intent, error) {
	params := &stripe.PaymentIntentCancelParams{}
	params.Context = ctx
	params.SetIdempotencyKey("payment-intent-" + id + "-cancel")
	pi, err := c.api.PaymentIntents.Cancel(id, params)
	if err != nil {
		return Intent{}, providerError(ctx, "cancel payment intent "+id, err)
	}
	return toIntent(pi), nil
}

func toIntent(pi *stripe.PaymentIntent) Intent {
	return Intent{
		ID:           pi.ID,
		ClientSecret: pi.ClientSecret,
		Status:       string(pi.Status),
		Currency:     string(pi.Currency),
		AmountCents:  pi.Amount,
	}
}
