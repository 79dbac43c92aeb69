package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/internal/stripefake"
)

// stockShop is a running server with an SMTP inbox, for the stock and
// cart workflows.
type stockShop struct {
	*server
	box   *shoptest.Inbox
	admin string
}

func startStockShop(t *testing.T, extra map[string]string) stockShop {
	t.Helper()
	box := shoptest.NewInbox(t)
	env := shopEnv(t, stripefake.New(t).URL, "whsec_stock_test", map[string]string{
		"SMTP_URL": "smtp://" + box.Addr, "MAIL_FROM": "shop@shop.example",
		"STOREFRONT_URL": "https://shop.example", "JOB_POLL_INTERVAL": "20ms", "NOTIFY_RETRY_BASE": "10ms",
		"INVENTORY_EMAIL": "stock@shop.example",
	})
	for k, v := range extra {
		env[k] = v
	}
	s := start(t, env)
	return stockShop{server: s, box: box, admin: s.token(t, "boss@example.com", "bootstrap-password")}
}

// received is one email as the inbox got it.
type received struct{ To, Subject, Body string }

func (s stockShop) mails(t *testing.T) []received {
	t.Helper()
	var out []received
	for _, raw := range s.box.Received() {
		m, err := mail.ReadMessage(strings.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(m.Body)
		out = append(out, received{To: m.Header.Get("To"), Subject: m.Header.Get("Subject"), Body: string(body)})
	}
	return out
}

// mailsTo returns the emails to whose subject contains subject.
func (s stockShop) mailsTo(t *testing.T, to, subject string) []received {
	t.Helper()
	var out []received
	for _, m := range s.mails(t) {
		if strings.Contains(m.To, to) && strings.Contains(m.Subject, subject) {
			out = append(out, m)
		}
	}
	return out
}

// waitMails waits until n emails to to with subject have arrived.
func (s stockShop) waitMails(t *testing.T, to, subject string, n int) []received {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := s.mailsTo(t, to, subject)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d emails to %s about %q, want %d; all: %+v", len(got), to, subject, n, s.mails(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s stockShop) product(t *testing.T, sku string, stock, threshold int) string {
	t.Helper()
	var p struct{ ID string }
	body := map[string]any{"sku": sku, "name": "Kettle " + sku, "priceCents": 1500, "stock": stock, "lowStockThreshold": threshold}
	if st := s.call(t, http.MethodPost, "/v1/products", s.admin, body, &p); st != http.StatusCreated {
		t.Fatalf("create product: %d", st)
	}
	return p.ID
}

func (s stockShop) adjust(t *testing.T, productID string, change int, kind string) {
	t.Helper()
	body := map[string]any{"quantityChange": change, "type": kind}
	if st := s.call(t, http.MethodPost, "/v1/products/"+productID+"/inventory", s.admin, body, nil); st != http.StatusCreated && st != http.StatusOK {
		t.Fatalf("inventory %s %d: %d", kind, change, st)
	}
}

// customer registers a customer (opted in to marketing or not) and
// returns their email and token.
func (s stockShop) customer(t *testing.T, optIn bool) (string, string) {
	t.Helper()
	email := "c-" + uuid.NewString()[:8] + "@example.com"
	reg := map[string]any{"email": email, "password": "a-long-password", "firstName": "Grace", "lastName": "Hopper"}
	if st := s.call(t, http.MethodPost, "/v1/auth/register", "", reg, nil); st != http.StatusCreated {
		t.Fatalf("register: %d", st)
	}
	token := s.token(t, email, "a-long-password")
	if optIn {
		if st := s.call(t, http.MethodPatch, "/v1/me", token, map[string]any{"marketingOptIn": true}, nil); st != http.StatusOK {
			t.Fatalf("opt in: %d", st)
		}
	}
	return email, token
}

func (s stockShop) addToCart(t *testing.T, token, productID string, qty int) {
	t.Helper()
	if st := s.call(t, http.MethodPost, "/v1/cart/items", token, map[string]any{"productId": productID, "quantity": qty}, nil); st != http.StatusCreated && st != http.StatusOK {
		t.Fatalf("add to cart: %d", st)
	}
}

func (s stockShop) checkout(t *testing.T, token string) {
	t.Helper()
	addr := map[string]any{"firstName": "Grace", "lastName": "Hopper", "line1": "1 Road", "city": "London", "postalCode": "N1", "country": "GB"}
	body, _ := json.Marshal(map[string]any{"shippingAddress": addr})
	req, _ := http.NewRequest(http.MethodPost, s.base+"/v1/checkout", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", uuid.NewString())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Errorf("checkout: %d %s", res.StatusCode, raw)
	}
}

// TestLowStockAlertOncePerCrossing: four customers check out together and
// take a product from 12 through its threshold of 10 to 8: one alert,
// naming the product. A further sale below the threshold sends nothing;
// a restock re-arms it, and falling through again sends a second alert.
func TestLowStockAlertOncePerCrossing(t *testing.T) {
	t.Parallel()
	s := startStockShop(t, nil)
	sku := "LOW-" + strings.ToUpper(uuid.NewString()[:8])
	id := s.product(t, sku, 12, 10)
	tokens := make([]string, 4)
	for i := range tokens {
		_, tokens[i] = s.customer(t, false)
		s.addToCart(t, tokens[i], id, 1)
	}
	var wg sync.WaitGroup
	for _, tok := range tokens {
		wg.Go(func() { s.checkout(t, tok) })
	}
	wg.Wait()
	first := s.waitMails(t, "stock@shop.example", "Low stock: "+sku, 1)
	if !strings.Contains(first[0].Subject, "(10 left)") || !strings.Contains(first[0].Body, "threshold of 10") {
		t.Errorf("first alert %+v: want the crossing at 10 of threshold 10", first[0])
	}

	s.adjust(t, id, -1, "adjustment") // 8 -> 7: still low, no new crossing
	s.adjust(t, id, 10, "restock")    // 7 -> 17: re-armed
	s.adjust(t, id, -8, "adjustment") // 17 -> 9: the second crossing
	got := s.waitMails(t, "stock@shop.example", "Low stock: "+sku, 2)
	if len(got) != 2 {
		t.Fatalf("%d low-stock alerts, want 2 (one per crossing): %+v", len(got), got)
	}
	if !strings.Contains(got[1].Subject, "(9 left)") {
		t.Errorf("second alert %q: want the crossing at 9", got[1].Subject)
	}
	var list struct {
		Items []listedNotification `json:"items"`
	}
	if st := s.call(t, http.MethodGet, "/v1/admin/notifications?template=low-stock-alert", s.admin, nil, &list); st != http.StatusOK {
		t.Fatalf("list notifications: %d", st)
	}
	if len(list.Items) != 2 {
		t.Errorf("%d low-stock-alert notifications in the outbox, want 2: %+v", len(list.Items), list.Items)
	}
}

// TestAbandonedCartOnlyOncePerChangeToOptedIn: of four customers who
// leave items in their carts, only the one who opted in and neither
// checked out nor emptied the cart gets the reminder, with the
// storefront's cart link; the one who did not opt in, the one who checked
// out and the one who emptied the cart get none.
func TestAbandonedCartOnlyOncePerChangeToOptedIn(t *testing.T) {
	t.Parallel()
	s := startStockShop(t, map[string]string{"ABANDONED_CART_AFTER": "1500ms"})
	id := s.product(t, "CART-"+strings.ToUpper(uuid.NewString()[:8]), 50, 1)

	notOptedIn, quiet := s.customer(t, false)
	s.addToCart(t, quiet, id, 1)
	buyerEmail, buyer := s.customer(t, true)
	s.addToCart(t, buyer, id, 1)
	s.checkout(t, buyer)
	emptierEmail, emptier := s.customer(t, true)
	s.addToCart(t, emptier, id, 1)
	if st := s.call(t, http.MethodDelete, "/v1/cart", emptier, nil, nil); st != http.StatusOK && st != http.StatusNoContent {
		t.Fatalf("empty cart: %d", st)
	}
	leaverEmail, leaver := s.customer(t, true)
	s.addToCart(t, leaver, id, 1)
	s.addToCart(t, leaver, id, 2) // a second change: one reminder, for the cart as it was last

	got := s.waitMails(t, leaverEmail, "cart", 1)
	if !strings.Contains(got[0].Body, "https://shop.example/cart") || !strings.Contains(got[0].Body, "3 x Kettle") {
		t.Errorf("reminder body %q: want the cart's line and the storefront's cart link", got[0].Body)
	}
	// The leaver's reminder was due last, so the others' checks have run.
	time.Sleep(100 * time.Millisecond)
	for _, who := range []string{notOptedIn, buyerEmail, emptierEmail} {
		if n := len(s.mailsTo(t, who, "")); n != 0 {
			t.Errorf("%s got %d emails about the cart, want none", who, n)
		}
	}
	if n := len(s.mailsTo(t, leaverEmail, "cart")); n != 1 {
		t.Errorf("%d reminders to the customer who left the cart, want 1", n)
	}
	var list struct {
		Items []listedNotification `json:"items"`
	}
	if st := s.call(t, http.MethodGet, "/v1/admin/notifications?template=abandoned-cart", s.admin, nil, &list); st != http.StatusOK {
		t.Fatalf("list notifications: %d", st)
	}
	if len(list.Items) != 1 || list.Items[0].Recipient != leaverEmail {
		t.Errorf("abandoned-cart notifications %+v: want only the one to %s", list.Items, leaverEmail)
	}
}
