package payments_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/stripefake"
	"github.com/shopd/shopd/internal/stripemock"
	"github.com/shopd/shopd/payments"
)

// mock is one stripe-mock for the whole package, started by the first test
// that needs it: it is stateless, so tests cannot disturb each other.
var mock struct {
	once sync.Once
	srv  *stripemock.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if mock.srv != nil {
		mock.srv.Stop()
	}
	os.Exit(code)
}

func stripeMockClient(t *testing.T) *payments.Client {
	t.Helper()
	mock.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		mock.srv, mock.err = stripemock.Start(ctx, nil)
	})
	if mock.err != nil {
		t.Fatalf("stripe-mock: %v", mock.err)
	}
	return payments.New(payments.Config{SecretKey: "sk_test_123", APIBase: mock.srv.URL, MaxNetworkRetries: -1})
}

// setup returns a client talking to a fresh stripefake double, with stripe-go's
// own retries off so each test sees exactly the failures it injects.
func setup(t *testing.T) (*payments.Client, *stripefake.Server) {
	t.Helper()
	fake := stripefake.New(t)
	return payments.New(payments.Config{SecretKey: "sk_test_fake", APIBase: fake.URL, MaxNetworkRetries: -1}), fake
}

func TestStripeMockShapes(t *testing.T) {
	t.Parallel()
	c := stripeMockClient(t)
	ctx := context.Background()

	cus, err := c.CreateCustomer(ctx, "user-1", "ada@example.com", "Ada Lovelace")
	if err != nil {
		t.Fatalf("create customer: %v", err)
	}
	if !strings.HasPrefix(cus, "cus_") {
		t.Errorf("customer id = %q, want cus_...", cus)
	}

	in, err := c.CreatePaymentIntent(ctx, payments.IntentParams{
		OrderID: "order-1", AmountCents: 2599, Currency: "USD", CustomerID: cus, Description: "ORD-000001",
	})
	if err != nil {
		t.Fatalf("create payment intent: %v", err)
	}
	if !strings.HasPrefix(in.ID, "pi_") || in.ClientSecret == "" || in.Status == "" || in.Currency == "" {
		t.Errorf("intent = %+v, want an id, client secret, status and currency", in)
	}

	got, err := c.PaymentIntent(ctx, in.ID)
	if err != nil {
		t.Fatalf("get payment intent: %v", err)
	}
	if !strings.HasPrefix(got.ID, "pi_") {
		t.Errorf("got intent %+v", got)
	}
	if _, err := c.CancelPaymentIntent(ctx, in.ID); err != nil {
		t.Fatalf("cancel payment intent: %v", err)
	}

	ref, err := c.Refund(ctx, payments.RefundParams{
		PaymentIntentID: in.ID, AmountCents: 500, Reason: "requested_by_customer",
		IdempotencyKey: "refund-order-1-1", OrderID: "order-1",
	})
	if err != nil {
		t.Fatalf("refund: %v", err)
	}
	if !strings.HasPrefix(ref.ID, "re_") || ref.Status == "" {
		t.Errorf("refund = %+v, want an id and a status", ref)
	}
}

func TestCreatePaymentIntentOncePerOrder(t *testing.T) {
	t.Parallel()
	c, fake := setup(t)
	ctx := context.Background()
	p := payments.IntentParams{OrderID: "order-42", AmountCents: 12050, Currency: "usd", CustomerID: "cus_1", Description: "ORD-000042"}

	first, err := c.CreatePaymentIntent(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.CreatePaymentIntent(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("second call = %+v, want the first intent %+v", second, first)
	}
	if n := fake.IntentCount(); n != 1 {
		t.Errorf("intents created = %d, want 1", n)
	}
	if n := fake.Calls("POST", "/v1/payment_intents"); n != 2 {
		t.Errorf("calls = %d, want 2", n)
	}
	intents := fake.IntentsForOrder("order-42")
	if len(intents) != 1 {
		t.Fatalf("intents for order = %d, want 1", len(intents))
	}
	in := intents[0]
	if in.Amount != 12050 || in.Currency != "usd" || in.CustomerID != "cus_1" || in.Description != "ORD-000042" {
		t.Errorf("stored intent = %+v", in)
	}
	if first.AmountCents != 12050 || first.Currency != "usd" || first.Status != "requires_payment_method" ||
		!strings.HasPrefix(first.ClientSecret, first.ID+"_secret_") {
		t.Errorf("returned intent = %+v", first)
	}

	// Another order is another intent.
	if _, err := c.CreatePaymentIntent(ctx, payments.IntentParams{OrderID: "order-43", AmountCents: 100, Currency: "usd"}); err != nil {
		t.Fatal(err)
	}
	if n := fake.IntentCount(); n != 2 {
		t.Errorf("intents created = %d, want 2", n)
	}
}

func TestCreateCustomerOncePerUser(t *testing.T) {
	t.Parallel()
	c, fake := setup(t)
	ctx := context.Background()
	a, err := c.CreateCustomer(ctx, "user-7", "grace@example.com", "Grace Hopper")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.CreateCustomer(ctx, "user-7", "grace@example.com", "Grace Hopper")
	if err != nil {
		t.Fatal(err)
	}
	if a != b || !strings.HasPrefix(a, "cus_") {
		t.Errorf("ids %q and %q, want one cus_ id", a, b)
	}
	if n := fake.CustomerCount(); n != 1 {
		t.Errorf("customers = %d, want 1", n)
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	const path = "/v1/payment_intents"
	tests := []struct {
		status   int
		wantCode string
		wantMsg  string
	}{
		{http.StatusInternalServerError, shopd.EUnavailable, "The payment provider is unavailable; retry."},
		{http.StatusServiceUnavailable, shopd.EUnavailable, "The payment provider is unavailable; retry."},
		{http.StatusTooManyRequests, shopd.EUnavailable, "The payment provider is unavailable; retry."},
		{http.StatusConflict, shopd.EUnavailable, "The payment provider is unavailable; retry."},
		{http.StatusPaymentRequired, shopd.EPaymentRefused, "Your card was declined."},
		{http.StatusNotFound, shopd.EPaymentRefused, "No such object."},
		// A bad API key is ours to fix, not the client's.
		{http.StatusUnauthorized, shopd.EInternal, "An internal error occurred."},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			c, fake := setup(t)
			fake.FailNext(path, 1, tt.status)
			_, err := c.CreatePaymentIntent(context.Background(), payments.IntentParams{OrderID: "o1", AmountCents: 100, Currency: "usd"})
			if err == nil {
				t.Fatal("no error")
			}
			if got := shopd.ErrorCode(err); got != tt.wantCode {
				t.Errorf("code = %q, want %q (%v)", got, tt.wantCode, err)
			}
			if got := shopd.ErrorMessage(err); got != tt.wantMsg {
				t.Errorf("message = %q, want %q", got, tt.wantMsg)
			}
			if !strings.Contains(err.Error(), "order o1") {
				t.Errorf("error %q does not name the order", err)
			}
			if n := fake.IntentCount(); n != 0 {
				t.Errorf("intents = %d after a failure, want 0", n)
			}
		})
	}
}

func TestErrorMappingTransport(t *testing.T) {
	t.Parallel()
	params := payments.IntentParams{OrderID: "o1", AmountCents: 100, Currency: "usd"}

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		c := payments.New(payments.Config{SecretKey: "sk_test_x", APIBase: srv.URL, MaxNetworkRetries: -1})
		_, err := c.CreatePaymentIntent(context.Background(), params)
		if got := shopd.ErrorCode(err); got != shopd.EUnavailable {
			t.Errorf("code = %q, want unavailable (%v)", got, err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		fake := stripefake.New(t)
		fake.SetLatency(500 * time.Millisecond)
		c := payments.New(payments.Config{
			SecretKey: "sk_test_x", APIBase: fake.URL, MaxNetworkRetries: -1,
			HTTPClient: &http.Client{Timeout: 50 * time.Millisecond},
		})
		_, err := c.CreatePaymentIntent(context.Background(), params)
		if got := shopd.ErrorCode(err); got != shopd.EUnavailable {
			t.Errorf("code = %q, want unavailable (%v)", got, err)
		}
	})
	t.Run("proxy error page", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("<html>502 Bad Gateway</html>"))
		}))
		t.Cleanup(srv.Close)
		c := payments.New(payments.Config{SecretKey: "sk_test_x", APIBase: srv.URL, MaxNetworkRetries: -1})
		_, err := c.CreatePaymentIntent(context.Background(), params)
		if got := shopd.ErrorCode(err); got != shopd.EUnavailable {
			t.Errorf("code = %q, want unavailable (%v)", got, err)
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		t.Parallel()
		c, fake := setup(t)
		fake.SetLatency(time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := c.CreatePaymentIntent(ctx, params)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("secret in message", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"client_secret pi_1_secret_abc does not match"}}`))
		}))
		t.Cleanup(srv.Close)
		c := payments.New(payments.Config{SecretKey: "sk_test_x", APIBase: srv.URL, MaxNetworkRetries: -1})
		_, err := c.CreatePaymentIntent(context.Background(), params)
		if got := shopd.ErrorCode(err); got != shopd.EPaymentRefused {
			t.Errorf("code = %q, want payment refused (%v)", got, err)
		}
		if msg := shopd.ErrorMessage(err); strings.Contains(msg, "secret") {
			t.Errorf("message %q leaks the secret", msg)
		}
	})
}

func TestRefund(t *testing.T) {
	t.Parallel()
	c, fake := setup(t)
	ctx := context.Background()
	in, err := c.CreatePaymentIntent(ctx, payments.IntentParams{OrderID: "o9", AmountCents: 5000, Currency: "usd"})
	if err != nil {
		t.Fatal(err)
	}

	part, err := c.Refund(ctx, payments.RefundParams{PaymentIntentID: in.ID, AmountCents: 1500, IdempotencyKey: "r1", OrderID: "o9", Reason: "requested_by_customer"})
	if err != nil {
		t.Fatal(err)
	}
	if part.AmountCents != 1500 || part.Status != "succeeded" || !strings.HasPrefix(part.ID, "re_") {
		t.Errorf("partial refund = %+v", part)
	}
	// The same key again is the same refund, not a second one.
	again, err := c.Refund(ctx, payments.RefundParams{PaymentIntentID: in.ID, AmountCents: 1500, IdempotencyKey: "r1", OrderID: "o9", Reason: "requested_by_customer"})
	if err != nil || again != part {
		t.Errorf("replayed refund = %+v, %v; want %+v", again, err, part)
	}
	_, err = c.Refund(ctx, payments.RefundParams{PaymentIntentID: in.ID, AmountCents: 4000, IdempotencyKey: "r2"})
	if got := shopd.ErrorCode(err); got != shopd.EPaymentRefused {
		t.Errorf("over-refund: code = %q, want payment refused (%v)", got, err)
	}
	rest, err := c.Refund(ctx, payments.RefundParams{PaymentIntentID: in.ID, IdempotencyKey: "r3"})
	if err != nil {
		t.Fatal(err)
	}
	if rest.AmountCents != 3500 {
		t.Errorf("refund of the rest = %d, want 3500", rest.AmountCents)
	}
	refunds := fake.Refunds()
	if len(refunds) != 2 || refunds[0].Metadata["orderId"] != "o9" || refunds[0].Reason != "requested_by_customer" {
		t.Errorf("refunds = %+v", refunds)
	}

	_, err = c.Refund(ctx, payments.RefundParams{PaymentIntentID: in.ID, IdempotencyKey: "r4", Reason: "changed my mind"})
	if got := shopd.ErrorCode(err); got != shopd.EInvalid {
		t.Errorf("bad reason: code = %q, want invalid (%v)", got, err)
	}
	if _, err := c.Refund(ctx, payments.RefundParams{PaymentIntentID: in.ID}); err == nil {
		t.Error("refund without an idempotency key succeeded")
	}
	if n := fake.Calls("POST", "/v1/refunds"); n != 4 {
		t.Errorf("refund calls = %d, want 4 (local validation sends nothing)", n)
	}
}
