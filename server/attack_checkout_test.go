package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/internal/stripefake"
)

// TestCheckoutKeyUnderAttack: while one instance's checkout waits on a
// Stripe slower than CHECKOUT_LEASE (so the lease lives by renewal alone),
// the same key with another body is 422 on either instance, and the same
// request 409 with Retry-After; then one order, one PaymentIntent, its
// number in the 201 and in GET /v1/orders/{id}.
func TestCheckoutKeyUnderAttack(t *testing.T) {
	t.Parallel()
	fake := stripefake.New(t)
	env := shopEnv(t, fake.URL, "whsec_attack_test", map[string]string{"CHECKOUT_LEASE": "100ms"})
	a, b := start(t, env), start(t, env)
	admin := a.token(t, "boss@example.com", "bootstrap-password")
	_, customer := cartOfOne(t, a, admin, "ATK-1", "eve@example.com", "Eve")
	key := uuid.NewString()
	checkout := func(s *server, city string) (int, string, []byte) {
		addr := map[string]any{"firstName": "Eve", "lastName": "Lovelace", "line1": "1 Road", "city": city, "postalCode": "N1", "country": "GB"}
		body, _ := json.Marshal(map[string]any{"shippingAddress": addr})
		req, _ := http.NewRequest(http.MethodPost, s.base+"/v1/checkout", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+customer)
		req.Header.Set("Idempotency-Key", key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, "", nil
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Retry-After"), raw
	}
	release := fake.Hold("/v1/payment_intents")
	defer release()
	type answer struct {
		status int
		body   []byte
	}
	first := make(chan answer, 1)
	go func() { st, _, body := checkout(a, "London"); first <- answer{st, body} }()
	deadline := time.Now().Add(30 * time.Second)
	for fake.Held("/v1/payment_intents") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first checkout never reached Stripe")
		}
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(400 * time.Millisecond) // four leases' worth: only renewal keeps it
	for _, s := range []*server{a, b} {
		if st, _, body := checkout(s, "Paris"); st != http.StatusUnprocessableEntity {
			t.Errorf("same key, another body, in flight: %d %s, want 422", st, body)
		}
		if st, ra, body := checkout(s, "London"); st != http.StatusConflict || ra == "" {
			t.Errorf("same key in flight: %d (Retry-After %q) %s, want 409", st, ra, body)
		}
	}
	release()
	won := <-first
	if won.status != http.StatusCreated {
		t.Fatalf("first checkout: %d %s", won.status, won.body)
	}
	var out placed
	if err := json.Unmarshal(won.body, &out); err != nil {
		t.Fatal(err)
	}
	if out.Order.OrderNumber != "ORD-000001" {
		t.Errorf("201 orderNumber = %q, want ORD-000001", out.Order.OrderNumber)
	}
	var got struct{ OrderNumber string }
	if st := b.call(t, http.MethodGet, "/v1/orders/"+out.Order.ID, customer, nil, &got); st != http.StatusOK || got.OrderNumber != out.Order.OrderNumber {
		t.Errorf("GET order: %d %q, want %q", st, got.OrderNumber, out.Order.OrderNumber)
	}
	if n := fake.IntentCount(); n != 1 {
		t.Errorf("intents = %d, want 1", n)
	}
}

// TestOrderNumbersGapFreeAcrossInstances: many customers check out at
// once through two instances, some of them refused for stock; the
// numbers the 201s carry are exactly ORD-000001..ORD-00000n.
func TestOrderNumbersGapFreeAcrossInstances(t *testing.T) {
	t.Parallel()
	fake := stripefake.New(t)
	env := shopEnv(t, fake.URL, "whsec_attack_test", map[string]string{"REGISTRATIONS_PER_IP_PER_HOUR": "0"})
	a, b := start(t, env), start(t, env)
	admin := a.token(t, "boss@example.com", "bootstrap-password")
	var p struct{ ID string }
	const n, stock = 24, 16
	if st := a.call(t, http.MethodPost, "/v1/products", admin, map[string]any{"sku": "ATK-2", "name": "Kettle", "priceCents": 2500, "stock": stock}, &p); st != http.StatusCreated {
		t.Fatalf("create product: %d", st)
	}
	tokens := make([]string, n)
	for i := range tokens {
		email := fmt.Sprintf("c%d@example.com", i)
		reg := map[string]any{"email": email, "password": "a-long-password", "firstName": "C", "lastName": "D"}
		if st := a.call(t, http.MethodPost, "/v1/auth/register", "", reg, nil); st != http.StatusCreated {
			t.Fatalf("register: %d", st)
		}
		tokens[i] = a.token(t, email, "a-long-password")
		if st := a.call(t, http.MethodPost, "/v1/cart/items", tokens[i], map[string]any{"productId": p.ID, "quantity": 1}, nil); st != http.StatusCreated {
			t.Fatalf("add to cart: %d", st)
		}
	}
	var mu sync.Mutex
	var numbers []string
	var wg sync.WaitGroup
	for i, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := []*server{a, b}[i%2]
			addr := map[string]any{"firstName": "C", "lastName": "D", "line1": "1 Road", "city": "X", "postalCode": "N1", "country": "GB"}
			var out placed
			h := map[string]string{"Idempotency-Key": uuid.NewString()}
			switch st := shoptest.Call(t, s.base, http.MethodPost, "/v1/checkout", tok, h, map[string]any{"shippingAddress": addr}, &out); st {
			case http.StatusCreated:
				mu.Lock()
				numbers = append(numbers, out.Order.OrderNumber)
				mu.Unlock()
			case http.StatusConflict:
			default:
				t.Errorf("checkout: %d", st)
			}
		}()
	}
	wg.Wait()
	sort.Strings(numbers)
	if len(numbers) != stock {
		t.Fatalf("%d orders placed, want %d", len(numbers), stock)
	}
	for i, got := range numbers {
		if want := fmt.Sprintf("ORD-%06d", i+1); got != want {
			t.Fatalf("order numbers %v: #%d is %s, want %s", numbers, i, got, want)
		}
	}
}
