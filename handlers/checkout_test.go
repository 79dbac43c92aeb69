package handlers_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/handlers"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/store"
)

// TestCheckoutOversellRace: 40 buyers race for 10 units, five times over.
// Exactly 10 win each round, the rest get 409 naming the product, and
// stock, orders and ledger agree.
func TestCheckoutOversellRace(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	const buyers, units, rounds = 40, 10, 5
	customers := make([]account, buyers)
	for i := range customers {
		customers[i] = s.newCustomer(t)
	}
	for round := range rounds {
		p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: 1500, Stock: new(units)})
		reqs := make([]*http.Request, buyers)
		for i, c := range customers {
			s.fillCart(t, c.token, line{p.ID, 1})
			reqs[i] = s.checkoutRequest(t, c.token, newKey(), checkoutBody())
		}
		res := s.sendAll(t, 60*time.Second, reqs)

		orderIDs := map[string]bool{}
		var loser int
		for i, r := range res {
			switch r.status {
			case http.StatusCreated:
				var out gen.CheckoutResult
				r.decode(t, &out)
				if out.Order.CustomerId != customers[i].id || len(out.Order.Items) != 1 || out.Order.Items[0].Quantity != 1 {
					t.Errorf("round %d: buyer %d got order %+v", round, i, out.Order)
				}
				if !strings.HasPrefix(out.Payment.PaymentIntentId, "pi_") || out.Payment.ClientSecret == "" {
					t.Errorf("round %d: buyer %d got payment %+v", round, i, out.Payment)
				}
				orderIDs[out.Order.Id] = true
			case http.StatusConflict:
				loser = i
				if pr := expectProblem(t, r, http.StatusConflict); !strings.Contains(pr.Detail, p.SKU) {
					t.Errorf("round %d: 409 does not name the SKU %s: %q", round, p.SKU, pr.Detail)
				}
			default:
				t.Errorf("round %d: buyer %d: status %d: %s", round, i, r.status, r.body)
			}
		}
		if c := statusCounts(res); c[http.StatusCreated] != units || c[http.StatusConflict] != buyers-units {
			t.Fatalf("round %d: statuses %v, want %d x 201 and %d x 409", round, c, units, buyers-units)
		}
		if len(orderIDs) != units {
			t.Errorf("round %d: %d distinct orders in the answers, want %d", round, len(orderIDs), units)
		}
		if st := s.dbStock(t, p.ID); st != 0 {
			t.Errorf("round %d: stock = %d, want 0", round, st)
		}
		var inDB int
		if err := s.Store.DB().Get(&inDB, `SELECT count(DISTINCT order_id) FROM order_items WHERE product_id = $1`, p.ID); err != nil {
			t.Fatal(err)
		}
		if inDB != units {
			t.Errorf("round %d: %d orders in the database, want %d", round, inDB, units)
		}
		types := s.ledgerCheck(t, p.ID)
		if types["sale"] != units || types["restock"] != 1 || len(types) != 2 {
			t.Errorf("round %d: ledger rows by type %v, want %d sales and the opening restock", round, types, units)
		}
		// A refused checkout changed nothing: the loser's cart still holds the line.
		c := cartOf(t, s.do(t, http.MethodGet, "/v1/cart", customers[loser].token, nil), http.StatusOK)
		if q := cartQuantities(c); q[p.ID] != 1 {
			t.Errorf("round %d: loser's cart = %+v, want the line kept", round, c.Items)
		}
	}
	// Numbers are assigned at commit: 50 orders, no gaps despite 150 refusals.
	var numbers []int64
	if err := s.Store.DB().Select(&numbers, `SELECT order_number FROM orders ORDER BY order_number`); err != nil {
		t.Fatal(err)
	}
	for i, n := range numbers {
		if n != int64(i+1) {
			t.Fatalf("order numbers %v have a gap at %d", numbers, i+1)
		}
	}
	if len(numbers) != units*rounds {
		t.Errorf("%d orders, want %d", len(numbers), units*rounds)
	}
	if n := s.fake.IntentCount(); n != units*rounds {
		t.Errorf("PaymentIntents at Stripe = %d, want %d", n, units*rounds)
	}
}

// TestCheckoutSameKeyConcurrent: 20 requests with one key make one order
// and one PaymentIntent; every replay is the first answer.
func TestCheckoutSameKeyConcurrent(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	c := s.newCustomer(t)
	p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: 2500, Stock: new(50)})
	s.fillCart(t, c.token, line{p.ID, 2})
	key := newKey()

	const n = 20
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = s.checkoutRequest(t, c.token, key, checkoutBody())
	}
	res := s.sendAll(t, 60*time.Second, reqs)

	var first *resp
	var replays []*resp
	for i, r := range res {
		switch r.status {
		case http.StatusCreated:
			if first != nil {
				t.Errorf("a second 201 (request %d)", i)
			}
			first = r
		case http.StatusOK:
			replays = append(replays, r)
		case http.StatusConflict:
			expectProblem(t, r, http.StatusConflict)
			if ra := retryAfter(r); ra < 1 {
				t.Errorf("409 without a usable Retry-After (%q): %s", r.header.Get("Retry-After"), r.body)
			}
		default:
			t.Errorf("request %d: status %d: %s", i, r.status, r.body)
		}
	}
	if first == nil {
		t.Fatalf("no 201 among %v", statusCounts(res))
	}
	for _, r := range replays {
		if !bytes.Equal(r.body, first.body) {
			t.Errorf("replay differs from the first answer, byte for byte:\n got %s\nwant %s", r.body, first.body)
		}
	}
	var out gen.CheckoutResult
	first.decode(t, &out)
	orderID := s.onlyOrderOf(t, c.id)
	if out.Order.Id != orderID {
		t.Errorf("201 names order %s, database has %s", out.Order.Id, orderID)
	}
	if in := s.fake.IntentsForOrder(orderID); len(in) != 1 || in[0].ID != out.Payment.PaymentIntentId {
		t.Errorf("intents for the order = %+v, want exactly the one answered (%s)", in, out.Payment.PaymentIntentId)
	}
	if n := s.fake.IntentCount(); n != 1 {
		t.Errorf("PaymentIntents at Stripe = %d, want 1", n)
	}
	if st := s.dbStock(t, p.ID); st != 48 {
		t.Errorf("stock = %d, want 48 (taken once)", st)
	}

	// Later, after the order moved on (paid), the same again: 200 with the
	// same body, byte for byte.
	s.pay(t, out)
	r := s.checkout(t, c.token, key).want(t, http.StatusOK)
	if !bytes.Equal(r.body, first.body) {
		t.Errorf("late replay differs:\n got %s\nwant %s", r.body, first.body)
	}
	// Same key, another body: 422, nothing new.
	other := map[string]any{"shippingAddress": testAddress("Paris")}
	expectProblem(t, s.send(t, s.checkoutRequest(t, c.token, key, other)), http.StatusUnprocessableEntity)
	// The billing address defaulting to the shipping one is the same request.
	same := map[string]any{"shippingAddress": testAddress("London"), "billingAddress": testAddress("London")}
	s.send(t, s.checkoutRequest(t, c.token, key, same)).want(t, http.StatusOK)
	if ids := s.ordersOf(t, c.id); len(ids) != 1 {
		t.Errorf("orders after replays = %d, want 1", len(ids))
	}

	// Keys are per user: another customer's identical key is a new checkout.
	d := s.newCustomer(t)
	s.fillCart(t, d.token, line{p.ID, 1})
	var theirs gen.CheckoutResult
	s.checkout(t, d.token, key).want(t, http.StatusCreated).decode(t, &theirs)
	if theirs.Order.Id == out.Order.Id || theirs.Order.CustomerId != d.id || theirs.Payment.PaymentIntentId == out.Payment.PaymentIntentId {
		t.Errorf("another customer's checkout with the same key = %+v", theirs)
	}

	// No key: 400.
	pr := expectProblem(t, s.checkout(t, d.token, ""), http.StatusBadRequest)
	if !pr.hasFieldError("Idempotency-Key") {
		t.Errorf("400 does not name Idempotency-Key: %+v", pr)
	}

	// Keys are 1..255 characters.
	pr = expectProblem(t, s.checkout(t, d.token, strings.Repeat("k", 256)), http.StatusBadRequest)
	if !pr.hasFieldError("Idempotency-Key") {
		t.Errorf("400 for a 256-character key does not name Idempotency-Key: %+v", pr)
	}
	s.fillCart(t, d.token, line{p.ID, 1})
	s.checkout(t, d.token, strings.Repeat("k", 255)).want(t, http.StatusCreated)

	// An empty cart is 400 and does not use the key up.
	e := s.newCustomer(t)
	ekey := newKey()
	expectProblem(t, s.checkout(t, e.token, ekey), http.StatusBadRequest)
	if st := s.keyState(t, e.id, ekey); st != "" {
		t.Errorf("key after an empty-cart checkout is %q, want none (reusable)", st)
	}
	s.fillCart(t, e.token, line{p.ID, 1})
	s.checkout(t, e.token, ekey).want(t, http.StatusCreated)
}

// TestCheckoutNoDeadlock: 30 concurrent multi-line checkouts over 5
// products, lines added in random order, finish without a 5xx, and stock
// is conserved product by product.
func TestCheckoutNoDeadlock(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	const products, buyers, initial = 5, 30, 60
	ps := make([]store.Product, products)
	for i := range ps {
		ps[i] = shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: int64(1000 + 100*i), Stock: new(initial)})
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	customers := make([]account, buyers)
	carts := make([]map[string]int, buyers)
	reqs := make([]*http.Request, buyers)
	for i := range customers {
		customers[i] = s.newCustomer(t)
		var lines []line
		carts[i] = map[string]int{}
		for _, k := range rng.Perm(products)[:2+rng.IntN(products-1)] {
			q := 1 + rng.IntN(3)
			lines = append(lines, line{ps[k].ID, q})
			carts[i][ps[k].ID] = q
		}
		s.fillCart(t, customers[i].token, lines...)
		reqs[i] = s.checkoutRequest(t, customers[i].token, newKey(), checkoutBody())
	}
	res := s.sendAll(t, 90*time.Second, reqs)

	ordered := map[string]int{}
	var placed int
	for i, r := range res {
		switch r.status {
		case http.StatusCreated:
			placed++
			var out gen.CheckoutResult
			r.decode(t, &out)
			got := map[string]int{}
			for _, it := range out.Order.Items {
				got[it.ProductId] += int(it.Quantity)
				ordered[it.ProductId] += int(it.Quantity)
			}
			if !reflect.DeepEqual(got, carts[i]) {
				t.Errorf("buyer %d: order lines %v, cart was %v", i, got, carts[i])
			}
		case http.StatusConflict:
			expectProblem(t, r, http.StatusConflict)
		default:
			t.Errorf("buyer %d: status %d: %s", i, r.status, r.body)
		}
	}
	if placed == 0 {
		t.Fatal("no checkout succeeded")
	}
	for _, p := range ps {
		final := s.dbStock(t, p.ID)
		if initial != final+ordered[p.ID] {
			t.Errorf("%s: initial %d != final %d + ordered %d", p.SKU, initial, final, ordered[p.ID])
		}
		types := s.ledgerCheck(t, p.ID)
		var orders int
		if err := s.Store.DB().Get(&orders, `SELECT count(*) FROM order_items WHERE product_id = $1`, p.ID); err != nil {
			t.Fatal(err)
		}
		if types["sale"] != orders {
			t.Errorf("%s: %d sale rows for %d order lines", p.SKU, types["sale"], orders)
		}
	}
	var n int
	if err := s.Store.DB().Get(&n, `SELECT count(*) FROM orders`); err != nil {
		t.Fatal(err)
	}
	if n != placed {
		t.Errorf("%d orders in the database, %d answered 201", n, placed)
	}
}

// TestCheckoutLeaseTakenOverAfterExpiry: a checkout in flight holds a
// lease on its key; while it is live a retry gets 409 with Retry-After.
// When its holder dies (it stops renewing), the lease runs out and the
// next retry takes the key over and finishes the checkout, once.
func TestCheckoutLeaseTakenOverAfterExpiry(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	c := s.newCustomer(t)
	p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{Stock: new(5)})
	s.fillCart(t, c.token, line{p.ID, 1})
	key := newKey()

	// The first attempt stops after its order transaction (as a process
	// dying there would); "another instance" then takes the key's lease.
	s.crash.Arm("order_created", 1)
	expectProblem(t, s.checkout(t, c.token, key), http.StatusInternalServerError)
	if _, err := s.Store.DB().Exec(`UPDATE idempotency_keys
		SET lease_owner = gen_random_uuid(), lease_expires_at = now() + interval '1 minute'
		WHERE user_id = $1 AND key = $2`, c.id, key); err != nil {
		t.Fatal(err)
	}
	r := s.checkout(t, c.token, key)
	expectProblem(t, r, http.StatusConflict)
	if retryAfter(r) < 1 {
		t.Errorf("in-flight 409 without Retry-After: %v", r.header)
	}
	if n := s.fake.IntentCount(); n != 0 {
		t.Fatalf("intents = %d while another instance holds the key", n)
	}

	// It dies: nobody renews the lease, which runs out.
	if _, err := s.Store.DB().Exec(`UPDATE idempotency_keys SET lease_expires_at = now() - interval '1 millisecond' WHERE user_id = $1 AND key = $2`, c.id, key); err != nil {
		t.Fatal(err)
	}
	var out gen.CheckoutResult
	s.checkout(t, c.token, key).want(t, http.StatusCreated).decode(t, &out)
	if n := len(s.fake.IntentsForOrder(out.Order.Id)); n != 1 {
		t.Errorf("intents = %d, want 1", n)
	}
	if ids := s.ordersOf(t, c.id); len(ids) != 1 || ids[0] != out.Order.Id {
		t.Errorf("orders = %v, want only %s", ids, out.Order.Id)
	}
	var replay gen.CheckoutResult
	s.checkout(t, c.token, key).want(t, http.StatusOK).decode(t, &replay)
	if replay.Order.Id != out.Order.Id {
		t.Errorf("replay answered order %s, want %s", replay.Order.Id, out.Order.Id)
	}
	if st := s.dbStock(t, p.ID); st != 4 {
		t.Errorf("stock = %d, want 4", st)
	}
}

// TestCheckoutTotals: tax 10% rounded half up, shipping free only over
// 100.00, and a custom Pricing from the config.
func TestCheckoutTotals(t *testing.T) {
	t.Parallel()
	type want struct{ subtotal, tax, shipping, total int64 }
	run := func(t *testing.T, s *shop, lines []map[string]any, w want) {
		t.Helper()
		c := s.newCustomer(t)
		var ls []line
		for _, l := range lines {
			p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: int64(l["price"].(int)), Stock: new(20)})
			ls = append(ls, line{p.ID, l["qty"].(int)})
		}
		out := s.placeOrder(t, c, ls...)
		o := out.Order
		got := want{o.SubtotalCents, o.TaxCents, o.ShippingCents, o.TotalCents}
		if got != w || o.DiscountCents != 0 {
			t.Errorf("totals = %+v (discount %d), want %+v", got, o.DiscountCents, w)
		}
		if in := s.fake.IntentsForOrder(o.Id); len(in) != 1 || in[0].Amount != w.total {
			t.Errorf("intent amount = %+v, want %d", in, w.total)
		}
		if s := s.storedOrder(t, o.Id); s.TotalCents != w.total {
			t.Errorf("stored total %d", s.TotalCents)
		}
	}
	t.Run("default", func(t *testing.T) {
		t.Parallel()
		s := newShop(t)
		// 2 x 4500 + 2300 = 11300: over 100.00, ships free.
		run(t, s, []map[string]any{{"price": 4500, "qty": 2}, {"price": 2300, "qty": 1}}, want{11300, 1130, 0, 12430})
		run(t, s, []map[string]any{{"price": 2500, "qty": 2}}, want{5000, 500, 1000, 6500})
		// Exactly 100.00 is not over it.
		run(t, s, []map[string]any{{"price": 10000, "qty": 1}}, want{10000, 1000, 1000, 12000})
		// 100.5 rounds half up to 101; 100.4 down to 100.
		run(t, s, []map[string]any{{"price": 1005, "qty": 1}}, want{1005, 101, 1000, 2106})
		run(t, s, []map[string]any{{"price": 1004, "qty": 1}}, want{1004, 100, 1000, 2104})
	})
	t.Run("custom pricing", func(t *testing.T) {
		t.Parallel()
		s := newShop(t, func(cfg *handlers.Config) {
			cfg.Orders.Pricing = shopd.Pricing{TaxRateBPS: 825, ShippingFlatCents: 599, FreeShippingOverCents: 20000}
		})
		// 11300 * 8.25% = 932.25 -> 932; not over 200.00 -> 599 shipping.
		run(t, s, []map[string]any{{"price": 4500, "qty": 2}, {"price": 2300, "qty": 1}}, want{11300, 932, 599, 12831})
		// 25000 * 8.25% = 2062.5 -> 2063; free shipping.
		run(t, s, []map[string]any{{"price": 12500, "qty": 2}}, want{25000, 2063, 0, 27063})
	})
}

// TestCheckoutBurstWithProductionPool: store.Open caps the pool at 40
// connections. A burst of more checkouts than the pool holds must still
// complete (and not wedge every other request).
func TestCheckoutBurstWithProductionPool(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{Stock: new(100)})
	const buyers = 60
	reqs := make([]*http.Request, buyers)
	for i := range reqs {
		c := s.newCustomer(t)
		s.fillCart(t, c.token, line{p.ID, 1})
		reqs[i] = s.checkoutRequest(t, c.token, newKey(), checkoutBody())
	}
	s.Store.DB().SetMaxOpenConns(store.DefaultMaxConns) // as store.Open configures it
	start := time.Now()
	res := s.sendAll(t, 15*time.Second, reqs)
	if c := statusCounts(res); c[http.StatusCreated] != buyers {
		t.Errorf("statuses %v after %v, want %d x 201 (0 means the requests hung: pool deadlock)",
			c, time.Since(start).Round(time.Millisecond), buyers)
	}
	if st := s.dbStock(t, p.ID); st != 100-statusCounts(res)[http.StatusCreated] {
		t.Errorf("stock = %d", st)
	}
}

// TestCheckoutRefusalsChangeNothing: a short or archived line refuses the
// whole checkout naming the product, takes no stock, keeps the cart, leaves
// the key reusable and burns no order number.
func TestCheckoutRefusalsChangeNothing(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	c := s.newCustomer(t)
	a := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: 1000, Stock: new(10)})
	b := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: 2000, Stock: new(1)})
	key := newKey()
	unchanged := func(t *testing.T, stockA, stockB int, cart map[string]int32) {
		t.Helper()
		if sa, sb := s.dbStock(t, a.ID), s.dbStock(t, b.ID); sa != stockA || sb != stockB {
			t.Errorf("stock = %d/%d, want %d/%d", sa, sb, stockA, stockB)
		}
		if ids := s.ordersOf(t, c.id); len(ids) != 0 {
			t.Errorf("orders = %v, want none", ids)
		}
		if q := cartQuantities(cartOf(t, s.do(t, http.MethodGet, "/v1/cart", c.token, nil), http.StatusOK)); !reflect.DeepEqual(q, cart) {
			t.Errorf("cart = %v, want %v", q, cart)
		}
		if k := s.keyState(t, c.id, key); k != "" {
			t.Errorf("key is %q after a refusal, want it free", k)
		}
		if n := s.fake.IntentCount(); n != 0 {
			t.Errorf("intents = %d", n)
		}
	}

	s.fillCart(t, c.token, line{a.ID, 2}, line{b.ID, 2})
	pr := expectProblem(t, s.checkout(t, c.token, key), http.StatusConflict)
	if !strings.Contains(pr.Detail, b.SKU) || strings.Contains(pr.Detail, a.SKU) {
		t.Errorf("short stock 409 = %q, want it to name %s only", pr.Detail, b.SKU)
	}
	unchanged(t, 10, 1, map[string]int32{a.ID: 2, b.ID: 2})

	s.do(t, http.MethodPut, "/v1/cart/items/"+b.ID, c.token, map[string]any{"quantity": 1}).want(t, http.StatusOK)
	s.do(t, http.MethodDelete, "/v1/products/"+a.ID, s.admin, nil).want(t, http.StatusOK)
	pr = expectProblem(t, s.checkout(t, c.token, key), http.StatusConflict)
	if !strings.Contains(pr.Detail, a.SKU) {
		t.Errorf("archived product 409 = %q, want it to name %s", pr.Detail, a.SKU)
	}
	unchanged(t, 10, 1, map[string]int32{a.ID: 2, b.ID: 1})

	s.do(t, http.MethodDelete, "/v1/cart/items/"+a.ID, c.token, nil).want(t, http.StatusOK)
	var out gen.CheckoutResult
	s.checkout(t, c.token, key).want(t, http.StatusCreated).decode(t, &out)
	if out.Order.OrderNumber != "ORD-000001" {
		t.Errorf("first order is %s, want ORD-000001 (refusals must not burn numbers)", out.Order.OrderNumber)
	}
	if st := s.dbStock(t, b.ID); st != 0 {
		t.Errorf("stock of %s = %d, want 0", b.SKU, st)
	}
	if c := cartOf(t, s.do(t, http.MethodGet, "/v1/cart", c.token, nil), http.StatusOK); len(c.Items) != 0 {
		t.Errorf("cart after checkout = %+v, want empty", c.Items)
	}
}

// TestCheckoutResumeRacesCancel: a retry is finishing an abandoned checkout
// when the owner cancels the order, releasing its stock, right after Stripe
// created the intent and before it is attached. The cancelled order must not
// come out of the retry payable: no 2xx with its client secret, no live
// intent on it.
func TestCheckoutResumeRacesCancel(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	c := s.newCustomer(t)
	p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{Stock: new(5)})
	s.fillCart(t, c.token, line{p.ID, 2})
	key := newKey()
	s.crash.Arm("order_created", 1)
	expectProblem(t, s.checkout(t, c.token, key), http.StatusInternalServerError)
	id := s.onlyOrderOf(t, c.id)

	var cancelled *resp
	s.crash.OnNext("intent_created", func() {
		r, err := s.roundTrip(t, s.request(t, http.MethodPost, "/v1/orders/"+id+"/cancel", c.token, nil))
		if err != nil {
			t.Errorf("cancel: %v", err)
			r = &resp{}
		}
		cancelled = r
	})
	r := s.checkout(t, c.token, key)
	if cancelled == nil || cancelled.status != http.StatusOK {
		t.Fatalf("the owner's cancel between the phases did not go through: %+v", cancelled)
	}

	o := s.storedOrder(t, id)
	if o.Status != "cancelled" || s.dbStock(t, p.ID) != 5 {
		t.Fatalf("order %s, stock %d: the cancellation did not hold", o.Status, s.dbStock(t, p.ID))
	}
	if r.status == http.StatusCreated || r.status == http.StatusOK {
		t.Errorf("the retry answered %d with a payable intent for the cancelled order: %s", r.status, r.body)
	}
	if r.status == http.StatusConflict {
		number := s.order(t, c.token, id).OrderNumber
		if pr := expectProblem(t, r, http.StatusConflict); !strings.Contains(pr.Detail, number) {
			t.Errorf("409 = %q, want it to name the cancelled order %s", pr.Detail, number)
		}
	}
	for _, in := range s.fake.IntentsForOrder(id) {
		if o.PaymentIntentID != nil && *o.PaymentIntentID == in.ID && in.Status != "canceled" {
			t.Errorf("cancelled order %s carries live PaymentIntent %s (%s): it can still be paid", id, in.ID, in.Status)
		}
		if in.Status != "canceled" {
			t.Errorf("the intent %s made for the cancelled order is still %s at Stripe: it can be paid", in.ID, in.Status)
		}
	}
	// Whatever the retry left, the reconciler must not make it payable either.
	s.clock.Advance(time.Minute)
	s.Orders.Reconcile(context.Background())
	if o := s.storedOrder(t, id); o.PaymentIntentID != nil && r.status >= 300 {
		t.Errorf("the reconciler attached %s to the cancelled order", *o.PaymentIntentID)
	}
	later := s.checkout(t, c.token, key)
	if later.status == http.StatusOK || later.status == http.StatusCreated {
		t.Errorf("a later replay answers %d with the cancelled order's payment", later.status)
	}
	// A refusal is recorded: every replay is the same problem.
	if r.status == http.StatusConflict {
		first, again := expectProblem(t, r, http.StatusConflict), expectProblem(t, later, http.StatusConflict)
		if again.Type != first.Type || again.Detail != first.Detail {
			t.Errorf("replayed refusal %s %q, first %s %q", again.Type, again.Detail, first.Type, first.Detail)
		}
	}
}

// bigCart fills the customer's cart with 3 products x 99 units at
// $1,000,000 (the largest price), plus one small line, and returns the
// products and the cart as the API shows it.
func (s *shop) bigCart(t *testing.T, c account) ([]store.Product, *resp) {
	t.Helper()
	var ps []store.Product
	var lines []line
	for range 3 {
		p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: 100_000_000, Stock: new(500)})
		ps = append(ps, p)
		lines = append(lines, line{p.ID, 99})
	}
	small := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: 1500, Stock: new(10)})
	ps = append(ps, small)
	s.fillCart(t, c.token, append(lines, line{small.ID, 2})...)
	return ps, s.do(t, http.MethodGet, "/v1/cart", c.token, nil).want(t, http.StatusOK)
}

// TestCheckoutPermanentRefusal: Stripe refuses the PaymentIntent for good
// (amount_too_large). No order keeps the stock: it is cancelled with its
// events and its stock released in release ledger rows; the cart is as it
// was; the key answers the same refusal on every replay; and the
// reconciler does not keep asking Stripe.
func TestCheckoutPermanentRefusal(t *testing.T) {
	t.Parallel()
	// Lift the shop's own ceiling so that the total reaches Stripe, whose
	// limit (stripefake.MaxAmount) then refuses it.
	s := newShop(t, func(cfg *handlers.Config) { cfg.Orders.MaxChargeCents = 1 << 62 })
	c := s.newCustomer(t)
	ps, before := s.bigCart(t, c)
	key := newKey()

	r := s.checkout(t, c.token, key)
	pr := expectProblem(t, r, http.StatusConflict)
	if !strings.HasSuffix(pr.Type, "/payment_refused") {
		t.Errorf("problem type %s, want .../payment_refused", pr.Type)
	}
	id := s.onlyOrderOf(t, c.id)
	o := s.storedOrder(t, id)
	if !strings.Contains(pr.Detail, o.Number()) || !strings.Contains(pr.Detail, "999,999.99") {
		t.Errorf("detail %q does not name the order %s and Stripe's reason", pr.Detail, o.Number())
	}
	if o.Status != "cancelled" || o.PaymentStatus != "failed" || o.PaymentIntentID != nil {
		t.Errorf("order = %s/%s intent %v, want cancelled/failed without intent", o.Status, o.PaymentStatus, o.PaymentIntentID)
	}
	if evs := eventTypes(s.events(t, s.admin, id)); !reflect.DeepEqual(evs, []string{"placed", "payment_failed", "cancelled"}) {
		t.Errorf("events = %v", evs)
	}
	initial := []int{500, 500, 500, 10}
	for i, p := range ps {
		if st := s.dbStock(t, p.ID); st != initial[i] {
			t.Errorf("%s: stock = %d, want %d (released)", p.SKU, st, initial[i])
		}
		sold, _ := s.ledgerFor(t, p.ID, id, "sale")
		released, units := s.ledgerFor(t, p.ID, id, "release")
		if sold != 1 || released != 1 || units <= 0 {
			t.Errorf("%s: %d sale and %d release rows (%+d units), want 1 and 1", p.SKU, sold, released, units)
		}
		s.ledgerCheck(t, p.ID)
	}
	after := s.do(t, http.MethodGet, "/v1/cart", c.token, nil).want(t, http.StatusOK)
	if !bytes.Equal(after.body, before.body) {
		t.Errorf("cart after the refusal differs from before:\n got %s\nwant %s", after.body, before.body)
	}
	if k := s.keyState(t, c.id, key); k != "finished" {
		t.Errorf("key is %q, want finished", k)
	}

	calls := s.fake.Calls("POST", "/v1/payment_intents")
	again := expectProblem(t, s.checkout(t, c.token, key), http.StatusConflict)
	if again.Type != pr.Type || again.Detail != pr.Detail {
		t.Errorf("replay = %s %q, want %s %q", again.Type, again.Detail, pr.Type, pr.Detail)
	}
	s.clock.Advance(31 * time.Second)
	s.Orders.Reconcile(context.Background())
	if n := s.fake.Calls("POST", "/v1/payment_intents"); n != calls {
		t.Errorf("Stripe was asked %d more times after the refusal", n-calls)
	}
	if n := s.fake.IntentCount(); n != 0 {
		t.Errorf("intents = %d, want 0", n)
	}
	if ids := s.ordersOf(t, c.id); len(ids) != 1 {
		t.Errorf("orders = %d, want the one refused", len(ids))
	}

	// A cart Stripe can take checks out with a new key.
	for _, p := range ps[:3] {
		s.do(t, http.MethodDelete, "/v1/cart/items/"+p.ID, c.token, nil).want(t, http.StatusOK)
	}
	s.checkout(t, c.token, newKey()).want(t, http.StatusCreated)
}

// TestCheckoutOverProviderMaximum: a total above what the payment provider
// takes in one payment is refused before any stock is taken: no order, no
// Stripe call, the cart and the stock as they were, no order number used,
// and the key free for another try.
func TestCheckoutOverProviderMaximum(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	c := s.newCustomer(t)
	ps, before := s.bigCart(t, c)
	key := newKey()

	pr := expectProblem(t, s.checkout(t, c.token, key), http.StatusConflict)
	if !strings.HasSuffix(pr.Type, "/payment_refused") || !strings.Contains(pr.Detail, "999999.99") {
		t.Errorf("problem %s %q, want payment_refused naming the maximum", pr.Type, pr.Detail)
	}
	if ids := s.ordersOf(t, c.id); len(ids) != 0 {
		t.Errorf("orders = %v, want none", ids)
	}
	if n := s.fake.Calls("POST", "/v1/payment_intents"); n != 0 {
		t.Errorf("Stripe was asked %d times", n)
	}
	for i, want := range []int{500, 500, 500, 10} {
		if st := s.dbStock(t, ps[i].ID); st != want {
			t.Errorf("%s: stock = %d, want %d", ps[i].SKU, st, want)
		}
		if types := s.ledgerCheck(t, ps[i].ID); types["sale"] != 0 {
			t.Errorf("%s: %d sale rows", ps[i].SKU, types["sale"])
		}
	}
	if after := s.do(t, http.MethodGet, "/v1/cart", c.token, nil).want(t, http.StatusOK); !bytes.Equal(after.body, before.body) {
		t.Errorf("cart changed:\n got %s\nwant %s", after.body, before.body)
	}
	if k := s.keyState(t, c.id, key); k != "" {
		t.Errorf("key is %q, want it free", k)
	}
	// With the cart cut down, the same key goes through, as order 1.
	s.fillCart(t, c.token, line{ps[3].ID, 1})
	var out gen.CheckoutResult
	s.checkout(t, c.token, key).want(t, http.StatusCreated).decode(t, &out)
	if out.Order.OrderNumber != "ORD-000001" {
		t.Errorf("order number %s, want ORD-000001 (the refusal used none)", out.Order.OrderNumber)
	}
}
