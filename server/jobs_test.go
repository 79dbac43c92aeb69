package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/store"
)

func TestJobPollIntervalConfig(t *testing.T) {
	t.Parallel()
	c, err := LoadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.JobPollInterval != time.Second {
		t.Errorf("default JobPollInterval = %v, want 1s", c.JobPollInterval)
	}
	c, err = LoadConfig(func(k string) string {
		if k == "JOB_POLL_INTERVAL" {
			return "25ms"
		}
		return ""
	})
	if err != nil || c.JobPollInterval != 25*time.Millisecond {
		t.Errorf("JOB_POLL_INTERVAL=25ms: %v, %v", c.JobPollInterval, err)
	}
	for _, bad := range []string{"0", "-1s", "soon"} {
		_, err := LoadConfig(func(k string) string {
			if k == "JOB_POLL_INTERVAL" {
				return bad
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), "JOB_POLL_INTERVAL") {
			t.Errorf("JOB_POLL_INTERVAL=%q: %v, want an error naming it", bad, err)
		}
	}
}

// overdueOrder writes, straight into the store, an unpaid order whose
// payment window closed an hour ago and which has no jobs: an order from
// before jobs existed. It returns the order and its product.
func overdueOrder(t *testing.T, st *store.Store) (store.Order, store.Product) {
	t.Helper()
	ctx := context.Background()
	u, err := st.CreateUser(ctx, store.NewUser{Email: "old@example.com", PasswordHash: "x", Role: "customer", FirstName: "Old", LastName: "Order"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.CreateProduct(ctx, store.NewProduct{SKU: "OLD-1", Name: "Old", PriceCents: 1000, Stock: 5, IsActive: true}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddToCart(ctx, u.ID, p.ID, 2); err != nil {
		t.Fatal(err)
	}
	k, _, _, err := st.ClaimCheckout(ctx, u.ID, "old-key", "h", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var o store.Order
	err = st.WithTx(ctx, func(tx *store.Tx) error {
		o, err = tx.PlaceOrder(ctx, store.PlaceOrder{KeyID: k.ID, UserID: u.ID,
			ShippingAddress: []byte(`{}`), BillingAddress: []byte(`{}`), Pricing: shopd.DefaultPricing,
			PaymentDueAt: time.Now().Add(-time.Hour)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return o, p
}

// TestServerRunsJobs: the server migrates River's tables with its own,
// starts its job client, and the leader's start-up sweep finds an overdue
// order that has no job (from before this change) and expires it. The
// job metrics are on /metrics, labelled by kind.
func TestServerRunsJobs(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	st, err := store.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o, p := overdueOrder(t, st)

	s := start(t, map[string]string{
		"DATABASE_URL":      dbURL,
		"HTTP_ADDR":         "127.0.0.1:0",
		"DATA_DIR":          t.TempDir(),
		"JOB_POLL_INTERVAL": "20ms",
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := st.Order(context.Background(), o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == shopd.StatusCancelled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the overdue order is still %s", got.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var stock int
	if err := st.DB().Get(&stock, `SELECT stock FROM products WHERE id = $1`, p.ID); err != nil || stock != 5 {
		t.Errorf("stock = %d (%v), want 5 (released)", stock, err)
	}

	metrics := func() string {
		res, err := http.Get(s.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(metrics(), `shopd_jobs_run_total{kind="expire_order"} 1`) {
		if time.Now().After(deadline) {
			t.Fatalf("/metrics has no expire_order run:\n%s", metrics())
		}
		time.Sleep(20 * time.Millisecond)
	}
	body := metrics()
	for _, want := range []string{`shopd_jobs_run_total{kind="sweep_orders"} 1`, `shopd_jobs_failed_total{kind="refund_cancelled_order"} 0`,
		`shopd_jobs_retried_total{kind="settle_refund"} 0`, `http_requests_total`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	s.stop(t)
	// Stopped before the store closed: no job was left running.
	var running int
	if err := st.DB().Get(&running, `SELECT count(*) FROM river_job WHERE state = 'running'`); err != nil || running != 0 {
		t.Errorf("jobs running after shutdown = %d (%v), want 0", running, err)
	}
}
