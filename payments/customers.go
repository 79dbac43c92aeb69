package payments

import (
	"context"
	"errors"
	"fmt"

	"github.com/stripe/stripe-go/v76"
)

// CreateCustomer creates the Stripe customer of a user and returns its id
// (cus_...), with metadata userId. Its idempotency key is "customer-<userID>",
// so concurrent or repeated calls make one customer; Stripe forgets keys
// after 24 h, so the caller stores the id and does not call again.
//
// Errors: shopd.EUnavailable (transient: retry), shopd.EPaymentRefused
// (Stripe refused the request for good), context errors, or an internal
// error (also when the same user is created again with another email or
// name within 24 h).
func (c *Client) CreateCustomer(ctx context.Context, userID, email, name string) (string, error) {
	if userID == "" {
		return "", errors.New("create customer: no user id")
	}
	params := &stripe.CustomerParams{}
	if email != "" {
		params.Email = stripe.String(email)
	}
	if name != "" {
		params.Name = stripe.String(name)
	}
	params.AddMetadata("userId", userID)
	params.Context = ctx
	params.SetIdempotencyKey("customer-" + userID)

	cus, err := c.api.Customers.New(params)
	if err != nil {
		return "", providerError(ctx, fmt.Sprintf("create customer for user %s", userID), err)
	}
	return cus.ID, nil
}
