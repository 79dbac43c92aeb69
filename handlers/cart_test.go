package handlers_test

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/google/uuid"
	"github.com/oapi-codegen/nullable"

	"github.com/shopd/shopd/gen"
)

// cartOf decodes a Cart response after checking its status.
func cartOf(t *testing.T, r *resp, status int) gen.Cart {
	t.Helper()
	var c gen.Cart
	r.want(t, status).decode(t, &c)
	return c
}

// cartQuantities maps product id to quantity.
func cartQuantities(c gen.Cart) map[string]int32 {
	m := map[string]int32{}
	for _, it := range c.Items {
		m[it.ProductId] = it.Quantity
	}
	return m
}

func addToCart(productID string, qty int) map[string]any {
	return map[string]any{"productId": productID, "quantity": qty}
}

func TestCartFlow(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	customer, _ := a.customer(t)
	shirt := a.product(t, admin, map[string]any{"priceCents": 2500})
	mug := a.product(t, admin, map[string]any{"priceCents": 1200})

	c := cartOf(t, a.do(t, http.MethodGet, "/v1/cart", customer, nil), http.StatusOK)
	if len(c.Items) != 0 || c.SubtotalCents != 0 || c.Currency != "usd" || !c.UpdatedAt.IsNull() {
		t.Fatalf("new cart = %+v, want empty usd with updatedAt null", c)
	}

	cartOf(t, a.do(t, http.MethodPost, "/v1/cart/items", customer, addToCart(shirt.Id, 2)), http.StatusCreated)
	cartOf(t, a.do(t, http.MethodPost, "/v1/cart/items", customer, addToCart(mug.Id, 1)), http.StatusCreated)
	c = cartOf(t, a.do(t, http.MethodPost, "/v1/cart/items", customer, addToCart(shirt.Id, 1)), http.StatusCreated)
	want := gen.CartItem{ProductId: shirt.Id, Sku: shirt.Sku, Name: shirt.Name, PriceCents: 2500, Quantity: 3, LineTotalCents: 7500,
		Available: true, ImageUrl: nullable.NewNullNullable[string]()}
	if len(c.Items) != 2 || !reflect.DeepEqual(c.Items[0], want) || c.Items[1].ProductId != mug.Id {
		t.Fatalf("items = %+v, want merged shirt line %+v then mug", c.Items, want)
	}
	if c.SubtotalCents != 7500+1200 || c.UpdatedAt.IsNull() {
		t.Errorf("subtotal %d updatedAt %v", c.SubtotalCents, c.UpdatedAt)
	}

	a.do(t, http.MethodPatch, "/v1/products/"+shirt.Id, admin, map[string]any{"priceCents": 3000}).want(t, http.StatusOK)
	c = cartOf(t, a.do(t, http.MethodGet, "/v1/cart", customer, nil), http.StatusOK)
	if it := c.Items[0]; it.PriceCents != 3000 || it.LineTotalCents != 9000 || c.SubtotalCents != 9000+1200 {
		t.Fatalf("after the price change: %+v, want the live price 3000", c)
	}

	c = cartOf(t, a.do(t, http.MethodPut, "/v1/cart/items/"+mug.Id, customer, map[string]any{"quantity": 5}), http.StatusOK)
	if q := cartQuantities(c); q[mug.Id] != 5 || c.SubtotalCents != 9000+6000 {
		t.Fatalf("after PUT: %+v", c)
	}

	c = cartOf(t, a.do(t, http.MethodDelete, "/v1/cart/items/"+shirt.Id, customer, nil), http.StatusOK)
	if len(c.Items) != 1 || c.Items[0].ProductId != mug.Id || c.SubtotalCents != 6000 {
		t.Fatalf("after DELETE line: %+v", c)
	}
	expectProblem(t, a.do(t, http.MethodDelete, "/v1/cart/items/"+shirt.Id, customer, nil), http.StatusNotFound)
	expectProblem(t, a.do(t, http.MethodPut, "/v1/cart/items/"+shirt.Id, customer, map[string]any{"quantity": 1}), http.StatusNotFound)

	c = cartOf(t, a.do(t, http.MethodDelete, "/v1/cart", customer, nil), http.StatusOK)
	if len(c.Items) != 0 || c.SubtotalCents != 0 || c.UpdatedAt.IsNull() {
		t.Fatalf("after clear: %+v, want empty with updatedAt set", c)
	}
	again := cartOf(t, a.do(t, http.MethodDelete, "/v1/cart", customer, nil), http.StatusOK)
	if !again.UpdatedAt.MustGet().Equal(c.UpdatedAt.MustGet()) || len(again.Items) != 0 {
		t.Errorf("clearing an empty cart changed it: %+v then %+v", c, again)
	}
}

func TestCartNeedsAToken(t *testing.T) {
	t.Parallel()
	a := setup(t)
	id := uuid.NewString()
	for _, tc := range []struct {
		name, method, path string
		body               any
	}{
		{"get cart", http.MethodGet, "/v1/cart", nil},
		{"clear cart", http.MethodDelete, "/v1/cart", nil},
		{"add item", http.MethodPost, "/v1/cart/items", addToCart(id, 1)},
		{"set quantity", http.MethodPut, "/v1/cart/items/" + id, map[string]any{"quantity": 1}},
		{"remove item", http.MethodDelete, "/v1/cart/items/" + id, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectProblem(t, a.do(t, tc.method, tc.path, "", tc.body), http.StatusUnauthorized)
			expectProblem(t, a.do(t, tc.method, tc.path, "not-a-jwt", tc.body), http.StatusUnauthorized)
		})
	}
}

func TestCartIsTheCallersOwn(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	alice, _ := a.customer(t)
	bob, _ := a.customer(t)
	p := a.product(t, admin, nil)
	q := a.product(t, admin, nil)

	cartOf(t, a.do(t, http.MethodPost, "/v1/cart/items", alice, addToCart(p.Id, 4)), http.StatusCreated)

	if c := cartOf(t, a.do(t, http.MethodGet, "/v1/cart", bob, nil), http.StatusOK); len(c.Items) != 0 || !c.UpdatedAt.IsNull() {
		t.Fatalf("bob sees %+v, want his own empty cart", c)
	}
	expectProblem(t, a.do(t, http.MethodPut, "/v1/cart/items/"+p.Id, bob, map[string]any{"quantity": 9}), http.StatusNotFound)
	expectProblem(t, a.do(t, http.MethodDelete, "/v1/cart/items/"+p.Id, bob, nil), http.StatusNotFound)
	cartOf(t, a.do(t, http.MethodDelete, "/v1/cart", bob, nil), http.StatusOK)
	if c := cartOf(t, a.do(t, http.MethodPost, "/v1/cart/items", bob, addToCart(q.Id, 1)), http.StatusCreated); len(c.Items) != 1 || c.Items[0].ProductId != q.Id {
		t.Fatalf("bob's cart = %+v, want only his line", c)
	}

	c := cartOf(t, a.do(t, http.MethodGet, "/v1/cart", alice, nil), http.StatusOK)
	if got := cartQuantities(c); len(got) != 1 || got[p.Id] != 4 {
		t.Fatalf("alice's cart = %v after bob's requests, want only her 4 of %s", got, p.Id)
	}
}

func TestCartRejectsInvalidRequests(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	customer, _ := a.customer(t)
	p := a.product(t, admin, nil)
	cartOf(t, a.do(t, http.MethodPost, "/v1/cart/items", customer, addToCart(p.Id, 1)), http.StatusCreated)

	for _, tc := range []struct {
		name, method, path string
		body               any
		field              string
	}{
		{"add quantity 0", http.MethodPost, "/v1/cart/items", addToCart(p.Id, 0), "quantity"},
		{"add quantity 100", http.MethodPost, "/v1/cart/items", addToCart(p.Id, 100), "quantity"},
		{"add fractional quantity", http.MethodPost, "/v1/cart/items", map[string]any{"productId": p.Id, "quantity": 1.5}, "quantity"},
		{"add unknown field", http.MethodPost, "/v1/cart/items", map[string]any{"productId": p.Id, "quantity": 1, "priceCents": 1}, ""},
		{"add without productId", http.MethodPost, "/v1/cart/items", map[string]any{"quantity": 1}, ""},
		{"add without body", http.MethodPost, "/v1/cart/items", nil, ""},
		{"set quantity 0", http.MethodPut, "/v1/cart/items/" + p.Id, map[string]any{"quantity": 0}, "quantity"},
		{"set quantity 100", http.MethodPut, "/v1/cart/items/" + p.Id, map[string]any{"quantity": 100}, "quantity"},
		{"set unknown field", http.MethodPut, "/v1/cart/items/" + p.Id, map[string]any{"quantity": 1, "note": "x"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prob := expectProblem(t, a.do(t, tc.method, tc.path, customer, tc.body), http.StatusBadRequest)
			if len(prob.Errors) == 0 {
				t.Errorf("problem has no errors: %+v", prob)
			}
			if tc.field != "" && !prob.hasFieldError(tc.field) {
				t.Errorf("errors %+v do not name %q", prob.Errors, tc.field)
			}
		})
	}
	if q := cartQuantities(cartOf(t, a.do(t, http.MethodGet, "/v1/cart", customer, nil), http.StatusOK)); q[p.Id] != 1 || len(q) != 1 {
		t.Errorf("rejected requests changed the cart: %v", q)
	}
}

func TestCartAddUnknownProductIs404(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	customer, _ := a.customer(t)
	archived := a.product(t, admin, map[string]any{"isActive": false})
	for name, id := range map[string]string{
		"unknown":   uuid.NewString(),
		"malformed": "not-a-product",
		"archived":  archived.Id,
	} {
		t.Run(name, func(t *testing.T) {
			expectProblem(t, a.do(t, http.MethodPost, "/v1/cart/items", customer, addToCart(id, 1)), http.StatusNotFound)
		})
	}
	if c := cartOf(t, a.do(t, http.MethodGet, "/v1/cart", customer, nil), http.StatusOK); len(c.Items) != 0 || !c.UpdatedAt.IsNull() {
		t.Errorf("refused additions changed the cart: %+v", c)
	}
}

func TestCartAddConflicts(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	customer, _ := a.customer(t)
	usd := a.product(t, admin, nil)
	eur := a.product(t, admin, map[string]any{"currency": "eur"})

	before := cartOf(t, a.do(t, http.MethodPost, "/v1/cart/items", customer, addToCart(usd.Id, 98)), http.StatusCreated)
	expectProblem(t, a.do(t, http.MethodPost, "/v1/cart/items", customer, addToCart(usd.Id, 2)), http.StatusConflict)
	expectProblem(t, a.do(t, http.MethodPost, "/v1/cart/items", customer, addToCart(eur.Id, 1)), http.StatusConflict)

	after := cartOf(t, a.do(t, http.MethodGet, "/v1/cart", customer, nil), http.StatusOK)
	if q := cartQuantities(after); len(q) != 1 || q[usd.Id] != 98 || !after.UpdatedAt.MustGet().Equal(before.UpdatedAt.MustGet()) {
		t.Fatalf("refused additions changed the cart: %+v, want %+v", after, before)
	}
	c := cartOf(t, a.do(t, http.MethodPost, "/v1/cart/items", customer, addToCart(usd.Id, 1)), http.StatusCreated)
	if q := cartQuantities(c); q[usd.Id] != 99 {
		t.Errorf("98 + 1 = %d, want 99", q[usd.Id])
	}
}

func TestCartKeepsArchivedProducts(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	customer, _ := a.customer(t)
	p := a.product(t, admin, map[string]any{"priceCents": 700})
	cartOf(t, a.do(t, http.MethodPost, "/v1/cart/items", customer, addToCart(p.Id, 2)), http.StatusCreated)
	a.do(t, http.MethodDelete, "/v1/products/"+p.Id, admin, nil).want(t, http.StatusOK)

	expectProblem(t, a.do(t, http.MethodPost, "/v1/cart/items", customer, addToCart(p.Id, 1)), http.StatusNotFound)
	c := cartOf(t, a.do(t, http.MethodGet, "/v1/cart", customer, nil), http.StatusOK)
	if len(c.Items) != 1 || c.Items[0].Quantity != 2 || c.SubtotalCents != 1400 {
		t.Fatalf("cart = %+v, want the archived line kept until checkout or removal", c)
	}
	cartOf(t, a.do(t, http.MethodDelete, "/v1/cart/items/"+p.Id, customer, nil), http.StatusOK)
}
