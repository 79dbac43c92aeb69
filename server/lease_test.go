package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd/internal/stripefake"
)

// TestKilledMidCheckoutTakenOverByAnotherInstance: the production binary
// is killed with SIGKILL while its checkout waits for Stripe, holding the
// key's lease. Another instance on the same database answers retries 409
// while the dead instance's lease lasts (if any come that early), then
// takes the key over and finishes the checkout: one order, one
// PaymentIntent, one unit of stock.
func TestKilledMidCheckoutTakenOverByAnotherInstance(t *testing.T) {
	t.Parallel()
	fake := stripefake.New(t)
	env := shopEnv(t, fake.URL, "whsec_lease_test", map[string]string{"CHECKOUT_LEASE": "300ms"})
	first := startBinary(t, env)
	second := start(t, env)

	admin := first.token(t, "boss@example.com", "bootstrap-password")
	p, customer := cartOfOne(t, first.server, admin, "L-1", "ada@example.com", "Ada")
	key := uuid.NewString()
	checkout := func(s *server) (int, []byte) {
		addr := map[string]any{"firstName": "Ada", "lastName": "Lovelace", "line1": "1 Road", "city": "London", "postalCode": "N1", "country": "GB"}
		body, _ := json.Marshal(map[string]any{"shippingAddress": addr})
		req, _ := http.NewRequest(http.MethodPost, s.base+"/v1/checkout", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+customer)
		req.Header.Set("Idempotency-Key", key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, raw
	}

	release := fake.Hold("/v1/payment_intents")
	defer release()
	go checkout(first.server) // dies with the process
	deadline := time.Now().Add(30 * time.Second)
	for fake.Held("/v1/payment_intents") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first instance's checkout never reached Stripe")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	release()

	var statuses []int
	var raw []byte
	for {
		var st int
		st, raw = checkout(second)
		statuses = append(statuses, st)
		if st != http.StatusConflict {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still 409 after 30 s: %v", statuses)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var out placed
	if statuses[len(statuses)-1] != http.StatusCreated || json.Unmarshal(raw, &out) != nil {
		t.Fatalf("retries on the second instance answered %v, last %s; want 409s then 201", statuses, raw)
	}
	if n := len(fake.IntentsForOrder(out.Order.ID)); n != 1 {
		t.Errorf("intents for the order = %d, want 1", n)
	}
	var list struct {
		Items []struct{ ID string } `json:"items"`
	}
	if st := second.call(t, http.MethodGet, "/v1/orders", customer, nil, &list); st != http.StatusOK || len(list.Items) != 1 || list.Items[0].ID != out.Order.ID {
		t.Errorf("orders = %d %+v, want only %s", st, list.Items, out.Order.ID)
	}
	var prod struct{ Stock int }
	if st := second.call(t, http.MethodGet, "/v1/products/"+p.ID, "", nil, &prod); st != http.StatusOK || prod.Stock != 2 {
		t.Errorf("stock = %d (%d), want 2", prod.Stock, st)
	}
	if st, _ := checkout(second); st != http.StatusOK {
		t.Errorf("replay = %d, want 200", st)
	}
}

// TestSameKeyOnTwoInstances: while one instance's checkout waits on
// Stripe, the same request on another instance is answered 409 with
// Retry-After (the lease is in the database, seen by both); once the
// first answers 201, the other replays it with 200 and the same order:
// one order, one PaymentIntent.
func TestSameKeyOnTwoInstances(t *testing.T) {
	t.Parallel()
	fake := stripefake.New(t)
	env := shopEnv(t, fake.URL, "whsec_lease_test", nil)
	a, b := start(t, env), start(t, env)
	admin := a.token(t, "boss@example.com", "bootstrap-password")
	_, customer := cartOfOne(t, a, admin, "L-2", "bo@example.com", "Bo")
	key := uuid.NewString()
	type answer struct {
		status     int
		retryAfter string
		body       []byte
	}
	checkout := func(s *server) answer {
		addr := map[string]any{"firstName": "Bo", "lastName": "Lovelace", "line1": "1 Road", "city": "London", "postalCode": "N1", "country": "GB"}
		body, _ := json.Marshal(map[string]any{"shippingAddress": addr})
		req, _ := http.NewRequest(http.MethodPost, s.base+"/v1/checkout", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+customer)
		req.Header.Set("Idempotency-Key", key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return answer{}
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return answer{res.StatusCode, res.Header.Get("Retry-After"), raw}
	}

	release := fake.Hold("/v1/payment_intents")
	defer release()
	first := make(chan answer, 1)
	go func() { first <- checkout(a) }()
	deadline := time.Now().Add(30 * time.Second)
	for fake.Held("/v1/payment_intents") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first checkout never reached Stripe")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if got := checkout(b); got.status != http.StatusConflict || got.retryAfter == "" {
		t.Fatalf("same key on the other instance while the first is in flight: %d (Retry-After %q) %s", got.status, got.retryAfter, got.body)
	}
	release()
	won := <-first
	if won.status != http.StatusCreated {
		t.Fatalf("first checkout: %d %s", won.status, won.body)
	}
	again := checkout(b)
	if again.status != http.StatusOK || !bytes.Equal(again.body, won.body) {
		t.Errorf("replay on the other instance: %d\n%s\nwant 200 with\n%s", again.status, again.body, won.body)
	}
	var out placed
	if err := json.Unmarshal(won.body, &out); err != nil {
		t.Fatal(err)
	}
	if n := fake.IntentCount(); n != 1 || len(fake.IntentsForOrder(out.Order.ID)) != 1 {
		t.Errorf("intents = %d, want 1, for order %s", n, out.Order.ID)
	}
}

// cartOfOne creates a product (stock 3) through s as admin, registers a
// customer and puts one of the product in their cart: the start of every
// checkout-key test. It returns the product and the customer's token.
func cartOfOne(t *testing.T, s *server, admin, sku, email, firstName string) (p struct{ ID string }, customer string) {
	t.Helper()
	if st := s.call(t, http.MethodPost, "/v1/products", admin, map[string]any{"sku": sku, "name": "Kettle", "priceCents": 2500, "stock": 3}, &p); st != http.StatusCreated {
		t.Fatalf("create product: %d", st)
	}
	reg := map[string]any{"email": email, "password": "a-long-password", "firstName": firstName, "lastName": "Lovelace"}
	if st := s.call(t, http.MethodPost, "/v1/auth/register", "", reg, nil); st != http.StatusCreated {
		t.Fatalf("register: %d", st)
	}
	customer = s.token(t, email, "a-long-password")
	if st := s.call(t, http.MethodPost, "/v1/cart/items", customer, map[string]any{"productId": p.ID, "quantity": 1}, nil); st != http.StatusCreated {
		t.Fatalf("add to cart: %d", st)
	}
	return p, customer
}
