package handlers_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/handlers"
)

func TestOperations(t *testing.T) {
	t.Parallel()
	a := setup(t)

	var h gen.Health
	a.do(t, http.MethodGet, "/healthz", "", nil).want(t, http.StatusOK).decode(t, &h)
	a.do(t, http.MethodGet, "/readyz", "", nil).want(t, http.StatusOK)

	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	version := spec.Info.Version // what partners pin to; see CHANGELOG.md
	if version == "" {
		t.Fatal("the spec has no info.version")
	}
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
			if !strings.Contains(string(r.body), "\n  version: "+version+"\n") {
				t.Errorf("/openapi.yaml does not carry info.version %s", version)
			}
		}},
		{"openapi.json", "/openapi.json", func(t *testing.T, r *resp) {
			var doc struct {
				OpenAPI string                     `json:"openapi"`
				Info    struct{ Version string }   `json:"info"`
				Paths   map[string]json.RawMessage `json:"paths"`
			}
			r.decode(t, &doc)
			if !strings.HasPrefix(doc.OpenAPI, "3.0") || doc.Paths["/v1/products"] == nil {
				t.Errorf("/openapi.json: openapi %q, %d paths, /v1/products missing?", doc.OpenAPI, len(doc.Paths))
			}
			if doc.Info.Version != version {
				t.Errorf("/openapi.json: info.version %q, want %q", doc.Info.Version, version)
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
	problemJSON := `{"type":"https://shopd.dev/problems/rate_limited","title":"Too Many Requests","status":429}`
	const requestID = "hmIUJYLuysoxlxdQbMoGpFfqQkNzLzXJ"
	problemCT := http.Header{"Content-Type": {"application/problem+json"}, "X-Request-Id": {requestID}}
	jsonCT := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {requestID}}
	// A catalog read also carries its cache headers (handlers/caching.go).
	productHeader := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {requestID},
		"Etag": {`"` + strings.Repeat("0", 64) + `"`}, "Cache-Control": {"private, no-store"}, "Vary": {"Authorization"}}
	cases := []struct {
		name   string
		method string
		path   string
		status int
		header http.Header
		body   string
		ok     bool
	}{
		{"conforming", http.MethodGet, "/v1/products/p1", 200, productHeader, productJSON, true},
		{"missing required field", http.MethodGet, "/v1/products/p1", 200, productHeader, `{"id":"p1"}`, false},
		{"without X-Request-Id", http.MethodGet, "/v1/products/p1", 200, without(productHeader, "X-Request-Id"), productJSON, false},
		{"without ETag", http.MethodGet, "/v1/products/p1", 200, without(productHeader, "Etag"), productJSON, false},
		{"float money", http.MethodGet, "/v1/products/p1", 200, productHeader, strings.Replace(productJSON, `"priceCents":1`, `"priceCents":1.5`, 1), false},
		{"undocumented status", http.MethodGet, "/v1/products/p1", 418, problemCT, `{"type":"x","title":"t","status":418}`, false},
		{"wrong content type", http.MethodGet, "/v1/products/p1", 404, jsonCT, `{"type":"x","title":"t","status":404}`, false},
		{"429 without Retry-After", http.MethodPost, "/v1/auth/login", 429, problemCT, problemJSON, false},
		{"429 with Retry-After", http.MethodPost, "/v1/auth/login", 429,
			http.Header{"Content-Type": {"application/problem+json"}, "Retry-After": {"7"}, "X-Request-Id": {requestID}}, problemJSON, true},
		{"unlisted problem type", http.MethodGet, "/v1/products/p1", 404, problemCT, `{"type":"about:blank","title":"Not Found","status":404}`, false},
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

// without is a copy of h without the header key.
func without(h http.Header, key string) http.Header {
	c := h.Clone()
	c.Del(key)
	return c
}

// metricsSeries fetches /metrics and returns its series (name and labels,
// without values) and the body's size.
func metricsSeries(t *testing.T, a *api) (map[string]bool, int) {
	t.Helper()
	r := a.do(t, http.MethodGet, "/metrics", "", nil).want(t, http.StatusOK)
	series := map[string]bool{}
	for _, l := range strings.Split(string(r.body), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		series[l[:strings.LastIndexByte(l, ' ')]] = true
	}
	return series, len(r.body)
}

// TestMetricsLabelsAreBounded: invented HTTP methods and unmatched paths
// fold into one label value each, so no request adds a series.
func TestMetricsLabelsAreBounded(t *testing.T) {
	t.Parallel()
	// Only the HTTP metrics: the runtime collectors' values change size.
	a := setup(t, func(c *handlers.Config) { c.Registry = prometheus.NewRegistry() })
	probe := func(method, path string) {
		req, err := http.NewRequest(method, a.URL+path, nil)
		if err != nil {
			t.Fatalf("new %.20s request: %v", method, err)
		}
		a.sendUnchecked(t, req)
	}
	// Every series this test can create exists before the baseline.
	probe("PROBE", "/v1/products")
	probe("PROBE", "/nowhere")
	probe(http.MethodGet, "/nowhere")
	metricsSeries(t, a)
	before, size := metricsSeries(t, a)

	for i := range 1000 {
		method := fmt.Sprintf("PROBE%04d", i)
		if i%100 == 0 { // some long ones too: 100 KB method names
			method += strings.Repeat("X", 100<<10)
		}
		probe(method, "/v1/products")
		if i%10 == 0 {
			probe(method, fmt.Sprintf("/nowhere/%d", i))
			probe(http.MethodGet, fmt.Sprintf("/nowhere/%d", i))
		}
	}
	after, sizeAfter := metricsSeries(t, a)
	t.Logf("/metrics: %d bytes before, %d bytes after 1,000 invented methods", size, sizeAfter)
	if !maps.Equal(before, after) {
		var added []string
		for s := range after {
			if !before[s] {
				added = append(added, s)
			}
		}
		t.Errorf("%d new series, e.g. %.200q", len(added), added[0])
	}
	// Only the counts' digits may grow.
	if sizeAfter > size+512 {
		t.Errorf("/metrics grew from %d to %d bytes", size, sizeAfter)
	}
	if !before[`http_requests_total{method="OTHER",route="/v1/products",status="405"}`] ||
		!before[`http_requests_total{method="GET",route="unmatched",status="404"}`] {
		t.Errorf("expected series missing:\n%s", strings.Join(slices.Sorted(maps.Keys(before)), "\n"))
	}
}

// TestMetricsToken: with METRICS_TOKEN set, /metrics answers only to it.
func TestMetricsToken(t *testing.T) {
	t.Parallel()
	a := setup(t, func(c *handlers.Config) { c.MetricsToken = "metrics-secret" })
	// One counted request first, so the right token's scrape has a series
	// to show whichever subtest runs first. It is counted just after its
	// answer is written: wait until a scrape shows it.
	a.send(t, a.request(t, http.MethodGet, "/healthz", "", nil)).want(t, http.StatusOK)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		req := a.request(t, http.MethodGet, "/metrics", "", nil)
		req.Header.Set("Authorization", "Bearer metrics-secret")
		if strings.Contains(string(a.send(t, req).body), `route="/healthz"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/healthz never counted")
		}
	}
	for _, tc := range []struct {
		name, auth string
		status     int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer metrics-secreT", http.StatusUnauthorized},
		{"prefix of the token", "Bearer metrics-secre", http.StatusUnauthorized},
		{"another scheme", "Basic bWV0cmljcy1zZWNyZXQ=", http.StatusUnauthorized},
		{"right token", "Bearer metrics-secret", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := a.request(t, http.MethodGet, "/metrics", "", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			r := a.send(t, req)
			if tc.status != http.StatusOK {
				expectProblem(t, r, tc.status)
				return
			}
			r.want(t, http.StatusOK)
			if !strings.Contains(string(r.body), "http_requests_total") {
				t.Errorf("/metrics lacks http_requests_total")
			}
		})
	}
	// Without a token configured it stays open (TestOperations).
}

// errorCodes is every code in error.go.
var errorCodes = []string{
	shopd.EInvalid, shopd.EUnauthorized, shopd.EForbidden, shopd.ENotFound, shopd.EConflict,
	shopd.EInsufficientStock, shopd.EDuplicate, shopd.EInvalidTransition, shopd.EInFlight, shopd.EKeyReused,
	shopd.EPaymentRefused, shopd.ERateLimited, shopd.EPayloadTooLarge, shopd.EUnsupportedMedia,
	shopd.EUnavailable, shopd.EInternal,
}

// renderError is the response the server's error handler makes of err.
func renderError(t *testing.T, err error) *resp {
	t.Helper()
	e := echo.New()
	e.HTTPErrorHandler = handlers.ErrorHandler(slog.New(slog.DiscardHandler))
	e.GET("/x", func(echo.Context) error { return err })
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	return &resp{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// TestEveryErrorHasOneKind: every domain code and every bare status Echo
// raises renders as its row of the problem table.
func TestEveryErrorHasOneKind(t *testing.T) {
	t.Parallel()
	kinds := handlers.ProblemKinds()
	type errCase struct {
		name string
		err  error
		code string
	}
	var cases []errCase
	for _, code := range errorCodes {
		cases = append(cases, errCase{code, shopd.Errorf(code, "What happened."), code})
	}
	cases = append(cases,
		errCase{"unknown code", shopd.Errorf("made_up", "x"), shopd.EInternal},
		errCase{"plain error", errors.New("pq: something"), shopd.EInternal},
		errCase{"echo 400", echo.ErrBadRequest, shopd.EInvalid},
		errCase{"echo 401", echo.ErrUnauthorized, shopd.EUnauthorized},
		errCase{"echo 403", echo.ErrForbidden, shopd.EForbidden},
		errCase{"echo 404", echo.ErrNotFound, shopd.ENotFound},
		errCase{"echo 405", echo.ErrMethodNotAllowed, "method_not_allowed"},
		errCase{"echo 413", echo.ErrStatusRequestEntityTooLarge, shopd.EPayloadTooLarge},
		errCase{"echo 415", echo.ErrUnsupportedMediaType, shopd.EUnsupportedMedia},
		errCase{"echo 429", echo.ErrTooManyRequests, shopd.ERateLimited},
		errCase{"echo 418", echo.NewHTTPError(http.StatusTeapot), shopd.EInvalid},
		errCase{"echo 500", echo.ErrInternalServerError, shopd.EInternal},
		errCase{"echo 503", echo.ErrServiceUnavailable, shopd.EInternal},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kind, ok := kinds[tc.code]
			if !ok {
				t.Fatalf("code %q has no row in the problem table", tc.code)
			}
			p := expectProblem(t, renderError(t, tc.err), kind.Status)
			if p.Type != handlers.ProblemTypeBase+tc.code {
				t.Errorf("type %q, want %q", p.Type, handlers.ProblemTypeBase+tc.code)
			}
			if tc.code == shopd.EInternal && strings.Contains(string(p.Detail), "pq") {
				t.Errorf("internal detail leaks: %q", p.Detail)
			}
		})
	}
}

// TestInsufficientStockProblem: the shortage travels as the extension
// members the spec's InsufficientStockProblem declares; other problems
// carry none.
func TestInsufficientStockProblem(t *testing.T) {
	t.Parallel()
	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	schema := spec.Components.Schemas["InsufficientStockProblem"]
	if schema == nil {
		t.Fatal("the spec has no InsufficientStockProblem schema")
	}
	r := renderError(t, &shopd.Error{Code: shopd.EInsufficientStock, Message: "Only 0 of TEE-1 left.",
		Shortage: &shopd.Shortage{ProductID: "p-1", SKU: "TEE-1", Requested: 2, Available: 0}})
	expectProblem(t, r, http.StatusConflict)
	var doc map[string]any
	r.decode(t, &doc)
	want := map[string]any{"productId": "p-1", "sku": "TEE-1", "requested": 2.0, "available": 0.0}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %v", k, doc[k], v)
		}
	}
	if err := schema.Value.VisitJSON(doc); err != nil {
		t.Errorf("does not match InsufficientStockProblem: %v", err)
	}

	r = renderError(t, shopd.Errorf(shopd.EConflict, "Something else."))
	var plain map[string]any
	r.decode(t, &plain)
	if _, ok := plain["productId"]; ok {
		t.Errorf("a plain conflict carries extension members: %s", r.body)
	}
}

// problemExample is one problem+json example in the spec and where.
type problemExample struct {
	where  string
	status string // the response's status code; "" for components
	value  map[string]any
}

// problemExamples collects every problem example in the spec: operation
// responses, response components and schema examples.
func problemExamples(t *testing.T, spec *openapi3.T) []problemExample {
	t.Helper()
	var out []problemExample
	add := func(where, status string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: example is %T, not an object", where, v)
			return
		}
		out = append(out, problemExample{where, status, m})
	}
	fromResponse := func(where, status string, r *openapi3.ResponseRef) {
		if r == nil || r.Value == nil || r.Value.Content == nil {
			return
		}
		mt := r.Value.Content.Get("application/problem+json")
		if mt == nil {
			return
		}
		if mt.Example != nil {
			add(where, status, mt.Example)
		}
		for name, ex := range mt.Examples {
			add(where+" "+name, status, ex.Value.Value)
		}
	}
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			for status, r := range op.Responses.Map() {
				fromResponse(method+" "+path+" "+status, status, r)
			}
		}
	}
	for name, r := range spec.Components.Responses {
		fromResponse("responses/"+name, "", r)
	}
	for _, name := range []string{"Problem", "InsufficientStockProblem"} {
		if s := spec.Components.Schemas[name]; s != nil && s.Value.Example != nil {
			add("schemas/"+name, "", s.Value.Example)
		}
	}
	return out
}

// TestSpecProblemsMatchTheServer: the problem types the spec lists, with
// their titles and statuses, and every problem example in it, are exactly
// what the server's table sends.
func TestSpecProblemsMatchTheServer(t *testing.T) {
	t.Parallel()
	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	kinds := handlers.ProblemKinds()
	typ := spec.Components.Schemas["Problem"].Value.Properties["type"].Value

	var listed []string
	for _, v := range typ.Enum {
		listed = append(listed, strings.TrimPrefix(fmt.Sprint(v), handlers.ProblemTypeBase))
	}
	if !slices.Equal(slices.Sorted(slices.Values(listed)), slices.Sorted(maps.Keys(kinds))) {
		t.Errorf("Problem.type lists %q; the server's table has %q", slices.Sorted(slices.Values(listed)), slices.Sorted(maps.Keys(kinds)))
	}
	for code, k := range kinds {
		row := fmt.Sprintf("| `%s` | %d | %s |", code, k.Status, k.Title)
		if !strings.Contains(typ.Description, row) {
			t.Errorf("Problem.type's description lacks the row %q", row)
		}
	}

	examples := problemExamples(t, spec)
	seen := map[string]bool{}
	for _, ex := range examples {
		typ, _ := ex.value["type"].(string)
		title, _ := ex.value["title"].(string)
		status, _ := ex.value["status"].(float64)
		if s, ok := ex.value["status"].(int); ok {
			status = float64(s)
		}
		code := strings.TrimPrefix(typ, handlers.ProblemTypeBase)
		k, ok := kinds[code]
		switch {
		case !ok || !strings.HasPrefix(typ, handlers.ProblemTypeBase):
			t.Errorf("%s: type %q is not one the server sends", ex.where, typ)
		case title != k.Title || int(status) != k.Status:
			t.Errorf("%s: %s titled %q with status %v; the server sends %q, %d", ex.where, code, title, status, k.Title, k.Status)
		case ex.status != "" && ex.status != fmt.Sprint(k.Status):
			t.Errorf("%s: a %s example under a %s response", ex.where, code, ex.status)
		}
		seen[code] = true
	}
	if len(examples) < 10 {
		t.Errorf("only %d problem examples found: the walk is broken", len(examples))
	}
	for _, code := range []string{shopd.EInvalid, shopd.EInsufficientStock, shopd.EInFlight, shopd.EDuplicate, shopd.EInvalidTransition} {
		if !seen[code] {
			t.Errorf("no example shows a %s problem", code)
		}
	}
}

// TestProblemKindsFromEveryLayer: problems raised by the router, the
// validator, the body checks, the handlers and the store each carry their
// type's one title and status (expectProblem checks it against the table).
func TestProblemKindsFromEveryLayer(t *testing.T) {
	t.Parallel()
	a := setup(t, func(c *handlers.Config) { c.SearchesPerHour = 1 })
	admin := a.admin(t)
	customer, _ := a.customer(t)
	p := a.product(t, admin, nil)
	a.do(t, http.MethodGet, "/v1/products?q=first", "", nil).want(t, http.StatusOK)

	cases := []struct {
		name      string
		req       *http.Request
		unchecked bool // outside what the spec can describe
		code      string
	}{
		{"validator", a.request(t, http.MethodGet, "/v1/products?limit=0", "", nil), false, shopd.EInvalid},
		{"handler rule", a.request(t, http.MethodPost, "/v1/products", admin, productBody(map[string]any{"name": "   "})), false, shopd.EInvalid},
		{"body check", a.request(t, http.MethodPost, "/v1/products", admin, `{}{}`), false, shopd.EInvalid},
		{"no token", a.request(t, http.MethodGet, "/v1/cart", "", nil), false, shopd.EUnauthorized},
		{"wrong role", a.request(t, http.MethodPost, "/v1/products", customer, productBody(nil)), false, shopd.EForbidden},
		{"router", a.request(t, http.MethodGet, "/v1/nowhere", "", nil), true, shopd.ENotFound},
		{"validator's router", a.request(t, http.MethodGet, "/v1/products/x/y", "", nil), true, shopd.ENotFound},
		{"store", a.request(t, http.MethodGet, "/v1/products/"+uuid.NewString(), "", nil), false, shopd.ENotFound},
		{"method", a.request(t, "PROBE", "/v1/products", "", nil), true, "method_not_allowed"},
		{"body limit", a.request(t, http.MethodPost, "/v1/products", admin, strings.Repeat(" ", 2<<20)), false, shopd.EPayloadTooLarge},
		{"search quota", a.request(t, http.MethodGet, "/v1/products?q=second", "", nil), false, shopd.ERateLimited},
		{"taken sku", a.request(t, http.MethodPost, "/v1/products", admin, productBody(map[string]any{"sku": p.Sku})), false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r *resp
			if tc.unchecked {
				r = a.sendUnchecked(t, tc.req)
			} else {
				r = a.send(t, tc.req)
			}
			var doc apiProblem
			r.decode(t, &doc)
			pr := expectProblem(t, r, doc.Status)
			if r.status < 400 {
				t.Fatalf("status %d, want a problem", r.status)
			}
			if tc.code != "" && pr.Type != handlers.ProblemTypeBase+tc.code {
				t.Errorf("type %q, want %s", pr.Type, tc.code)
			}
			// Our own words are kept; a library's are not passed on.
			switch tc.code {
			case shopd.EForbidden:
				if !strings.Contains(pr.Detail, "admin role") {
					t.Errorf("detail %q does not say which role", pr.Detail)
				}
			case shopd.ENotFound:
				if tc.unchecked && pr.Detail != "No such resource." {
					t.Errorf("detail %q", pr.Detail)
				}
			}
		})
	}
}

// TestProfilesBehindMetricsToken: /debug/pprof/ answers only with the
// metrics token, and does not exist without one configured.
func TestProfilesBehindMetricsToken(t *testing.T) {
	t.Parallel()
	open := setup(t)
	if r := open.send(t, open.request(t, http.MethodGet, "/debug/pprof/", "", nil)); r.status != http.StatusNotFound {
		t.Errorf("without METRICS_TOKEN: /debug/pprof/ = %d, want 404", r.status)
	}
	a := setup(t, func(c *handlers.Config) { c.MetricsToken = "metrics-secret" })
	expectProblem(t, a.send(t, a.request(t, http.MethodGet, "/debug/pprof/heap", "", nil)), http.StatusUnauthorized)
	req := a.request(t, http.MethodGet, "/debug/pprof/heap?debug=1", "", nil)
	req.Header.Set("Authorization", "Bearer metrics-secret")
	r := a.send(t, req).want(t, http.StatusOK)
	if !strings.Contains(string(r.body), "heap profile") {
		t.Errorf("heap profile = %.200s", r.body)
	}
}
