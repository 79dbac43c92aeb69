package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/handlers"
	"github.com/shopd/shopd/payments"
)

// chromiumPath finds Debian's chromium (scripts/install-deps installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: run scripts/install-deps (make test does) or apt-get install chromium")
	return ""
}

// renderedDOM loads page in headless Chromium, lets its scripts run, and
// returns the resulting DOM.
func renderedDOM(t *testing.T, page string) string {
	t.Helper()
	bin := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=15000", "--dump-dom", page)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return string(out)
}

// publicOperations are the operations API.md lets anyone call; the
// product list and detail also take an optional token (admins see more).
var publicOperations = []string{
	"getHealth", "getReady", "getJwks", "register", "login",
	"listProducts", "getProduct", "listCategories", "handleStripeWebhook",
}

// isPublic reports whether op can be called without a token: it has no
// security requirement, or the empty one among its alternatives.
func isPublic(spec *openapi3.T, op *openapi3.Operation) bool {
	reqs := spec.Security
	if op.Security != nil {
		reqs = *op.Security
	}
	return len(reqs) == 0 || slices.ContainsFunc(reqs, func(r openapi3.SecurityRequirement) bool { return len(r) == 0 })
}

// operationSummary returns the rendered summary of one operation: the
// DOM from its block's id up to the next operation or tag section.
func operationSummary(dom, tag, operationID string) (string, bool) {
	marker := `id="operations-` + tag + `-` + operationID + `"`
	i := strings.Index(dom, marker)
	if i < 0 {
		return "", false
	}
	rest := dom[i+len(marker):]
	if j := strings.Index(rest, `id="operations-`); j >= 0 {
		rest = rest[:j]
	}
	return rest, true
}

// TestSwaggerUIInBrowser loads /docs in headless Chromium, lets Swagger UI
// fetch and render our spec, and reads the resulting DOM: the operations,
// the Authorize button for bearer tokens, a lock on exactly the operations
// that need a token (none on public ones, optional auth included), and the
// Schemas section with the models.
func TestSwaggerUIInBrowser(t *testing.T) {
	t.Parallel()
	a := setup(t)
	dom := renderedDOM(t, a.URL+"/docs/")
	for _, want := range []string{
		`class="swagger-ui"`,
		"/v1/products",
		"/v1/checkout",
		"/v1/orders/{orderId}/cancel",
		"/v1/webhooks/stripe",
		"authorize", // the Authorize button for the bearer scheme
		"shopd",     // our spec's title, not the petstore
	} {
		if !strings.Contains(strings.ToLower(dom), strings.ToLower(want)) {
			t.Errorf("rendered /docs lacks %q", want)
		}
	}

	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	seen := map[string]bool{}
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			seen[op.OperationID] = true
			public := isPublic(spec, op)
			if slices.Contains(publicOperations, op.OperationID) != public {
				t.Errorf("%s %s (%s): public = %t in the spec, API.md says otherwise", method, path, op.OperationID, public)
			}
			summary, ok := operationSummary(dom, op.Tags[0], op.OperationID)
			if !ok {
				t.Errorf("%s %s (%s) is not rendered", method, path, op.OperationID)
				continue
			}
			// The lock is the operation's authorization button.
			locked := strings.Contains(summary, "authorization__btn")
			if public && locked {
				t.Errorf("%s %s (%s) is public but shows a lock", method, path, op.OperationID)
			}
			if !public && !locked {
				t.Errorf("%s %s (%s) needs a token but shows no lock", method, path, op.OperationID)
			}
		}
	}
	for _, id := range publicOperations {
		if !seen[id] {
			t.Errorf("public operation %s is not in the spec", id)
		}
	}

	// The Schemas section is open and lists the models.
	if !strings.Contains(dom, `class="models is-open"`) {
		t.Error("the Schemas section is hidden or closed")
	}
	for _, model := range []string{"Product", "Order", "Cart", "Problem"} {
		if !strings.Contains(dom, `id="model-`+model+`"`) {
			t.Errorf("the Schemas section lacks %s", model)
		}
	}
	if t.Failed() {
		if len(dom) > 3000 {
			dom = dom[:3000]
		}
		t.Logf("DOM starts: %s", dom)
	}
}

// exampleOf returns a parameter's documented example, as Swagger UI's "Try
// it out" fills it in: the parameter's own, else its schema's.
func exampleOf(p *openapi3.Parameter) (any, bool) {
	if p.Example != nil {
		return p.Example, true
	}
	for _, ex := range p.Examples {
		if ex.Value != nil && ex.Value.Value != nil {
			return ex.Value.Value, true
		}
	}
	if p.Schema != nil && p.Schema.Value != nil && p.Schema.Value.Example != nil {
		return p.Schema.Value.Example, true
	}
	return nil, false
}

// examplesOf returns every example documented for a media type: its own,
// its named ones and its schema's.
func examplesOf(mt *openapi3.MediaType) []any {
	var out []any
	if mt == nil {
		return nil
	}
	if mt.Example != nil {
		out = append(out, mt.Example)
	}
	for _, ex := range mt.Examples {
		if ex.Value != nil && ex.Value.Value != nil {
			out = append(out, ex.Value.Value)
		}
	}
	if mt.Schema != nil && mt.Schema.Value != nil && mt.Schema.Value.Example != nil {
		out = append(out, mt.Schema.Value.Example)
	}
	return out
}

// documentedCursors are the cursors an operation's documentation shows:
// its cursor parameter's example and the nextCursor of its success
// examples.
func documentedCursors(op *openapi3.Operation, cursor *openapi3.Parameter) []string {
	var out []string
	if ex, ok := exampleOf(cursor); ok {
		out = append(out, fmt.Sprint(ex))
	}
	if r := op.Responses.Status(http.StatusOK); r != nil && r.Value != nil {
		for _, ex := range examplesOf(r.Value.Content.Get("application/json")) {
			if m, ok := ex.(map[string]any); ok {
				if c, ok := m["nextCursor"].(string); ok {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// documentedOperation is one operation of the spec, to call with its
// examples.
type documentedOperation struct {
	path, method string
	item         *openapi3.PathItem
	op           *openapi3.Operation
}

// documentedOperations lists the spec's operations in a fixed order (by
// path, then method), so that calls with side effects happen in the same
// order on every run.
func documentedOperations(spec *openapi3.T) []documentedOperation {
	var ops []documentedOperation
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			ops = append(ops, documentedOperation{path, method, item, op})
		}
	}
	slices.SortFunc(ops, func(a, b documentedOperation) int {
		return strings.Compare(a.path+" "+a.method, b.path+" "+b.method)
	})
	return ops
}

// TestDocumentedExamplesAreAccepted calls every operation the way "Try it
// out" does, as an admin, with nothing but its documented examples: the
// parameters', the request body's (which show every field). None may be
// refused as malformed (400) or fail (5xx); a 404 for an unknown id, a 401
// for the example login or a 409 for a state conflict is fine. Operations
// with an id in the path are called twice: with the documented ids, and on
// live resources. Every list is called with each cursor its documentation
// shows (the cursor parameter's example, the nextCursor of its examples)
// on live resources, so that the cursor is what gets read: 200.
func TestDocumentedExamplesAreAccepted(t *testing.T) {
	t.Parallel()
	// With payments, so the money operations get as far as the order.
	s := newShop(t)
	product := s.product(t, s.admin, nil)
	buyer := s.newCustomer(t)
	order := s.placeOrder(t, buyer, line{product.Id, 1})
	var address gen.SavedAddress // the admin's own: the calls are made as the admin
	s.do(t, http.MethodPost, "/v1/me/addresses", s.admin, testAddress("Paris")).want(t, http.StatusCreated).decode(t, &address)
	var notificationID string // a failed one, so that its retry is accepted
	if err := s.Store.DB().Get(&notificationID, `INSERT INTO notifications
		(channel, template, recipient, subject, body_text, status, attempts, last_error, order_id, customer_id, dedupe_key)
		VALUES ('email', 'order-confirmation', 'ada@example.com', 'Order confirmed', 'Thanks', 'failed', 8, 'refused', $1, $2, $3)
		RETURNING id`, order.Order.Id, buyer.id, "order-confirmation:"+order.Order.Id); err != nil {
		t.Fatal(err)
	}
	live := map[string]string{"productId": product.Id, "orderId": order.Order.Id, "addressId": address.Id, "customerId": buyer.id,
		"notificationId": notificationID}
	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	var calls, cursors int
	for _, d := range documentedOperations(spec) {
		method, path, op := d.method, d.path, d.op
		if op.OperationID == "handleStripeWebhook" {
			continue // signed by Stripe: TestWebhookAsDocumented
		}
		if op.OperationID == "streamOrder" || op.OperationID == "streamAdminEvents" {
			continue // they stay open: TestStreamsAsDocumented
		}
		documented, liveTarget, query, header := path, path, url.Values{}, http.Header{}
		var cursor *openapi3.Parameter
		hasPathID := false
		for _, ref := range append(slices.Clone(d.item.Parameters), op.Parameters...) {
			p := ref.Value
			ex, ok := exampleOf(p)
			switch {
			case p.In == openapi3.ParameterInQuery && p.Name == "cursor":
				cursor = p
				continue
			case !ok:
				t.Errorf("%s %s: parameter %s has no example", method, path, p.Name)
				continue
			}
			switch p.In {
			case openapi3.ParameterInPath:
				if live[p.Name] == "" {
					t.Fatalf("%s %s: no live resource for %s; add one", method, path, p.Name)
				}
				hasPathID = true
				documented = strings.ReplaceAll(documented, "{"+p.Name+"}", url.PathEscape(fmt.Sprint(ex)))
				liveTarget = strings.ReplaceAll(liveTarget, "{"+p.Name+"}", live[p.Name])
			case openapi3.ParameterInQuery:
				query.Set(p.Name, fmt.Sprint(ex))
			case openapi3.ParameterInHeader:
				header.Set(p.Name, fmt.Sprint(ex))
			}
		}
		var body any
		if op.RequestBody != nil && op.RequestBody.Value != nil {
			if exs := examplesOf(op.RequestBody.Value.Content.Get("application/json")); len(exs) > 0 {
				body = exs[0]
			}
		}
		call := func(target string, q url.Values) *resp {
			if len(q) > 0 {
				target += "?" + q.Encode()
			}
			req := s.request(t, method, target, s.admin, body)
			maps.Copy(req.Header, header)
			calls++
			return s.send(t, req)
		}
		targets := []string{liveTarget}
		if hasPathID {
			targets = append(targets, documented)
		}
		for _, target := range targets {
			if op.OperationID == "checkout" {
				// Checking out needs something in the cart.
				s.fillCart(t, s.admin, line{product.Id, 1})
			}
			if r := call(target, query); r.status == http.StatusBadRequest || r.status >= 500 {
				t.Errorf("%s %s (%s) with the documented examples: %d\nbody: %s", method, target, op.OperationID, r.status, r.body)
			}
		}
		if cursor == nil {
			continue
		}
		documentedCursors := documentedCursors(op, cursor)
		if len(documentedCursors) == 0 {
			t.Errorf("%s %s: the cursor has no documented example", method, path)
		}
		for _, c := range documentedCursors {
			q, _ := url.ParseQuery(query.Encode()) // a copy per cursor
			q.Set("cursor", c)
			cursors++
			if r := call(liveTarget, q); r.status != http.StatusOK {
				t.Errorf("%s %s (%s) with the documented cursor %s: %d, want 200\nbody: %s", method, liveTarget, op.OperationID, c, r.status, r.body)
			}
		}
	}
	// Both kinds of cursor (by time, by sequence); every operation.
	if cursors < 4 || calls < 30 {
		t.Fatalf("made %d calls, %d with a cursor: the spec's examples were not found", calls, cursors)
	}
}

// webhookConforms checks a webhook response against the webhook operation
// in the spec: the shared response check leaves the route out because the
// request validator does, but its responses are documented all the same.
func webhookConforms(t *testing.T, req *http.Request, r *resp) {
	t.Helper()
	router, err := specRouter()
	if err != nil {
		t.Fatalf("spec router: %v", err)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("the webhook is not in the spec: %v", err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 r.status,
		Header:                 r.header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(r.body)
	err = openapi3filter.ValidateResponse(context.Background(), in)
	var me openapi3.MultiError
	if err != nil && !(errors.As(err, &me) && len(me) == 0) {
		t.Errorf("webhook response %d does not match the spec: %v\nbody: %s", r.status, err, r.body)
	}
}

// TestWebhookAsDocumented sends the spec's example Stripe event to the
// webhook route, signed and unsigned, and checks both answers against the
// documented responses.
func TestWebhookAsDocumented(t *testing.T) {
	t.Parallel()
	a := setup(t, func(cfg *handlers.Config) { cfg.WebhookSecret = testWebhookSecret })
	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	item := spec.Paths.Value("/v1/webhooks/stripe")
	if item == nil || item.Post == nil || item.Post.RequestBody == nil {
		t.Fatal("the spec does not document POST /v1/webhooks/stripe with a body")
	}
	exs := examplesOf(item.Post.RequestBody.Value.Content.Get("application/json"))
	if len(exs) == 0 {
		t.Fatal("the webhook has no example event")
	}
	payload, err := json.Marshal(exs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		sign   bool
		status int
	}{
		{"signed", true, http.StatusOK}, // for an unknown order: acknowledged, ignored
		{"unsigned", false, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := a.request(t, http.MethodPost, "/v1/webhooks/stripe", "", payload)
			if tc.sign {
				req.Header.Set("Stripe-Signature", payments.SignWebhook(payload, testWebhookSecret, time.Now()))
			}
			r := a.send(t, req)
			r.want(t, tc.status)
			webhookConforms(t, req, r)
		})
	}
}
