package payments

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/jsoncheck"
)

// webhookTolerance is how old a signed event may be; older ones are
// rejected as possible replays. It is Stripe's own default.
const webhookTolerance = 300 * time.Second

// Event is a verified Stripe event reduced to what the shop acts on.
type Event struct {
	ID   string
	Type string
	// PaymentIntent is set for payment_intent.* events.
	PaymentIntent *PaymentIntentEvent
	// Charge is set for charge.* events, charge.refunded among them.
	Charge *ChargeEvent
}

// PaymentIntentEvent is the PaymentIntent an event is about.
type PaymentIntentEvent struct {
	ID string
	// OrderID is the intent's metadata.orderId; "" for intents the shop did
	// not create.
	OrderID     string
	Currency    string
	Status      string
	AmountCents int64
}

// ChargeEvent is the charge an event is about.
type ChargeEvent struct {
	ID              string
	PaymentIntentID string
	// OrderID is the charge's metadata.orderId, when present (Stripe copies
	// the intent's metadata onto the charges it makes).
	OrderID             string
	Currency            string
	AmountCents         int64
	AmountRefundedCents int64
}

// ParseWebhook verifies the Stripe-Signature header over the raw payload
// with secret, rejects signatures older than 300 s, and decodes the event.
// Events of any API version are accepted: the fields read here are the same
// across versions, and a webhook endpoint left on an older version must not
// make every event bounce. Any failure is an error; callers answer 400.
// A verified event with a NUL character in any string (PostgreSQL's text
// refuses it) is a *shopd.Error, EInvalid, naming the first such field.
func ParseWebhook(payload []byte, sigHeader, secret string) (Event, error) {
	if secret == "" {
		// An empty secret would verify signatures anyone can compute.
		return Event{}, errors.New("parse webhook: no signing secret configured")
	}
	se, err := webhook.ConstructEventWithOptions(payload, sigHeader, secret, webhook.ConstructEventOptions{
		Tolerance:                webhookTolerance,
		IgnoreAPIVersionMismatch: true,
	})
	if err != nil {
		return Event{}, fmt.Errorf("parse webhook: %w", err)
	}
	// Checked once the signature holds: only Stripe learns which field.
	if fields := jsoncheck.NULFields(payload); len(fields) > 0 {
		return Event{}, &shopd.Error{Code: shopd.EInvalid, Field: fields[0], Message: jsoncheck.NULMessage}
	}
	if se.ID == "" || se.Type == "" || se.Data == nil || len(se.Data.Raw) == 0 {
		return Event{}, errors.New("parse webhook: event without id, type or data.object")
	}
	ev := Event{ID: se.ID, Type: string(se.Type)}
	object, _ := se.Data.Object["object"].(string)
	switch object {
	case "payment_intent":
		var pi stripe.PaymentIntent
		if err := json.Unmarshal(se.Data.Raw, &pi); err != nil {
			return Event{}, fmt.Errorf("parse webhook %s: payment intent: %w", se.ID, err)
		}
		if pi.ID == "" {
			return Event{}, fmt.Errorf("parse webhook %s: payment intent without id", se.ID)
		}
		ev.PaymentIntent = &PaymentIntentEvent{
			ID:          pi.ID,
			OrderID:     pi.Metadata["orderId"],
			Currency:    string(pi.Currency),
			Status:      string(pi.Status),
			AmountCents: pi.Amount,
		}
	case "charge":
		var ch stripe.Charge
		if err := json.Unmarshal(se.Data.Raw, &ch); err != nil {
			return Event{}, fmt.Errorf("parse webhook %s: charge: %w", se.ID, err)
		}
		if ch.ID == "" {
			return Event{}, fmt.Errorf("parse webhook %s: charge without id", se.ID)
		}
		ev.Charge = &ChargeEvent{
			ID:                  ch.ID,
			OrderID:             ch.Metadata["orderId"],
			Currency:            string(ch.Currency),
			AmountCents:         ch.Amount,
			AmountRefundedCents: ch.AmountRefunded,
		}
		if ch.PaymentIntent != nil {
			ev.Charge.PaymentIntentID = ch.PaymentIntent.ID
		}
	}
	return ev, nil
}

// SignWebhook returns a Stripe-Signature header value for payload as Stripe
// computes it: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<payload>">. It
// is for `shopdev pay` and tests.
func SignWebhook(payload []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload: payload, Secret: secret, Timestamp: at,
	}).Header
}
