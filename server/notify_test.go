package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/internal/stripefake"
	"github.com/shopd/shopd/notify"
	"github.com/shopd/shopd/payments"
)

// TestTwoInstancesConfirmOncePerOrder runs the real server twice on one
// database with an SMTP server: a customer checks out, the same
// payment_intent.succeeded is delivered five times across both instances,
// concurrently; one confirmation is sent, the admin list shows it sent,
// and /metrics counts it on the instance that sent it.
func TestTwoInstancesConfirmOncePerOrder(t *testing.T) {
	t.Parallel()
	box := shoptest.NewInbox(t)
	const secret = "whsec_notify_test"
	fake := stripefake.New(t)
	dbURL := pgtest.NewURL(t)
	// One DATA_DIR: both instances sign with the key the first one made,
	// as instances behind one load balancer share JWT_PRIVATE_KEY_FILE.
	dataDir := t.TempDir()
	env := shopEnv(t, fake.URL, secret, map[string]string{
		"DATABASE_URL": dbURL, "DATA_DIR": dataDir,
		"SMTP_URL": "smtp://" + box.Addr, "MAIL_FROM": "shop@shop.example",
		"STOREFRONT_URL": "https://shop.example", "JOB_POLL_INTERVAL": "20ms", "NOTIFY_RETRY_BASE": "10ms",
	})
	a, b := start(t, env), start(t, env)

	admin := a.token(t, "boss@example.com", "bootstrap-password")
	order, email := a.placeOrder(t, admin)
	event := paidEvent(order)
	var wg sync.WaitGroup
	for i := range 5 {
		s := []*server{a, b}[i%2]
		wg.Go(func() { s.deliver(t, event, secret) })
	}
	wg.Wait()
	items := b.notificationsOf(t, admin, order.Order.ID)
	if len(items) != 1 {
		t.Fatalf("%d notifications, want 1: %+v", len(items), items)
	}
	n := items[0]
	if n.Template != notify.TemplateOrderConfirmation || n.Recipient != email || n.Attempts != 1 ||
		!strings.Contains(n.Subject, order.Order.OrderNumber) {
		t.Errorf("notification %+v: want one confirmation to %s naming %s, sent on its first attempt", n, email, order.Order.OrderNumber)
	}
	msgs := box.Received()
	if len(msgs) != 1 {
		t.Fatalf("%d emails received, want 1", len(msgs))
	}
	parsed, err := mail.ReadMessage(strings.NewReader(msgs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if got := parsed.Header.Get("Message-Id"); got != "<notification-"+n.ID+"@shop.example>" {
		t.Errorf("Message-ID %q, want the notification's", got)
	}
	var counted int
	for _, s := range []*server{a, b} {
		if strings.Contains(s.metrics(t), `shopd_notifications_sent_total{channel="email",template="order-confirmation"} 1`) {
			counted++
		}
	}
	if counted != 1 {
		t.Errorf("%d instances count the confirmation as sent, want exactly 1", counted)
	}
}

// placed is a checkout's answer, as far as these tests read it.
type placed struct {
	Order struct {
		ID          string `json:"id"`
		OrderNumber string `json:"orderNumber"`
		TotalCents  int64  `json:"totalCents"`
		Currency    string `json:"currency"`
	} `json:"order"`
	Payment struct {
		PaymentIntentID string `json:"paymentIntentId"`
	} `json:"payment"`
}

// placeOrder creates a product as admin, registers a customer who buys
// it, and returns the checkout and the customer's email.
func (s *server) placeOrder(t *testing.T, admin string) (placed, string) {
	t.Helper()
	var p struct{ ID string }
	if st := s.call(t, http.MethodPost, "/v1/products", admin, map[string]any{"sku": "N-" + uuid.NewString()[:8], "name": "Teapot", "priceCents": 1500, "stock": 3}, &p); st != http.StatusCreated {
		t.Fatalf("create product: %d", st)
	}
	email := "ada-" + uuid.NewString()[:8] + "@example.com"
	reg := map[string]any{"email": email, "password": "a-long-password", "firstName": "Ada", "lastName": "Lovelace"}
	if st := s.call(t, http.MethodPost, "/v1/auth/register", "", reg, nil); st != http.StatusCreated {
		t.Fatalf("register: %d", st)
	}
	customer := s.token(t, email, "a-long-password")
	if st := s.call(t, http.MethodPost, "/v1/cart/items", customer, map[string]any{"productId": p.ID, "quantity": 1}, nil); st != http.StatusCreated && st != http.StatusOK {
		t.Fatalf("add to cart: %d", st)
	}
	var out placed
	addr := map[string]any{"firstName": "Ada", "lastName": "Lovelace", "line1": "1 Road", "city": "London", "postalCode": "N1", "country": "GB"}
	body, _ := json.Marshal(map[string]any{"shippingAddress": addr})
	req, _ := http.NewRequest(http.MethodPost, s.base+"/v1/checkout", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+customer)
	req.Header.Set("Idempotency-Key", uuid.NewString())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || json.Unmarshal(raw, &out) != nil {
		t.Fatalf("checkout: %d %s", res.StatusCode, raw)
	}
	return out, email
}

// paidEvent is the payment_intent.succeeded of the checkout, as Stripe sends it.
func paidEvent(p placed) []byte {
	event, _ := json.Marshal(map[string]any{
		"id": "evt_" + uuid.NewString(), "object": "event", "type": "payment_intent.succeeded", "api_version": "2023-10-16",
		"created": time.Now().Unix(), "livemode": false,
		"data": map[string]any{"object": map[string]any{
			"id": p.Payment.PaymentIntentID, "object": "payment_intent", "amount": p.Order.TotalCents,
			"amount_received": p.Order.TotalCents, "currency": p.Order.Currency, "status": "succeeded",
			"metadata": map[string]string{"orderId": p.Order.ID},
		}},
	})
	return event
}

// deliver posts a signed webhook to s.
func (s *server) deliver(t *testing.T, event []byte, secret string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.base+"/v1/webhooks/stripe", bytes.NewReader(event))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", payments.SignWebhook(event, secret, time.Now()))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("webhook: %d", res.StatusCode)
	}
}

// notificationsOf waits until the order's notifications are all settled
// (none pending) and returns them.
func (s *server) notificationsOf(t *testing.T, admin, orderID string) []listedNotification {
	t.Helper()
	var list struct {
		Items []listedNotification `json:"items"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st := s.call(t, http.MethodGet, "/v1/admin/notifications?orderId="+orderID, admin, nil, &list); st != http.StatusOK {
			t.Fatalf("list notifications: %d", st)
		}
		if len(list.Items) > 0 && !slices.ContainsFunc(list.Items, func(n listedNotification) bool { return n.Status == notify.StatusPending }) {
			return list.Items
		}
		if time.Now().After(deadline) {
			t.Fatalf("notifications not settled: %+v", list.Items)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type listedNotification struct {
	ID, Template, Status, Subject, Recipient string
	Attempts                                 int
}

// TestLocalRunLogsEmails: without SMTP_URL an order's confirmation is
// written to the log and kept as sent.
func TestLocalRunLogsEmails(t *testing.T) {
	t.Parallel()
	const secret = "whsec_local"
	fake := stripefake.New(t)
	s := start(t, shopEnv(t, fake.URL, secret, map[string]string{"JOB_POLL_INTERVAL": "20ms"}))
	admin := s.token(t, "boss@example.com", "bootstrap-password")
	p, email := s.placeOrder(t, admin)
	s.deliver(t, paidEvent(p), secret)
	ns := s.notificationsOf(t, admin, p.Order.ID)
	if len(ns) != 1 || ns[0].Status != notify.StatusSent || ns[0].Template != notify.TemplateOrderConfirmation {
		t.Fatalf("notifications %+v, want the confirmation, sent", ns)
	}
	// The log is buffered: stop the server, which writes it all out.
	s.stop(t)
	var logged bool
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		if strings.Contains(line, "not sent: no provider configured") && strings.Contains(line, `"template":"order-confirmation"`) &&
			strings.Contains(line, `"to":"`+email+`"`) && strings.Contains(line, p.Order.OrderNumber) {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no log line shows the confirmation to %s:\n%s", email, s.stderr)
	}
}

// token logs in through the API.
func (s *server) token(t *testing.T, email, password string) string {
	t.Helper()
	var tok struct {
		AccessToken string `json:"accessToken"`
	}
	if st := s.call(t, http.MethodPost, "/v1/auth/login", "", map[string]any{"email": email, "password": password}, &tok); st != http.StatusOK {
		t.Fatalf("login %s: %d", email, st)
	}
	return tok.AccessToken
}

// metrics is the instance's /metrics text.
func (s *server) metrics(t *testing.T) string {
	t.Helper()
	res, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestNotifyConfig: the notification settings' defaults, overrides and
// refusals.
func TestNotifyConfig(t *testing.T) {
	t.Parallel()
	c, err := LoadConfig(func(k string) string { return map[string]string{"PUBLIC_URL": "https://api.example/"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.MailFrom != "shop@localhost" || c.NotifyMaxAttempts != 8 || c.StorefrontURL != "https://api.example" ||
		c.WarehouseEmail != "warehouse@localhost" || c.InventoryEmail != "inventory@localhost" || c.SMTPURL != "" || c.SMSAPIURL != "" {
		t.Errorf("defaults: %+v", c)
	}
	env := map[string]string{
		"SMTP_URL": "smtps://u:p@mail.example:465", "MAIL_FROM": "orders@shop.example", "NOTIFY_MAX_ATTEMPTS": "3",
		"STOREFRONT_URL": "https://shop.example/", "SMS_API_URL": "https://sms.example", "SMS_ACCOUNT_SID": "AC1",
		"SMS_AUTH_TOKEN": "tok", "SMS_FROM": "+15005550006", "NOTIFY_RETRY_BASE": "2s",
	}
	c, err = LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.NotifyMaxAttempts != 3 || c.StorefrontURL != "https://shop.example" || c.MailFrom != "orders@shop.example" ||
		c.NotifyRetryBase != 2*time.Second || c.SMSFrom != "+15005550006" {
		t.Errorf("overrides: %+v", c)
	}
	for name, bad := range map[string]map[string]string{
		"zero attempts":     {"NOTIFY_MAX_ATTEMPTS": "0"},
		"bad smtp scheme":   {"SMTP_URL": "http://mail.example"},
		"sms without creds": {"SMS_API_URL": "https://sms.example"},
	} {
		if _, err := LoadConfig(func(k string) string { return bad[k] }); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
