package handlers_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/jmoiron/sqlx"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/handlers"
	"github.com/shopd/shopd/images"
	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/orders"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/ratelimit"
	"github.com/shopd/shopd/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testImageSecret signs the test servers' image URLs.
const testImageSecret = "test image URL secret, 32+ bytes long"

// testPassword is every test account's password.
const testPassword = "correct-horse-battery"

// api is a running server on a fresh database, plus what tests need to
// reach behind it: the store to arrange and inspect state, the money path
// service, and the signing key to forge tokens.
type api struct {
	URL        string
	Store      *store.Store
	Tokens     *auth.Tokens
	Orders     *orders.Service
	SigningKey *ecdsa.PrivateKey
	// Images is the server's image service: a file store in a temporary
	// folder unless an option sets another.
	Images *images.Service
	// ServerRead counts the bytes the server has read from its connections.
	ServerRead *atomic.Int64

	client *http.Client
}

// setup starts the server the way main builds it (handlers.New) on a new
// migrated database. opts change the Config before the server is built.
func setup(t *testing.T, opts ...func(*handlers.Config)) *api {
	t.Helper()
	return setupOn(t, newTestDB(t), opts...)
}

// newTestDB is a pool on a new migrated database, its URL kept for
// options that connect on their own (databaseURLs).
func newTestDB(t *testing.T) *sqlx.DB {
	t.Helper()
	db, url := pgtest.NewDBAndURL(t)
	databaseURLs.Store(db, url)
	return db
}

// setupOn is setup on the pool db, a new migrated database.
func setupOn(t *testing.T, db *sqlx.DB, opts ...func(*handlers.Config)) *api {
	t.Helper()
	st := store.New(db)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate signing key: %v", err)
	}
	tokens, err := auth.NewTokens(auth.TokenConfig{Key: key, Issuer: "shop", Audience: "shop-api", TTL: time.Hour})
	if err != nil {
		t.Fatalf("tokens: %v", err)
	}
	// Wired as main wires them, with the production defaults; each server
	// has its own limiter. Payments stay nil (Stripe not configured) unless
	// an option sets cfg.Orders.Payments.
	limiter := ratelimit.NewMemory(nil)
	log := slog.New(slog.DiscardHandler)
	// Started once the handler exists; its address is the image URLs' base.
	srv := httptest.NewUnstartedServer(nil)
	serverRead := &atomic.Int64{}
	srv.Listener = countingListener{srv.Listener, serverRead}
	// Registered after the database's cleanup, so it runs first: no
	// request is in flight when the pool closes.
	t.Cleanup(srv.Close)
	pictures, err := images.OpenFileStore(t.Context(), t.TempDir(), images.Config{
		PublicURL: "http://" + srv.Listener.Addr().String(), Secret: []byte(testImageSecret), Store: st, Log: log,
	})
	if err != nil {
		t.Fatalf("images: %v", err)
	}
	t.Cleanup(func() { pictures.Close() })
	cfg := handlers.Config{
		Store:                  st,
		Tokens:                 tokens,
		Limiter:                limiter,
		Log:                    log,
		LoginFailuresPerMinute: 10,
		SearchesPerHour:        1000,
		Orders: &orders.Service{
			Store:         st,
			Pricing:       shopd.DefaultPricing,
			PaymentWindow: time.Hour,
			Limiter:       limiter,
			CheckoutLimit: ratelimit.PerHour(100),
			Log:           log,
		},
		Images: pictures,
	}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := handlers.New(cfg)
	if err != nil {
		t.Fatalf("handlers.New: %v", err)
	}
	srv.Config.Handler = h
	srv.Start()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &api{URL: srv.URL, Store: st, Tokens: tokens, Orders: cfg.Orders, SigningKey: key, Images: cfg.Images, ServerRead: serverRead, client: client}
}

// databaseURLs is the URL of each test database, by its pool: for
// options that connect on their own (withCatalogCache).
var databaseURLs sync.Map

// countingListener counts what the server reads from its connections.
type countingListener struct {
	net.Listener
	read *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.read}, nil
}

type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// resp is a response with its body read.
type resp struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the body into v.
func (r *resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %d response: %v\nbody: %s", r.status, err, r.body)
	}
}

// want fails the test unless the status is status.
func (r *resp) want(t *testing.T, status int) *resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d\nbody: %s", r.status, status, r.body)
	}
	return r
}

// request builds a request to path. body is nil (none), a string or
// []byte (sent as is) or any other value (sent as JSON); a body is labelled
// application/json. An empty token sends no Authorization header.
func (a *api) request(t *testing.T, method, path, token string, body any) *http.Request {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode request body: %v", err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.URL+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// do sends a request (see request) and returns the validated response.
func (a *api) do(t *testing.T, method, path, token string, body any) *resp {
	t.Helper()
	return a.send(t, a.request(t, method, path, token, body))
}

// send sends req; a transport failure ends the test. For requests sent from
// other goroutines use roundTrip, which does not.
func (a *api) send(t *testing.T, req *http.Request) *resp {
	t.Helper()
	r, err := a.roundTrip(t, req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	return r
}

// sendUnchecked sends a request the spec cannot describe (an invented
// method, say) and returns the response unvalidated.
func (a *api) sendUnchecked(t *testing.T, req *http.Request) *resp {
	t.Helper()
	res, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("%.20s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return &resp{status: res.StatusCode, header: res.Header, body: body}
}

// roundTrip sends req, reads the response and checks it against the spec
// (a mismatch is a t.Errorf). It is safe to call from any goroutine.
func (a *api) roundTrip(t *testing.T, req *http.Request) (*resp, error) {
	t.Helper()
	res, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	r := &resp{status: res.StatusCode, header: res.Header, body: body}
	if err := conformsToSpec(req, r); err != nil {
		t.Errorf("%s %s: response %d does not match the spec: %v\nbody: %s", req.Method, req.URL.Path, r.status, err, body)
	}
	return r, nil
}

// declareBody makes req claim a body of size bytes while sending only its
// first byte until the server answers. A server that refuses a body by its
// Content-Length answers without reading it; had the client written it all,
// the server's close could reset the connection before the answer is read.
func declareBody(t *testing.T, req *http.Request, size int64) {
	t.Helper()
	pr, pw := io.Pipe()
	go func() { _, _ = pw.Write([]byte("{")) }() // ends when the transport closes pr
	t.Cleanup(func() { pw.Close() })
	req.Body, req.GetBody, req.ContentLength = pr, nil, size
	req.Close = true
}

// outsideSpec are the paths the spec does not describe.
func outsideSpec(path string) bool {
	return path == "/metrics" || strings.HasPrefix(path, "/debug/pprof/") || path == "/openapi.yaml" || path == "/openapi.json" ||
		path == "/docs" || strings.HasPrefix(path, "/docs/") || path == "/v1/webhooks/stripe"
}

// specRouter finds a request's operation in the spec; loaded once.
var specRouter = sync.OnceValues(func() (routers.Router, error) {
	spec, err := gen.GetSpec()
	if err != nil {
		return nil, err
	}
	// Match any host: the test server's is random.
	spec.Servers = nil
	return gorillamux.NewRouter(spec)
})

// conformsToSpec checks status, headers and body of a response to req
// against its operation; an undocumented status is an error too.
func conformsToSpec(req *http.Request, r *resp) error {
	if outsideSpec(req.URL.Path) {
		return nil
	}
	router, err := specRouter()
	if err != nil {
		return fmt.Errorf("load spec: %w", err)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("no operation in the spec: %w", err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
			Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  r.status,
		Header:  r.header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(r.body)
	err = openapi3filter.ValidateResponse(context.Background(), in)
	var me openapi3.MultiError
	if errors.As(err, &me) && len(me) == 0 {
		return nil
	}
	return err
}

// randomHex returns n random bytes in hex, for unique names.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// uniqueEmail is an address no other test uses.
func uniqueEmail() string { return "user-" + randomHex(6) + "@example.com" }

// login logs in through the API and returns the access token.
func (a *api) login(t *testing.T, email, password string) string {
	t.Helper()
	var tok gen.TokenResponse
	a.do(t, http.MethodPost, "/v1/auth/login", "", map[string]any{"email": email, "password": password}).
		want(t, http.StatusOK).decode(t, &tok)
	return tok.AccessToken
}

// register creates a customer through the API and returns it.
func (a *api) register(t *testing.T, email string) gen.Customer {
	t.Helper()
	var c gen.Customer
	a.do(t, http.MethodPost, "/v1/auth/register", "", map[string]any{
		"email": email, "password": testPassword, "firstName": "Ada", "lastName": "Lovelace",
	}).want(t, http.StatusCreated).decode(t, &c)
	return c
}

// customer registers a new customer, logs in, and returns the token and id.
func (a *api) customer(t *testing.T) (token, id string) {
	t.Helper()
	email := uniqueEmail()
	c := a.register(t, email)
	return a.login(t, email, testPassword), c.Id
}

// admin creates an admin in the store (there is no API for it) and logs
// in through the API.
func (a *api) admin(t *testing.T) string {
	t.Helper()
	hash, err := fastHash()
	if err != nil {
		t.Fatal(err)
	}
	email := "admin-" + randomHex(6) + "@example.com"
	shoptest.User(t.Context(), t, a.Store, &shoptest.UserOpts{Email: email, PasswordHash: hash, Role: auth.RoleAdmin,
		FirstName: "Grace", LastName: "Hopper"})
	return a.login(t, email, testPassword)
}

// productBody is a valid ProductCreate with a unique SKU; overrides replace
// fields, and a nil override removes one.
func productBody(overrides map[string]any) map[string]any {
	b := map[string]any{
		"sku":        "SKU-" + randomHex(5),
		"name":       "Test product",
		"priceCents": 1999,
		"stock":      10,
	}
	maps.Copy(b, overrides)
	for k, v := range b {
		if v == nil {
			delete(b, k)
		}
	}
	return b
}

// product creates a product through the API (see productBody).
func (a *api) product(t *testing.T, adminToken string, overrides map[string]any) gen.Product {
	t.Helper()
	var p gen.Product
	a.do(t, http.MethodPost, "/v1/products", adminToken, productBody(overrides)).
		want(t, http.StatusCreated).decode(t, &p)
	return p
}

// apiProblem is a problem+json body.
type apiProblem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Instance  string `json:"instance"`
	RequestID string `json:"requestId"`
	Errors    []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// hasFieldError reports whether the problem names field.
func (p apiProblem) hasFieldError(field string) bool {
	for _, e := range p.Errors {
		if e.Field == field {
			return true
		}
	}
	return false
}

// expectProblem checks that r is a problem+json document for status and
// returns it.
func expectProblem(t *testing.T, r *resp, status int) apiProblem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d\nbody: %s", r.status, status, r.body)
	}
	ct, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil || ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", r.header.Get("Content-Type"))
	}
	var p apiProblem
	r.decode(t, &p)
	if p.Type == "" || p.Title == "" {
		t.Errorf("problem lacks type or title: %s", r.body)
	}
	if p.Status != status {
		t.Errorf("problem status = %d, want %d", p.Status, status)
	}
	if p.RequestID != "" && p.RequestID != r.header.Get("X-Request-Id") {
		t.Errorf("problem requestId %q differs from X-Request-Id %q", p.RequestID, r.header.Get("X-Request-Id"))
	}
	checkProblemKind(t, p.Type, p.Title, p.Status)
	return p
}

// checkProblemKind fails unless the problem's type is in the server's
// table with that title and status: one title and status per type.
func checkProblemKind(t *testing.T, typ, title string, status int) {
	t.Helper()
	code, ok := strings.CutPrefix(typ, handlers.ProblemTypeBase)
	kind, known := handlers.ProblemKinds()[code]
	if !ok || !known {
		t.Errorf("problem type %q is not in the problem table", typ)
		return
	}
	if title != kind.Title || status != kind.Status {
		t.Errorf("problem %s: title %q, status %d; the table says %q, %d", code, title, status, kind.Title, kind.Status)
	}
}

// productCount counts every product row, archived ones included.
func (a *api) productCount(t *testing.T) int {
	t.Helper()
	var n int
	if err := a.Store.DB().Get(&n, `SELECT count(*) FROM products`); err != nil {
		t.Fatal(err)
	}
	return n
}

// testWebhookSecret signs the Stripe events tests send (see withPayments).
const testWebhookSecret = "whsec_test_shopd"

// withPayments plugs a Stripe API at base (a stripefake's or stripe-mock's
// URL) into the money path, without network retries so that injected
// faults are deterministic, and sets the webhook signing secret.
func withPayments(base string) func(*handlers.Config) {
	return func(cfg *handlers.Config) {
		cfg.Orders.Payments = payments.New(payments.Config{SecretKey: "sk_test_x", APIBase: base, MaxNetworkRetries: -1})
		cfg.WebhookSecret = testWebhookSecret
	}
}
