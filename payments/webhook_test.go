package payments_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/payments"
)

const secret = "whsec_test_secret"

const succeeded = `{
  "id": "evt_1",
  "object": "event",
  "type": "payment_intent.succeeded",
  "api_version": "2023-10-16",
  "created": 1700000000,
  "livemode": false,
  "data": {"object": {
    "id": "pi_123", "object": "payment_intent", "amount": 2599, "amount_received": 2599,
    "currency": "usd", "status": "succeeded", "metadata": {"orderId": "order-1"}
  }}
}`

func TestParseWebhook(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		name    string
		payload string
		header  string
		secret  string
		wantErr string
	}{
		{name: "valid", payload: succeeded, header: payments.SignWebhook([]byte(succeeded), secret, now), secret: secret},
		{name: "tampered payload", payload: strings.Replace(succeeded, "2599", "1", 1),
			header: payments.SignWebhook([]byte(succeeded), secret, now), secret: secret, wantErr: "no valid signature"},
		{name: "wrong secret", payload: succeeded, header: payments.SignWebhook([]byte(succeeded), "whsec_other", now),
			secret: secret, wantErr: "no valid signature"},
		{name: "stale timestamp", payload: succeeded, header: payments.SignWebhook([]byte(succeeded), secret, now.Add(-301*time.Second)),
			secret: secret, wantErr: "tolerance"},
		{name: "just inside the tolerance", payload: succeeded, header: payments.SignWebhook([]byte(succeeded), secret, now.Add(-290*time.Second)),
			secret: secret},
		{name: "missing header", payload: succeeded, header: "", secret: secret, wantErr: "no Stripe-Signature"},
		{name: "garbled header", payload: succeeded, header: "t=abc,v1=00", secret: secret, wantErr: "invalid Stripe-Signature"},
		{name: "no secret configured", payload: succeeded, header: payments.SignWebhook([]byte(succeeded), "", now), secret: "",
			wantErr: "no signing secret"},
		{name: "not JSON", payload: "nope", header: payments.SignWebhook([]byte("nope"), secret, now), secret: secret, wantErr: "json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := payments.ParseWebhook([]byte(tt.payload), tt.header, tt.secret)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := payments.PaymentIntentEvent{ID: "pi_123", OrderID: "order-1", Currency: "usd", Status: "succeeded", AmountCents: 2599}
			if ev.ID != "evt_1" || ev.Type != "payment_intent.succeeded" || ev.PaymentIntent == nil || *ev.PaymentIntent != want || ev.Charge != nil {
				t.Errorf("event = %+v / %+v", ev, ev.PaymentIntent)
			}
		})
	}
}

func TestParseWebhookOtherAPIVersion(t *testing.T) {
	t.Parallel()
	payload := strings.Replace(succeeded, "2023-10-16", "2020-08-27", 1)
	ev, err := payments.ParseWebhook([]byte(payload), payments.SignWebhook([]byte(payload), secret, time.Now()), secret)
	if err != nil {
		t.Fatalf("an event of another API version was refused: %v", err)
	}
	if ev.PaymentIntent == nil || ev.PaymentIntent.ID != "pi_123" {
		t.Errorf("event = %+v", ev)
	}
}

func TestParseWebhookChargeRefunded(t *testing.T) {
	t.Parallel()
	payload := `{"id":"evt_2","object":"event","type":"charge.refunded","api_version":"2023-10-16","created":1700000000,
	  "data":{"object":{"id":"ch_1","object":"charge","amount":5000,"amount_refunded":1500,"currency":"usd",
	  "payment_intent":"pi_9","refunded":false,"metadata":{"orderId":"o9"}}}}`
	ev, err := payments.ParseWebhook([]byte(payload), payments.SignWebhook([]byte(payload), secret, time.Now()), secret)
	if err != nil {
		t.Fatal(err)
	}
	want := payments.ChargeEvent{ID: "ch_1", PaymentIntentID: "pi_9", OrderID: "o9", Currency: "usd", AmountCents: 5000, AmountRefundedCents: 1500}
	if ev.Type != "charge.refunded" || ev.Charge == nil || *ev.Charge != want || ev.PaymentIntent != nil {
		t.Errorf("event = %+v / %+v", ev, ev.Charge)
	}
}

func TestSignWebhookFormat(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 0)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("1700000000.{}"))
	want := "t=1700000000,v1=" + hex.EncodeToString(mac.Sum(nil))
	if got := payments.SignWebhook([]byte("{}"), secret, at); got != want {
		t.Errorf("header = %q, want %q", got, want)
	}
}

// TestParseWebhookRefusesNUL: a verified event with a NUL anywhere is
// refused naming the field; an unverified one says nothing about fields.
func TestParseWebhookRefusesNUL(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, tc := range []struct {
		name, payload, field string
	}{
		{"event id", strings.Replace(succeeded, `"evt_1"`, `"evt_\u00001"`, 1), "id"},
		{"order id", strings.Replace(succeeded, `"order-1"`, `"order-1\u0000"`, 1), "data.object.metadata.orderId"},
		{"intent id", strings.Replace(succeeded, `"pi_123"`, `"pi\u0000_123"`, 1), "data.object.id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := payments.ParseWebhook([]byte(tc.payload), payments.SignWebhook([]byte(tc.payload), secret, now), secret)
			var de *shopd.Error
			if !errors.As(err, &de) || de.Code != shopd.EInvalid || de.Field != tc.field {
				t.Fatalf("err = %v, want EInvalid naming %s", err, tc.field)
			}
			// Signed with another secret: a signature failure, no field.
			_, err = payments.ParseWebhook([]byte(tc.payload), payments.SignWebhook([]byte(tc.payload), "whsec_other", now), secret)
			if err == nil || errors.As(err, &de) {
				t.Errorf("unverified: err = %v, want a plain signature error", err)
			}
		})
	}
}
