package handlers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopd/shopd/gen"
)

func TestOperations(t *testing.T) {
	t.Parallel()
	a := setup(t)

	var h gen.Health
	a.do(t, http.MethodGet, "/healthz", "", nil).want(t, http.StatusOK).decode(t, &h)
	a.do(t, http.MethodGet, "/readyz", "", nil).want(t, http.StatusOK)

	cases := []struct {
		name  string
		path  string
		check func(t *testing.T, r *resp)
	}{
		{"metrics", "/metrics", func(t *testing.T, r *resp) {
			if !strings.Contains(string(r.body), "http_requests_total") {
				t.Errorf("/metrics lacks http_requests_total:\n%.2000s", r.body)
			}
		}},
		{"openapi.yaml", "/openapi.yaml", func(t *testing.T, r *resp) {
			if !strings.HasPrefix(string(r.body), "openapi: 3.0") {
				t.Errorf("/openapi.yaml starts %.40q", r.body)
			}
		}},
		{"openapi.json", "/openapi.json", func(t *testing.T, r *resp) {
			var doc struct {
				OpenAPI string                     `json:"openapi"`
				Paths   map[string]json.RawMessage `json:"paths"`
			}
			r.decode(t, &doc)
			if !strings.HasPrefix(doc.OpenAPI, "3.0") || doc.Paths["/v1/products"] == nil {
				t.Errorf("/openapi.json: openapi %q, %d paths, /v1/products missing?", doc.OpenAPI, len(doc.Paths))
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do(t, http.MethodGet, tc.path, "", nil).want(t, http.StatusOK)
			tc.check(t, r)
		})
	}

	t.Run("docs", func(t *testing.T) {
		// A plain client: follow the redirect to the UI.
		res, err := http.Get(a.URL + "/docs")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(strings.ToLower(string(body)), "swagger") {
			t.Errorf("/docs: %d %s\n%.500s", res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	})
}

func TestReadyzFailsWithoutDatabase(t *testing.T) {
	t.Parallel()
	a := setup(t)
	if err := a.Store.Close(); err != nil {
		t.Fatal(err)
	}
	expectProblem(t, a.do(t, http.MethodGet, "/readyz", "", nil), http.StatusServiceUnavailable)
	a.do(t, http.MethodGet, "/healthz", "", nil).want(t, http.StatusOK)
}

func TestProblemsLeakNothingInternal(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	p := a.product(t, admin, map[string]any{"stock": 1})
	email := uniqueEmail()
	a.register(t, email)

	cases := []struct {
		name   string
		method string
		path   string
		body   any
		status int
	}{
		{"unknown product", http.MethodGet, "/v1/products/" + uuid.NewString(), nil, http.StatusNotFound},
		{"non-uuid product", http.MethodGet, "/v1/products/nope", nil, http.StatusNotFound},
		{"non-uuid ledger", http.MethodGet, "/v1/products/nope'--/inventory-transactions", nil, http.StatusNotFound},
		{"duplicate sku", http.MethodPost, "/v1/products", productBody(map[string]any{"sku": p.Sku}), http.StatusConflict},
		{"taken sku", http.MethodPatch, "/v1/products/" + a.product(t, admin, nil).Id, map[string]any{"sku": p.Sku}, http.StatusConflict},
		{"oversell", http.MethodPost, "/v1/products/" + p.Id + "/inventory", map[string]any{"quantityChange": -2, "type": "adjustment"}, http.StatusConflict},
		{"duplicate email", http.MethodPost, "/v1/auth/register", map[string]any{
			"email": email, "password": testPassword, "firstName": "A", "lastName": "B"}, http.StatusConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := a.do(t, tc.method, tc.path, admin, tc.body)
			expectProblem(t, r, tc.status)
			var doc map[string]any
			r.decode(t, &doc)
			delete(doc, "requestId") // random; may spell anything
			delete(doc, "instance")  // the request path, which the test chose
			b, _ := json.Marshal(doc)
			text := strings.ToLower(string(b))
			for _, leak := range []string{"pq:", "sql", "constraint", "duplicate key", "violates", "products_", "users_", "goroutine", ".go:"} {
				if strings.Contains(text, leak) {
					t.Errorf("problem leaks %q: %s", leak, b)
				}
			}
		})
	}
}

// TestServerErrorsLeakNothing breaks the schema under a running server: the
// 500 that follows says only that something failed, with a request id.
func TestServerErrorsLeakNothing(t *testing.T) {
	t.Parallel()
	a := setup(t)
	if _, err := a.Store.DB().Exec(`ALTER TABLE products RENAME COLUMN description TO blurb`); err != nil {
		t.Fatal(err)
	}
	r := a.do(t, http.MethodGet, "/v1/products", "", nil)
	p := expectProblem(t, r, http.StatusInternalServerError)
	if p.RequestID == "" || p.RequestID != r.header.Get("X-Request-Id") {
		t.Errorf("requestId %q, X-Request-Id %q: want the same, non-empty", p.RequestID, r.header.Get("X-Request-Id"))
	}
	var doc map[string]any
	r.decode(t, &doc)
	delete(doc, "requestId") // random; may spell anything
	delete(doc, "instance")  // the request path, which the test chose
	b, _ := json.Marshal(doc)
	text := strings.ToLower(string(b))
	for _, leak := range []string{"pq:", "sql", "column", "blurb", "description", "products", "does not exist", ".go:"} {
		if strings.Contains(text, leak) {
			t.Errorf("500 leaks %q: %s", leak, r.body)
		}
	}
}

// TestSpecCheckCatchesDrift proves the harness's spec check can fail: a
// response that drifts from the contract is reported.
func TestSpecCheckCatchesDrift(t *testing.T) {
	t.Parallel()
	productJSON := `{"id":"p1","sku":"A-1","name":"n","description":"","priceCents":1,"compareAtPriceCents":null,
		"currency":"usd","category":null,"tags":[],"images":[],"stock":0,"lowStockThreshold":0,"isActive":true,
		"isFeatured":false,"createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z"}`
	problemJSON := `{"type":"x","title":"Too Many Requests","status":429}`
	const requestID = "hmIUJYLuysoxlxdQbMoGpFfqQkNzLzXJ"
	problemCT := http.Header{"Content-Type": {"application/problem+json"}, "X-Request-Id": {requestID}}
	jsonCT := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {requestID}}
	cases := []struct {
		name   string
		method string
		path   string
		status int
		header http.Header
		body   string
		ok     bool
	}{
		{"conforming", http.MethodGet, "/v1/products/p1", 200, jsonCT, productJSON, true},
		{"missing required field", http.MethodGet, "/v1/products/p1", 200, jsonCT, `{"id":"p1"}`, false},
		{"without X-Request-Id", http.MethodGet, "/v1/products/p1", 200, http.Header{"Content-Type": {"application/json"}}, productJSON, false},
		{"float money", http.MethodGet, "/v1/products/p1", 200, jsonCT, strings.Replace(productJSON, `"priceCents":1`, `"priceCents":1.5`, 1), false},
		{"undocumented status", http.MethodGet, "/v1/products/p1", 418, problemCT, `{"type":"x","title":"t","status":418}`, false},
		{"wrong content type", http.MethodGet, "/v1/products/p1", 404, jsonCT, `{"type":"x","title":"t","status":404}`, false},
		{"429 without Retry-After", http.MethodPost, "/v1/auth/login", 429, problemCT, problemJSON, false},
		{"429 with Retry-After", http.MethodPost, "/v1/auth/login", 429,
			http.Header{"Content-Type": {"application/problem+json"}, "Retry-After": {"7"}, "X-Request-Id": {requestID}}, problemJSON, true},
		{"not in the spec", http.MethodGet, "/v1/nowhere", 200, jsonCT, `{}`, false},
		{"outside the spec", http.MethodGet, "/metrics", 200, http.Header{"Content-Type": {"text/plain"}}, "x 1", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tc.method, "http://127.0.0.1:1"+tc.path, nil)
			err := conformsToSpec(req, &resp{status: tc.status, header: tc.header, body: []byte(tc.body)})
			if tc.ok && err != nil {
				t.Errorf("conforming response reported: %v", err)
			}
			if !tc.ok && err == nil {
				t.Error("drift not reported")
			}
		})
	}
}
