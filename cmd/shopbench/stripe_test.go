package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shopd/shopd/payments"
)

// TestStripeStandInServesStripeGo: the stand-in answers stripe-go (through
// the shop's own payments client) for the calls a checkout makes, and an
// intent asked for again with the same order (the same Idempotency-Key)
// is the same intent, as Stripe's would be.
func TestStripeStandInServesStripeGo(t *testing.T) {
	t.Parallel()
	s, err := startStripeStandIn()
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	s.setLatency(1) // the timer path, without waiting
	pay := payments.New(payments.Config{SecretKey: "sk_test_bench", APIBase: s.URL, MaxNetworkRetries: -1})
	ctx := context.Background()
	cus, err := pay.CreateCustomer(ctx, "user-1", "a@example.com", "A B")
	if err != nil || cus == "" {
		t.Fatalf("customer: %q, %v", cus, err)
	}
	params := payments.IntentParams{OrderID: "order-1", AmountCents: 2750, Currency: "usd", CustomerID: cus}
	first, err := pay.CreatePaymentIntent(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if first.ID == "" || first.ClientSecret == "" || first.AmountCents != 2750 || first.Currency != "usd" {
		t.Errorf("intent = %+v", first)
	}
	again, err := pay.CreatePaymentIntent(ctx, params)
	if err != nil || again != first {
		t.Errorf("same order again: %+v, %v; want %+v", again, err, first)
	}
	params.OrderID = "order-2"
	if other, err := pay.CreatePaymentIntent(ctx, params); err != nil || other.ID == first.ID {
		t.Errorf("another order: %+v, %v; want a new intent", other, err)
	}
}

// TestScrapePool reads the pool series from a Prometheus text page.
func TestScrapePool(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`# HELP go_sql_in_use_connections The number of connections currently in use.
# TYPE go_sql_in_use_connections gauge
go_sql_in_use_connections{db_name="shopd"} 7
go_sql_max_open_connections{db_name="shopd"} 40
go_sql_wait_count_total{db_name="shopd"} 12
go_goroutines 55
`))
	}))
	defer srv.Close()
	m, err := scrapePool(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if m["go_sql_in_use_connections"] != 7 || m["go_sql_max_open_connections"] != 40 || m["go_sql_wait_count_total"] != 12 || len(m) != 3 {
		t.Errorf("scraped %v", m)
	}
}
