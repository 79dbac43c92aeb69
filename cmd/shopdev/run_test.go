package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shopd/shopd/internal/shoptest"
)

// dev is one run of shopdev in this process.
type dev struct {
	env    map[string]string
	base   string
	cancel context.CancelFunc
	done   chan error
	stdout *shoptest.SyncBuffer
	stderr *shoptest.SyncBuffer
}

// dataDir is a DATA_DIR the postgres user cannot reach when the tests run
// as root (t.TempDir is 0700), like a clone under /root. The private
// cluster then lives under /var/lib/pgcluster, which this removes.
func dataDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), ".data")
	t.Cleanup(func() {
		link := filepath.Join(dir, "postgres")
		if target, err := filepath.EvalSymlinks(link); err == nil && target != link {
			os.RemoveAll(filepath.Dir(target))
		}
	})
	return dir
}

// startDev runs shopdev's run in the background and waits until the server
// has recorded its URL and answers /healthz.
func startDev(t *testing.T, env map[string]string) *dev {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &dev{env: env, cancel: cancel, done: make(chan error, 1), stdout: &shoptest.SyncBuffer{}, stderr: &shoptest.SyncBuffer{}}
	go func() { d.done <- run(ctx, nil, func(k string) string { return env[k] }, d.stdout, d.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
		}
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", d.stdout, d.stderr)
		}
	})
	urlFile := filepath.Join(env["DATA_DIR"], "server-url")
	// Generous: the first run on a bare machine builds stripe-mock.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		select {
		case err := <-d.done:
			t.Fatalf("run returned before serving: %v\nstderr:\n%s", err, d.stderr)
		default:
		}
		if b, err := os.ReadFile(urlFile); err == nil {
			d.base = strings.TrimSpace(string(b))
			if res, err := http.Get(d.base + "/healthz"); err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					return d
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no server recorded in %s and answering /healthz\nstderr:\n%s", urlFile, d.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop cancels the context and checks that run returns nil.
func (d *dev) stop(t *testing.T) {
	t.Helper()
	d.cancel()
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("run returned %v after cancel, want nil", err)
		}
		d.done <- nil // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return within 30s of cancel")
	}
}

// call sends a JSON request and decodes a JSON answer into out (when not nil).
func (d *dev) call(t *testing.T, method, path, token string, header map[string]string, body, out any) int {
	t.Helper()
	return shoptest.Call(t, d.base, method, path, token, header, body, out)
}

// bannerField is the value after a banner label, e.g. "stripe-mock".
func bannerField(t *testing.T, banner, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("banner has no %s:\n%s", pattern, banner)
	}
	return m[1]
}

// TestServeLocal runs shopdev as `make run` does, on a port the kernel
// picks, with a private cluster and stripe-mock: the demo catalog and the
// admin are there, a checkout gets a PaymentIntent, `shopdev pay` finds the
// server and pays it, and everything stops on cancel. A second start keeps
// the data.
func TestServeLocal(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATA_DIR": dataDir(t), "HTTP_ADDR": "127.0.0.1:0"}
	d := startDev(t, env)

	var page struct {
		Items []struct {
			ID    string `json:"id"`
			Stock int    `json:"stock"`
		} `json:"items"`
	}
	if st := d.call(t, http.MethodGet, "/v1/products?limit=100", "", nil, nil, &page); st != http.StatusOK || len(page.Items) != 50 {
		t.Fatalf("GET /v1/products: %d with %d items, want the 50 seeded", st, len(page.Items))
	}
	var tok struct {
		AccessToken string `json:"accessToken"`
	}
	admin := map[string]any{"email": devAdminEmail, "password": devAdminPassword}
	if st := d.call(t, http.MethodPost, "/v1/auth/login", "", nil, admin, &tok); st != http.StatusOK {
		t.Fatalf("demo admin login: %d", st)
	}

	banner := d.stdout.String()
	for _, want := range []string{d.base + "/v1", devAdminEmail + " / " + devAdminPassword, "make pay ORDER=", "Press Ctrl-C to stop."} {
		if !strings.Contains(banner, want) {
			t.Errorf("the banner does not say %q:\n%s", want, banner)
		}
	}
	pgDir := bannerField(t, banner, `data in (\S+)`)
	t.Logf("private cluster in %s", pgDir)
	stripeURL := bannerField(t, banner, `stripe-mock  (\S+), log in`)
	stripeLog := bannerField(t, banner, `log in (\S+)`)
	if want := filepath.Join(env["DATA_DIR"], "stripe-mock.log"); stripeLog != want {
		t.Errorf("stripe-mock log in %s, want %s", stripeLog, want)
	}
	if target, err := filepath.EvalSymlinks(filepath.Join(env["DATA_DIR"], "postgres")); err != nil || target != pgDir {
		t.Errorf("DATA_DIR/postgres resolves to %q (%v); the banner says %s", target, err, pgDir)
	}

	inStock := ""
	for _, p := range page.Items {
		if p.Stock > 0 {
			inStock = p.ID
			break
		}
	}
	orderID := checkout(t, d, inStock)
	var paid bytes.Buffer
	if err := run(context.Background(), []string{"pay", orderID}, func(k string) string { return env[k] }, &paid, io.Discard); err != nil {
		t.Fatalf("shopdev pay: %v", err)
	}
	if !strings.Contains(paid.String(), "status processing, payment paid") {
		t.Errorf("shopdev pay printed %q", paid.String())
	}

	if log, err := os.ReadFile(stripeLog); err != nil || !strings.Contains(string(log), "POST /v1/payment_intents") {
		t.Errorf("stripe-mock's log has no PaymentIntent request: %v\n%s", err, log)
	}
	d.stop(t)
	// stripe-mock's plain-text log stays out of the JSON log.
	sc := bufio.NewScanner(strings.NewReader(d.stderr.String()))
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Errorf("stderr line is not JSON: %s", sc.Text())
		}
	}
	if _, err := os.Stat(filepath.Join(env["DATA_DIR"], "server-url")); !os.IsNotExist(err) {
		t.Errorf("server-url still there after the server stopped: %v", err)
	}
	assertStopped(t, pgDir, stripeURL)

	// The second start reuses the cluster: no second seed, the order kept.
	d = startDev(t, env)
	if st := d.call(t, http.MethodGet, "/v1/products?limit=100", "", nil, nil, &page); st != http.StatusOK || len(page.Items) != 50 {
		t.Errorf("after restart: %d with %d products, want the same 50", st, len(page.Items))
	}
	if st := d.call(t, http.MethodPost, "/v1/auth/login", "", nil, admin, &tok); st != http.StatusOK {
		t.Fatalf("demo admin login after restart: %d", st)
	}
	var order struct {
		PaymentStatus string `json:"paymentStatus"`
	}
	if st := d.call(t, http.MethodGet, "/v1/orders/"+orderID, tok.AccessToken, nil, nil, &order); st != http.StatusOK || order.PaymentStatus != "paid" {
		t.Errorf("order after restart: %d, payment %q", st, order.PaymentStatus)
	}
	d.stop(t)
}

// checkout registers a customer who buys one of product and returns the
// order id.
func checkout(t *testing.T, d *dev, productID string) string {
	t.Helper()
	customer := map[string]any{"email": "ada@example.com", "password": "correct-horse-battery", "firstName": "Ada", "lastName": "Lovelace"}
	if st := d.call(t, http.MethodPost, "/v1/auth/register", "", nil, customer, nil); st != http.StatusCreated {
		t.Fatalf("register: %d", st)
	}
	var tok struct {
		AccessToken string `json:"accessToken"`
	}
	login := map[string]any{"email": customer["email"], "password": customer["password"]}
	if st := d.call(t, http.MethodPost, "/v1/auth/login", "", nil, login, &tok); st != http.StatusOK {
		t.Fatalf("login: %d", st)
	}
	item := map[string]any{"productId": productID, "quantity": 1}
	if st := d.call(t, http.MethodPost, "/v1/cart/items", tok.AccessToken, nil, item, nil); st != http.StatusCreated {
		t.Fatalf("add to cart: %d", st)
	}
	body := map[string]any{"shippingAddress": map[string]any{
		"firstName": "Ada", "lastName": "Lovelace", "line1": "1 Main St", "city": "London", "postalCode": "N1 9GU", "country": "GB",
	}}
	var res struct {
		Order struct {
			ID string `json:"id"`
		} `json:"order"`
		Payment struct {
			PaymentIntentID string `json:"paymentIntentId"`
		} `json:"payment"`
	}
	key := map[string]string{"Idempotency-Key": "shopdev-test-checkout"}
	if st := d.call(t, http.MethodPost, "/v1/checkout", tok.AccessToken, key, body, &res); st != http.StatusCreated || res.Payment.PaymentIntentID == "" {
		t.Fatalf("checkout: %d, intent %q", st, res.Payment.PaymentIntentID)
	}
	return res.Order.ID
}

// assertStopped checks that the cluster in pgDir and stripe-mock at
// stripeURL are gone.
func assertStopped(t *testing.T, pgDir, stripeURL string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgDir, "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("postgres in %s still running (postmaster.pid: %v)", pgDir, err)
	}
	client := &http.Client{Timeout: time.Second}
	if res, err := client.Get(stripeURL + "/"); err == nil {
		res.Body.Close()
		t.Errorf("stripe-mock at %s still answers", stripeURL)
	}
}
