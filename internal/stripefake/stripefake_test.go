package stripefake_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/internal/stripefake"
	"github.com/shopd/shopd/payments"
)

const intentsPath = "/v1/payment_intents"

// setup returns a double and a client of it; retries stays at stripe-go's
// default unless a test passes its own.
func setup(t *testing.T, retries int64) (*stripefake.Server, *payments.Client) {
	t.Helper()
	fake := stripefake.New(t)
	return fake, payments.New(payments.Config{SecretKey: "sk_test_fake", APIBase: fake.URL, MaxNetworkRetries: retries})
}

func order(id string) payments.IntentParams {
	return payments.IntentParams{OrderID: id, AmountCents: 2599, Currency: "usd"}
}

func TestReplay(t *testing.T) {
	t.Parallel()
	fake, c := setup(t, -1)
	ctx := context.Background()
	first, err := c.CreatePaymentIntent(ctx, order("o1"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.CreatePaymentIntent(ctx, order("o1"))
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Errorf("replay = %+v, want %+v", again, first)
	}
	if fake.IntentCount() != 1 || fake.Calls("POST", intentsPath) != 2 {
		t.Errorf("intents %d, calls %d; want 1, 2", fake.IntentCount(), fake.Calls("POST", intentsPath))
	}
	in, ok := fake.Intent(first.ID)
	if !ok || in.OrderID() != "o1" || in.Amount != 2599 {
		t.Errorf("Intent(%s) = %+v, %v", first.ID, in, ok)
	}
}

func TestSameKeyOtherParameters(t *testing.T) {
	t.Parallel()
	fake, c := setup(t, -1)
	ctx := context.Background()
	if _, err := c.CreatePaymentIntent(ctx, order("o1")); err != nil {
		t.Fatal(err)
	}
	changed := order("o1")
	changed.AmountCents = 1
	_, err := c.CreatePaymentIntent(ctx, changed)
	if err == nil || !strings.Contains(err.Error(), "idempotency_error") {
		t.Fatalf("err = %v, want an idempotency_error", err)
	}
	// Our derived key meeting other parameters is a bug of ours, not the client's.
	if code := shopd.ErrorCode(err); code != shopd.EInternal {
		t.Errorf("code = %q, want internal", code)
	}
	if n := fake.IntentCount(); n != 1 {
		t.Errorf("intents = %d, want 1", n)
	}
}

func TestLostResponseThenRetry(t *testing.T) {
	t.Parallel()
	fake, c := setup(t, 2)
	ctx := context.Background()
	fake.LoseNextResponse(intentsPath, 1)

	// stripe-go does not retry a 500 on POST by itself, so the caller sees it.
	_, err := c.CreatePaymentIntent(ctx, order("o1"))
	if code := shopd.ErrorCode(err); code != shopd.EUnavailable {
		t.Fatalf("code = %q, want unavailable (%v)", code, err)
	}
	created := fake.IntentsForOrder("o1")
	if len(created) != 1 {
		t.Fatalf("intents for the order = %d, want 1: the lost request took effect", len(created))
	}

	retried, err := c.CreatePaymentIntent(ctx, order("o1"))
	if err != nil {
		t.Fatal(err)
	}
	if retried.ID != created[0].ID || retried.ClientSecret != created[0].ClientSecret {
		t.Errorf("retry got %s, want the intent the lost request created, %s", retried.ID, created[0].ID)
	}
	if n := fake.IntentCount(); n != 1 {
		t.Errorf("intents = %d, want 1", n)
	}
}

func TestFailNextThenSuccess(t *testing.T) {
	t.Parallel()

	t.Run("caller retries", func(t *testing.T) {
		t.Parallel()
		fake, c := setup(t, -1)
		fake.FailNext(intentsPath, 2, http.StatusInternalServerError)
		for i := range 2 {
			_, err := c.CreatePaymentIntent(context.Background(), order("o1"))
			if code := shopd.ErrorCode(err); code != shopd.EUnavailable {
				t.Fatalf("attempt %d: code = %q, want unavailable (%v)", i+1, code, err)
			}
		}
		if n := fake.IntentCount(); n != 0 {
			t.Fatalf("intents = %d after failures injected before acting, want 0", n)
		}
		if _, err := c.CreatePaymentIntent(context.Background(), order("o1")); err != nil {
			t.Fatal(err)
		}
		if fake.IntentCount() != 1 || fake.Calls("POST", intentsPath) != 3 {
			t.Errorf("intents %d, calls %d; want 1, 3", fake.IntentCount(), fake.Calls("POST", intentsPath))
		}
	})

	t.Run("stripe-go retries a 503", func(t *testing.T) {
		t.Parallel()
		fake, c := setup(t, 0) // stripe-go's default: 2 retries
		fake.FailNext(intentsPath, 1, http.StatusServiceUnavailable)
		if _, err := c.CreatePaymentIntent(context.Background(), order("o1")); err != nil {
			t.Fatal(err)
		}
		if fake.IntentCount() != 1 || fake.Calls("POST", intentsPath) != 2 {
			t.Errorf("intents %d, calls %d; want 1, 2", fake.IntentCount(), fake.Calls("POST", intentsPath))
		}
	})
}

func TestConcurrentCreatesOneIntent(t *testing.T) {
	t.Parallel()
	fake, c := setup(t, -1)
	fake.SetLatency(10 * time.Millisecond)
	const n = 20
	ids := make([]string, n)
	errs := make([]error, n)
	shoptest.Concurrently(t, n, 60*time.Second, func(i int) {
		in, err := c.CreatePaymentIntent(context.Background(), order("o-concurrent"))
		ids[i], errs[i] = in.ID, err
	})
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("goroutine %d got %s, goroutine 0 got %s", i, ids[i], ids[0])
		}
	}
	if got := len(fake.IntentsForOrder("o-concurrent")); got != 1 {
		t.Errorf("intents for the order = %d, want 1", got)
	}
	if got := fake.Calls("POST", intentsPath); got != n {
		t.Errorf("calls = %d, want %d", got, n)
	}
}

func TestCancelAndGet(t *testing.T) {
	t.Parallel()
	fake, c := setup(t, -1)
	ctx := context.Background()
	in, err := c.CreatePaymentIntent(ctx, order("o1"))
	if err != nil {
		t.Fatal(err)
	}
	canceled, err := c.CancelPaymentIntent(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if canceled.Status != "canceled" {
		t.Errorf("status = %q, want canceled", canceled.Status)
	}
	got, err := c.PaymentIntent(ctx, in.ID)
	if err != nil || got.Status != "canceled" {
		t.Errorf("get = %+v, %v", got, err)
	}
	_, err = c.Refund(ctx, payments.RefundParams{PaymentIntentID: in.ID, IdempotencyKey: "r1"})
	if code := shopd.ErrorCode(err); code != shopd.EPaymentRefused {
		t.Errorf("refund of a cancelled intent: code = %q, want payment refused (%v)", code, err)
	}
	_, err = c.PaymentIntent(ctx, "pi_missing")
	if code := shopd.ErrorCode(err); code != shopd.EPaymentRefused {
		t.Errorf("unknown intent: code = %q, want payment refused (%v)", code, err)
	}

	paid, err := c.CreatePaymentIntent(ctx, order("o2"))
	if err != nil {
		t.Fatal(err)
	}
	if !fake.SetIntentStatus(paid.ID, "succeeded") {
		t.Fatal("SetIntentStatus: no such intent")
	}
	_, err = c.CancelPaymentIntent(ctx, paid.ID)
	if code := shopd.ErrorCode(err); code != shopd.EPaymentRefused {
		t.Errorf("cancel of a paid intent: code = %q, want payment refused (%v)", code, err)
	}
	if got, _ := fake.Intent(paid.ID); got.AmountReceived != 2599 || got.ChargeID == "" {
		t.Errorf("paid intent = %+v", got)
	}
}

func TestRequiresAPIKey(t *testing.T) {
	t.Parallel()
	fake := stripefake.New(t)
	req, _ := http.NewRequest(http.MethodPost, fake.URL+intentsPath, strings.NewReader("amount=1&currency=usd"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || fake.IntentCount() != 0 {
		t.Errorf("status %d, intents %d; want 401, 0", resp.StatusCode, fake.IntentCount())
	}
}

// TestAmountTooLarge: an intent over Stripe's maximum is refused for good,
// as Stripe refuses it, and nothing is created.
func TestAmountTooLarge(t *testing.T) {
	t.Parallel()
	fake, c := setup(t, -1)
	ctx := context.Background()
	if _, err := c.CreatePaymentIntent(ctx, payments.IntentParams{OrderID: "max", AmountCents: stripefake.MaxAmount, Currency: "usd"}); err != nil {
		t.Fatalf("the maximum itself: %v", err)
	}
	_, err := c.CreatePaymentIntent(ctx, payments.IntentParams{OrderID: "over", AmountCents: stripefake.MaxAmount + 1, Currency: "usd"})
	if code := shopd.ErrorCode(err); code != shopd.EPaymentRefused {
		t.Errorf("over the maximum: code = %q, want payment refused (%v)", code, err)
	}
	if msg := shopd.ErrorMessage(err); !strings.Contains(msg, "999,999.99") {
		t.Errorf("message %q does not say the maximum", msg)
	}
	if n := len(fake.IntentsForOrder("over")); n != 0 {
		t.Errorf("intents for the refused order = %d, want 0", n)
	}
}
