package stripemock

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// testLog sends stripe-mock's output to the test log, shown on failure.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestPaymentIntent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	began := time.Now()
	s, err := Start(ctx, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("stripe-mock at %s after %v", s.URL, time.Since(began))

	backends := stripe.NewBackends(nil)
	backends.API = stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(s.URL),
		MaxNetworkRetries: stripe.Int64(0),
	})
	sc := client.New("sk_test_123", backends)
	pi, err := sc.PaymentIntents.New(&stripe.PaymentIntentParams{
		Amount:   stripe.Int64(2599),
		Currency: stripe.String(string(stripe.CurrencyUSD)),
	})
	if err != nil {
		t.Fatalf("create payment intent: %v", err)
	}
	if !strings.HasPrefix(pi.ID, "pi_") {
		t.Errorf("id = %q, want pi_...", pi.ID)
	}
	if pi.ClientSecret == "" {
		t.Error("no client secret")
	}
}

func TestStopTwice(t *testing.T) {
	s, err := Start(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestDiesWithParent kills a process that started stripe-mock and expects
// stripe-mock to go too.
func TestDiesWithParent(t *testing.T) {
	if os.Getenv("STRIPEMOCK_TEST_CHILD") != "" {
		s, err := Start(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println(s.URL)
		select {} // wait to be killed
	}
	if runtime.GOOS != "linux" {
		t.Skip("only Linux ties stripe-mock's life to its parent's")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiesWithParent$")
	cmd.Env = append(os.Environ(), "STRIPEMOCK_TEST_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	url, err := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Kill()
	cmd.Wait()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	url = strings.TrimSpace(url)

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(url + "/")
		if err != nil {
			return
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("stripe-mock at %s still answers after its parent died", url)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
