package payments

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"

	"github.com/shopd/shopd"
	"github.com/stripe/stripe-go/v76"
)

// unavailableMessage is what a client is told when Stripe cannot be reached
// or asks us to come back later.
const unavailableMessage = "The payment provider is unavailable; retry."

// providerError turns what stripe-go returned for op into the error a caller
// acts on:
//   - ctx's own cancellation or deadline, wrapped, so callers see errors.Is(err, context.Canceled);
//   - shopd.EUnavailable for network failures, timeouts, 5xx, 429, lock
//     timeouts and idempotency keys still in flight (409): transient,
//     retrying later is safe;
//   - shopd.EPaymentRefused for a card or invalid-request 4xx (a declined
//     card, amount_too_large, an unknown object): Stripe refused the
//     request for good and the same request will be refused again; with
//     Stripe's message when it is safe to show;
//   - a plain error (internal) for the rest: bad API keys, idempotency key
//     reuse with other parameters, undecodable answers.
//
// The text of every error names Stripe's type, code, status and request id
// for the logs, never the raw stripe.Error, whose JSON may carry a client
// secret.
func providerError(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", op, ctxErr)
	}
	var se *stripe.Error
	if errors.As(err, &se) {
		detail := describe(se)
		switch {
		case se.HTTPStatusCode >= 500,
			se.HTTPStatusCode == http.StatusTooManyRequests,
			se.HTTPStatusCode == http.StatusConflict,
			se.Code == stripe.ErrorCodeIdempotencyKeyInUse,
			se.Code == stripe.ErrorCodeLockTimeout,
			se.Code == stripe.ErrorCodeRateLimit:
			return fmt.Errorf("%s: %w (%s)", op, unavailable(), detail)
		case se.HTTPStatusCode == http.StatusUnauthorized, se.HTTPStatusCode == http.StatusForbidden:
			// Our key is wrong or lacks a permission: the client can do
			// nothing about it, so it stays internal.
			return fmt.Errorf("%s: %s", op, detail)
		case (se.Type == stripe.ErrorTypeCard || se.Type == stripe.ErrorTypeInvalidRequest) &&
			se.HTTPStatusCode >= 400 && se.HTTPStatusCode < 500:
			return fmt.Errorf("%s: %w (%s)", op, shopd.Errorf(shopd.EPaymentRefused, "%s", clientMessage(se)), detail)
		}
		return fmt.Errorf("%s: %s", op, detail)
	}
	var ge *gatewayError
	var ue *url.Error
	if errors.As(err, &ge) || errors.As(err, &ue) {
		return fmt.Errorf("%s: %w (%v)", op, unavailable(), err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func unavailable() *shopd.Error {
	return &shopd.Error{Code: shopd.EUnavailable, Message: unavailableMessage}
}

func describe(se *stripe.Error) string {
	s := fmt.Sprintf("stripe %s", se.Type)
	if se.Code != "" {
		s += " " + string(se.Code)
	}
	if se.DeclineCode != "" {
		s += " " + string(se.DeclineCode)
	}
	s += fmt.Sprintf(" (status %d", se.HTTPStatusCode)
	if se.RequestID != "" {
		s += ", request " + se.RequestID
	}
	return s + "): " + se.Msg
}

// secretLike matches what must never reach a client: API keys, webhook
// secrets and client secrets, which Stripe's developer-facing messages can
// quote.
var secretLike = regexp.MustCompile(`(?i)\b(sk|rk|pk)_(test|live)_|whsec_|_secret_`)

// clientMessage is Stripe's message when it is fit for the shop's client.
// Card error messages are written for customers ("Your card was declined.");
// invalid-request ones are for developers, which is tolerable as long as they
// quote no secret.
func clientMessage(se *stripe.Error) string {
	if se.Msg != "" && len(se.Msg) <= 300 && !secretLike.MatchString(se.Msg) {
		return se.Msg
	}
	if se.Type == stripe.ErrorTypeCard {
		return "The card was declined."
	}
	return "The payment provider rejected the request."
}

// gatewayError is a 5xx or 429 answer whose body is not Stripe's JSON, as a
// proxy in front of Stripe may send. stripe-go would report it as an untyped
// "Couldn't deserialize JSON" error that we could not tell from a bug.
type gatewayError struct{ status int }

func (e *gatewayError) Error() string {
	return fmt.Sprintf("answer %d without a Stripe error body", e.status)
}

// gatewayErrorTransport turns such answers into a transport error, which
// stripe-go retries like a network failure; that is safe because every POST
// we send carries an idempotency key.
type gatewayErrorTransport struct{ next http.RoundTripper }

func (t gatewayErrorTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
		return resp, nil
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" {
		return resp, nil
	}
	// Drain a little so the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return nil, &gatewayError{status: resp.StatusCode}
}

// withGatewayErrors returns a copy of c whose transport applies
// gatewayErrorTransport; the caller's client is left as it was.
func withGatewayErrors(c *http.Client) *http.Client {
	wrapped := *c
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	wrapped.Transport = gatewayErrorTransport{next: next}
	return &wrapped
}
