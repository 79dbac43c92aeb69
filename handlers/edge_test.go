package handlers_test

import (
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
	"github.com/lib/pq"

	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/handlers"
	"github.com/shopd/shopd/internal/shoptest"
)

// TestClientIPBehindProxies: X-Forwarded-For is believed only from a
// configured proxy. Seen through the search quota (1 per hour per IP).
func TestClientIPBehindProxies(t *testing.T) {
	t.Parallel()
	search := func(a *api, xff string) int {
		req := a.request(t, http.MethodGet, "/v1/products?q=anything", "", nil)
		req.Header.Set("X-Forwarded-For", xff)
		return a.send(t, req).status
	}

	direct := setup(t, func(c *handlers.Config) { c.SearchesPerHour = 1 })
	if s := search(direct, "203.0.113.1"); s != http.StatusOK {
		t.Fatalf("first search: %d", s)
	}
	// Without a trusted proxy the header is the client's own claim: ignored.
	if s := search(direct, "203.0.113.2"); s != http.StatusTooManyRequests {
		t.Errorf("a spoofed X-Forwarded-For escaped the quota: %d", s)
	}

	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	proxied := setup(t, func(c *handlers.Config) {
		c.SearchesPerHour = 1
		c.TrustedProxies = []*net.IPNet{loopback}
	})
	if s := search(proxied, "203.0.113.1"); s != http.StatusOK {
		t.Fatalf("first client: %d", s)
	}
	if s := search(proxied, "203.0.113.2"); s != http.StatusOK {
		t.Errorf("a second client behind the proxy shares the first's quota: %d", s)
	}
	if s := search(proxied, "203.0.113.1"); s != http.StatusTooManyRequests {
		t.Errorf("the first client's second search: %d, want 429", s)
	}
}

// TestCORS: a browser on another origin may call the API: preflight is
// answered with the headers checkout needs.
func TestCORS(t *testing.T) {
	t.Parallel()
	a := setup(t, func(c *handlers.Config) { c.CORSOrigins = []string{"https://shop.example"} })
	req, err := http.NewRequest(http.MethodOptions, a.URL+"/v1/checkout", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, idempotency-key")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Errorf("preflight status %d, want 204", res.StatusCode)
	}
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != "https://shop.example" {
		t.Errorf("Allow-Origin = %q", got)
	}
	if got := res.Header.Get("Access-Control-Allow-Headers"); got == "" {
		t.Error("no Access-Control-Allow-Headers")
	}
	// An actual request carries the header; another origin gets none.
	get := func(origin string) string {
		req, _ := http.NewRequest(http.MethodGet, a.URL+"/v1/products", nil)
		req.Header.Set("Origin", origin)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.Header.Get("Access-Control-Allow-Origin")
	}
	if got := get("https://shop.example"); got != "https://shop.example" {
		t.Errorf("GET from the allowed origin: Allow-Origin %q", got)
	}
	if got := get("https://evil.example"); got != "" {
		t.Errorf("GET from another origin: Allow-Origin %q, want none", got)
	}
}

// TestRequestIDFromClient: a well-formed X-Request-Id is kept for tracing;
// anything else is replaced by one of ours.
func TestRequestIDFromClient(t *testing.T) {
	t.Parallel()
	a := setup(t)
	for _, tc := range []struct{ sent, want string }{
		{"trace-123.abc", "trace-123.abc"},
		{"<script>alert(1)</script>", ""},
		{strings.Repeat("a", 65), ""},
	} {
		req := a.request(t, http.MethodGet, "/v1/products/nope", "", nil)
		req.Header.Set("X-Request-Id", tc.sent)
		r := a.send(t, req)
		got := r.header.Get("X-Request-Id")
		if tc.want != "" && got != tc.want {
			t.Errorf("sent %q, got %q back", tc.sent, got)
		}
		if tc.want == "" && (got == tc.sent || got == "") {
			t.Errorf("sent %q, got %q back: want a fresh id", tc.sent, got)
		}
		if p := expectProblem(t, r, http.StatusNotFound); p.RequestID != got {
			t.Errorf("problem requestId %q, header %q", p.RequestID, got)
		}
	}
}

// dbFingerprint is one digest per table of the whole database's content, to
// prove that a refused request changed nothing anywhere.
func (a *api) dbFingerprint(t *testing.T) map[string]string {
	t.Helper()
	var tables []string
	if err := a.Store.DB().Select(&tables, `
		SELECT table_name
		FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`); err != nil {
		t.Fatalf("list tables: %v", err)
	}
	out := make(map[string]string, len(tables))
	for _, tbl := range tables {
		var digest string
		q := fmt.Sprintf(`SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM %s x`, pq.QuoteIdentifier(tbl))
		if err := a.Store.DB().Get(&digest, q); err != nil {
			t.Fatalf("digest %s: %v", tbl, err)
		}
		out[tbl] = digest
	}
	return out
}

// TestNULCharactersAreRefused: PostgreSQL refuses NUL in text, so a NUL in
// any text field (body, query or path, on every route family, and in a
// signed webhook) must be a 400 naming the field, and change nothing.
func TestNULCharactersAreRefused(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	c := s.newCustomer(t)
	p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{Stock: new(5), Description: "plain"})
	s.fillCart(t, c.token, line{p.ID, 1})
	placed := s.webhookOrder(t)
	paid := s.webhookOrder(t)
	s.pay(t, paid.out)

	address := testAddress("London")
	address["line1"] = "12 St James's\x00 Square"
	cases := []struct {
		name, method, path, token string
		body                      any
		field                     string
	}{
		{"register name", http.MethodPost, "/v1/auth/register", "",
			map[string]any{"email": uniqueEmail(), "password": testPassword, "firstName": "Ada\x00", "lastName": "Lovelace"}, "firstName"},
		{"login password", http.MethodPost, "/v1/auth/login", "", map[string]any{"email": c.email, "password": testPassword + "\x00"}, "password"},
		{"search", http.MethodGet, "/v1/products?q=tee%00", "", nil, "q"},
		{"category", http.MethodGet, "/v1/products?category=%00shirts", "", nil, "category"},
		{"list cursor", http.MethodGet, "/v1/products?cursor=abc%00", "", nil, "cursor"},
		{"product id", http.MethodGet, "/v1/products/" + p.ID + "%00", "", nil, "productId"},
		{"product description", http.MethodPost, "/v1/products", s.admin, productBody(map[string]any{"description": "soft\x00cotton"}), "description"},
		{"product tag", http.MethodPost, "/v1/products", s.admin, productBody(map[string]any{"tags": []string{"ok", "b\x00d"}}), "tags.1"},
		{"product patch", http.MethodPatch, "/v1/products/" + p.ID, s.admin, map[string]any{"name": "renamed\x00"}, "name"},
		{"product patch category", http.MethodPatch, "/v1/products/" + p.ID, s.admin, map[string]any{"category": "a\x00"}, "category"},
		{"archive path", http.MethodDelete, "/v1/products/%00", s.admin, nil, "productId"},
		{"inventory note", http.MethodPost, "/v1/products/" + p.ID + "/inventory", s.admin,
			map[string]any{"quantityChange": 1, "type": "restock", "note": "count\x00"}, "note"},
		{"ledger cursor", http.MethodGet, "/v1/products/" + p.ID + "/inventory-transactions?cursor=%00", s.admin, nil, "cursor"},
		{"cart add", http.MethodPost, "/v1/cart/items", c.token, map[string]any{"productId": p.ID + "\x00", "quantity": 1}, "productId"},
		{"cart line path", http.MethodPut, "/v1/cart/items/" + p.ID + "%00", c.token, map[string]any{"quantity": 2}, "productId"},
		{"cart remove path", http.MethodDelete, "/v1/cart/items/%00" + p.ID, c.token, nil, "productId"},
		{"checkout address", http.MethodPost, "/v1/checkout", c.token, map[string]any{"shippingAddress": address}, "shippingAddress.line1"},
		{"orders cursor", http.MethodGet, "/v1/orders?cursor=%00", c.token, nil, "cursor"},
		{"order id", http.MethodGet, "/v1/orders/%00", c.token, nil, "orderId"},
		{"order events path", http.MethodGet, "/v1/orders/" + placed.id() + "%00/events", placed.c.token, nil, "orderId"},
		{"cancel reason", http.MethodPost, "/v1/orders/" + placed.id() + "/cancel", placed.c.token, map[string]any{"reason": "wrong size\x00"}, "reason"},
		{"tracking number", http.MethodPost, "/v1/admin/orders/" + paid.id() + "/fulfill", s.admin, map[string]any{"trackingNumber": "1Z\x00999"}, "trackingNumber"},
		{"refund path", http.MethodPost, "/v1/admin/orders/%00" + paid.id() + "/refund", s.admin, map[string]any{}, "orderId"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.dbFingerprint(t)
			req := s.request(t, tc.method, tc.path, tc.token, tc.body)
			if tc.path == "/v1/checkout" {
				req.Header.Set("Idempotency-Key", newKey())
			}
			pr := expectProblem(t, s.send(t, req), http.StatusBadRequest)
			if !pr.hasFieldError(tc.field) {
				t.Errorf("problem does not name %q: %+v", tc.field, pr.Errors)
			}
			if after := s.dbFingerprint(t); !maps.Equal(before, after) {
				t.Errorf("a refused request changed the database")
			}
		})
	}

	// A signed Stripe event: refused after its signature verifies, naming
	// the field, and the order stays as it was.
	for _, tc := range []struct {
		name    string
		payload []byte
		field   string
	}{
		{"webhook event id", intentEvent("evt_\x00"+randomHex(4), "payment_intent.succeeded", placed.intent(), placed.id(), placed.total(), "usd"), "id"},
		{"webhook order id", intentEvent(newEventID(), "payment_intent.succeeded", placed.intent(), placed.id()+"\x00", placed.total(), "usd"), "data.object.metadata.orderId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.dbFingerprint(t)
			pr := expectProblem(t, s.deliver(t, tc.payload), http.StatusBadRequest)
			if !pr.hasFieldError(tc.field) {
				t.Errorf("problem does not name %q: %+v", tc.field, pr.Errors)
			}
			if after := s.dbFingerprint(t); !maps.Equal(before, after) {
				t.Errorf("a refused webhook changed the database")
			}
		})
	}
	// The same event without the NUL is applied: the refusal was the NUL's.
	s.deliver(t, intentEvent(newEventID(), "payment_intent.succeeded", placed.intent(), placed.id(), placed.total(), "usd")).
		want(t, http.StatusOK)
	if got := s.storedOrder(t, placed.id()); got.PaymentStatus != "paid" {
		t.Errorf("a clean event after the refused ones: payment %s, want paid", got.PaymentStatus)
	}
}

// TestEscapedBackslashIsNoNUL: `\\u0000` in JSON is a backslash followed by
// "u0000", not a NUL; it is stored as written.
func TestEscapedBackslashIsNoNUL(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	body := `{"sku":"SKU-` + randomHex(5) + `","name":"n","priceCents":100,"stock":1,"description":"C:\\u0000"}`
	var p gen.Product
	a.do(t, http.MethodPost, "/v1/products", admin, body).want(t, http.StatusCreated).decode(t, &p)
	if p.Description != `C:\u0000` {
		t.Errorf("description = %q, want the literal text C:\\u0000", p.Description)
	}
}

// TestJSONBodyIsExactlyOneValue: data after the JSON value is refused, and
// nothing is created; whitespace after it is fine.
func TestJSONBodyIsExactlyOneValue(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	customer, _ := a.customer(t)
	p := a.product(t, admin, nil)
	valid := func() string { return string(mustJSON(productBody(nil))) }

	for _, tc := range []struct {
		name, path, token, body string
	}{
		{"text after", "/v1/products", admin, valid() + "xyz"},
		{"two objects", "/v1/products", admin, valid() + valid()},
		{"object then array", "/v1/products", admin, valid() + " []"},
		{"object then number", "/v1/products", admin, valid() + "\n1"},
		{"cart add", "/v1/cart/items", customer, `{"productId":"` + p.Id + `","quantity":1}{"productId":"x","quantity":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			products := a.productCount(t)
			pr := expectProblem(t, a.do(t, http.MethodPost, tc.path, tc.token, tc.body), http.StatusBadRequest)
			if !pr.hasFieldError("body") {
				t.Errorf("problem does not name the body: %+v", pr.Errors)
			}
			if n := a.productCount(t); n != products {
				t.Errorf("products %d -> %d: a refused body created one", products, n)
			}
		})
	}
	if got := cartOf(t, a.do(t, http.MethodGet, "/v1/cart", customer, nil), http.StatusOK); len(got.Items) != 0 {
		t.Errorf("cart has %d lines after a refused add", len(got.Items))
	}
	// Whitespace around the value is part of JSON.
	a.do(t, http.MethodPost, "/v1/products", admin, " \n"+valid()+" \r\n\t ").want(t, http.StatusCreated)
	// A body that is not JSON at all is still the validator's 400.
	expectProblem(t, a.do(t, http.MethodPost, "/v1/products", admin, `{"sku":`), http.StatusBadRequest)
}

// TestSpecServersIgnoreHost: the served spec names PUBLIC_URL as its
// server, in YAML and JSON alike; a forged Host header never appears.
func TestSpecServersIgnoreHost(t *testing.T) {
	t.Parallel()
	const public = "https://api.shop.example"
	const forged = "evil.example"
	for _, tc := range []struct {
		name, publicURL, want string
	}{
		{"PUBLIC_URL set", public, public},
		{"PUBLIC_URL unset", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t, func(c *handlers.Config) { c.PublicURL = tc.publicURL })
			var urls [][]string
			for _, path := range []string{"/openapi.yaml", "/openapi.json"} {
				req := a.request(t, http.MethodGet, path, "", nil)
				req.Host = forged
				r := a.send(t, req).want(t, http.StatusOK)
				if strings.Contains(string(r.body), forged) {
					t.Errorf("%s carries the forged Host %q", path, forged)
				}
				doc, err := openapi3.NewLoader().LoadFromData(r.body)
				if err != nil {
					t.Fatalf("%s does not load: %v", path, err)
				}
				var got []string
				for _, s := range doc.Servers {
					got = append(got, s.URL)
				}
				if tc.want != "" && !slices.Equal(got, []string{tc.want}) {
					t.Errorf("%s servers = %q, want [%q]", path, got, tc.want)
				}
				urls = append(urls, got)
			}
			if !slices.Equal(urls[0], urls[1]) {
				t.Errorf("servers differ: yaml %q, json %q", urls[0], urls[1])
			}
		})
	}
}

// BenchmarkCheckText: what the NUL and trailing-data checks add to a bare
// Echo route, for a GET (the hot path: no body) and a checkout-sized POST.
func BenchmarkCheckText(b *testing.B) {
	body := `{"shippingAddress":{"firstName":"Ada","lastName":"Lovelace","line1":"12 St James's Square",` +
		`"city":"London","postalCode":"SW1Y 4JH","country":"GB"}}`
	for _, mw := range []struct {
		name string
		use  []echo.MiddlewareFunc
	}{{"without", nil}, {"with", []echo.MiddlewareFunc{handlers.CheckText}}} {
		e := echo.New()
		e.Use(mw.use...)
		e.GET("/v1/products/:productId", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
		e.POST("/v1/checkout", func(c echo.Context) error {
			_, err := io.Copy(io.Discard, c.Request().Body)
			if err != nil {
				return err
			}
			return c.NoContent(http.StatusNoContent)
		})
		b.Run("GET/"+mw.name, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/products/9b2f4c1e-3d5a-4f6b-8c7d-0e1f2a3b4c5d?limit=20&sort=price_asc", nil))
				if rec.Code != http.StatusNoContent {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
		b.Run("POST/"+mw.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/checkout", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				if rec.Code != http.StatusNoContent {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}
