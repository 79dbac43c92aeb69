package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/payments"
)

const payTestSecret = "whsec_pay_test"

// payShop stands in for a running shopd: one order, the order endpoint
// (admin token required) and the Stripe webhook (signature required).
type payShop struct {
	tokens *auth.Tokens
	secret string

	mu     sync.Mutex
	order  payOrder
	gets   int
	events []payments.Event
}

func (s *payShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/auth/login":
		var creds struct{ Email, Password string }
		if json.NewDecoder(r.Body).Decode(&creds) != nil || creds.Email != devAdminEmail || creds.Password != devAdminPassword {
			http.Error(w, `{"title":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		token, _ := s.tokens.Issue("admin-1", auth.RoleAdmin)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"accessToken": token})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/orders/"):
		token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		claims, err := s.tokens.Verify(token)
		if err != nil {
			http.Error(w, `{"title":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		if !claims.IsAdmin() {
			http.Error(w, `{"title":"Forbidden"}`, http.StatusForbidden)
			return
		}
		if strings.TrimPrefix(r.URL.Path, "/v1/orders/") != s.order.ID {
			http.Error(w, `{"title":"Not Found"}`, http.StatusNotFound)
			return
		}
		s.gets++
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s.order)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/webhooks/stripe":
		body, _ := io.ReadAll(r.Body)
		ev, err := payments.ParseWebhook(body, r.Header.Get("Stripe-Signature"), s.secret)
		if err != nil {
			http.Error(w, `{"title":"Bad Request","detail":"`+err.Error()+`"}`, http.StatusBadRequest)
			return
		}
		s.events = append(s.events, ev)
		if pi := ev.PaymentIntent; ev.Type == "payment_intent.succeeded" && pi != nil &&
			pi.OrderID == s.order.ID && pi.ID == s.order.PaymentIntentID &&
			pi.AmountCents == s.order.TotalCents && pi.Currency == s.order.Currency {
			s.order.Status, s.order.PaymentStatus = "processing", "paid"
		}
		w.WriteHeader(http.StatusOK)
	default:
		http.NotFound(w, r)
	}
}

// payBundle is what a pay test works with.
type payBundle struct {
	shop *payShop
	srv  *httptest.Server
	env  map[string]string
}

func setupPay(t *testing.T) payBundle {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "jwt.pem")
	key, err := auth.LoadOrCreateSigningKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens(auth.TokenConfig{Key: key, Issuer: "shop", Audience: "shop-api"})
	if err != nil {
		t.Fatal(err)
	}
	shop := &payShop{tokens: tokens, secret: payTestSecret, order: payOrder{
		ID: "6f1c2a9e-0d7b-4e43-9a55-3c1d2b8e7f10", OrderNumber: "ORD-000123", Status: "pending",
		PaymentStatus: "pending", PaymentIntentID: "pi_3OrderIntent", TotalCents: 12050, Currency: "usd",
	}}
	srv := httptest.NewServer(shop)
	t.Cleanup(srv.Close)
	return payBundle{shop: shop, srv: srv, env: map[string]string{
		"DATA_DIR":              dir,
		"JWT_PRIVATE_KEY_FILE":  keyFile,
		"STRIPE_WEBHOOK_SECRET": payTestSecret,
	}}
}

func (b payBundle) run(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"pay"}, args...),
		func(k string) string { return b.env[k] }, &stdout, &stderr)
	return stdout.String(), err
}

func TestPay(t *testing.T) {
	t.Parallel()
	b := setupPay(t)
	id := b.shop.order.ID

	// The flag after the order id, as people type it.
	out, err := b.run(id, "--url", b.srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	if want := "order ORD-000123 (" + id + "): status processing, payment paid\n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}

	b.shop.mu.Lock()
	defer b.shop.mu.Unlock()
	if b.shop.gets != 2 {
		t.Errorf("order fetched %d times, want 2 (before and after)", b.shop.gets)
	}
	if len(b.shop.events) != 1 {
		t.Fatalf("webhooks received = %d, want 1", len(b.shop.events))
	}
	ev := b.shop.events[0]
	if ev.Type != "payment_intent.succeeded" || !strings.HasPrefix(ev.ID, "evt_local_") {
		t.Errorf("event %s of type %s", ev.ID, ev.Type)
	}
	want := payments.PaymentIntentEvent{
		ID: "pi_3OrderIntent", OrderID: id, Currency: "usd", Status: "succeeded", AmountCents: 12050,
	}
	if ev.PaymentIntent == nil || *ev.PaymentIntent != want {
		t.Errorf("intent = %+v, want %+v", ev.PaymentIntent, want)
	}
}

func TestPayUsesHTTPAddr(t *testing.T) {
	t.Parallel()
	b := setupPay(t)
	b.env["HTTP_ADDR"] = strings.TrimPrefix(b.srv.URL, "http://")
	if _, err := b.run(b.shop.order.ID); err != nil {
		t.Fatal(err)
	}
	// Each run is a new event, so a second one is not a duplicate.
	if _, err := b.run(b.shop.order.ID); err != nil {
		t.Fatal(err)
	}
	b.shop.mu.Lock()
	defer b.shop.mu.Unlock()
	if len(b.shop.events) != 2 || b.shop.events[0].ID == b.shop.events[1].ID {
		t.Errorf("events = %+v, want two with different ids", b.shop.events)
	}
}

// TestPayFindsTheRunningServer: with HTTP_ADDR unset (so 8080), pay talks
// to the server shopdev recorded under DATA_DIR, on another port.
func TestPayFindsTheRunningServer(t *testing.T) {
	t.Parallel()
	b := setupPay(t)
	if strings.HasSuffix(b.srv.URL, ":8080") {
		t.Fatal("the test server must not be on the default port")
	}
	if err := recordURL(filepath.Join(b.env["DATA_DIR"], "server-url"), b.srv.URL); err != nil {
		t.Fatal(err)
	}
	out, err := b.run(b.shop.order.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "status processing, payment paid") {
		t.Errorf("stdout = %q", out)
	}
	// --url still wins over the record.
	b.env["HTTP_ADDR"] = "127.0.0.1:1"
	if err := recordURL(filepath.Join(b.env["DATA_DIR"], "server-url"), "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.run("--url", b.srv.URL, b.shop.order.ID); err != nil {
		t.Errorf("--url with a stale record: %v", err)
	}
	b.shop.mu.Lock()
	defer b.shop.mu.Unlock()
	if len(b.shop.events) != 2 {
		t.Errorf("webhooks received = %d, want 2", len(b.shop.events))
	}
}

func TestPayFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		change  func(t *testing.T, b *payBundle)
		wantErr string
	}{
		{
			name:    "webhook refused",
			change:  func(t *testing.T, b *payBundle) { b.env["STRIPE_WEBHOOK_SECRET"] = "whsec_not_the_servers" },
			wantErr: "400 Bad Request: {\"title\":\"Bad Request\",\"detail\":\"parse webhook: webhook had no valid signature\"}",
		},
		{
			name: "another admin password",
			change: func(t *testing.T, b *payBundle) {
				b.env["BOOTSTRAP_ADMIN_EMAIL"], b.env["BOOTSTRAP_ADMIN_PASSWORD"] = devAdminEmail, "not-the-servers-password"
			},
			wantErr: "401 Unauthorized",
		},
		{
			name:    "unknown order",
			change:  func(t *testing.T, b *payBundle) { b.shop.order.ID = "someone-else" },
			wantErr: "404 Not Found",
		},
		{
			name:    "order without an intent",
			change:  func(t *testing.T, b *payBundle) { b.shop.order.PaymentIntentID = "" },
			wantErr: "has no payment intent",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupPay(t)
			id := b.shop.order.ID
			tt.change(t, &b)
			_, err := b.run("--url", b.srv.URL, id)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestPayUsage(t *testing.T) {
	t.Parallel()
	b := setupPay(t)
	if _, err := b.run(); err == nil || !strings.Contains(err.Error(), "no order id") {
		t.Errorf("no order id: err = %v", err)
	}
	if _, err := b.run("a", "b"); err == nil || !strings.Contains(err.Error(), "unexpected arguments") {
		t.Errorf("two order ids: err = %v", err)
	}
	out, err := b.run("--help")
	if err != nil || !strings.Contains(out, "usage: shopdev pay") {
		t.Errorf("--help: %q, %v", out, err)
	}
}
