package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// server is one run of the program.
type server struct {
	base   string
	cancel context.CancelFunc
	done   chan error
	stdout *shoptest.SyncBuffer
	stderr *shoptest.SyncBuffer
}

// shopEnv is a test instance's environment: a new database and data
// directory of its own (unless extra names them, to share them), a port
// the kernel picks, the bootstrap admin (boss@example.com,
// bootstrap-password) and Stripe at stripeURL signing webhooks with
// secret; extra adds to it and overrides it.
func shopEnv(t *testing.T, stripeURL, secret string, extra map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{
		"HTTP_ADDR":             "127.0.0.1:0",
		"BOOTSTRAP_ADMIN_EMAIL": "boss@example.com", "BOOTSTRAP_ADMIN_PASSWORD": "bootstrap-password",
		"STRIPE_API_BASE": stripeURL, "STRIPE_WEBHOOK_SECRET": secret,
	}
	if extra["DATABASE_URL"] == "" {
		env["DATABASE_URL"] = pgtest.NewURL(t)
	}
	if extra["DATA_DIR"] == "" {
		env["DATA_DIR"] = t.TempDir()
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// start runs the program in the background and returns once it serves and
// /healthz answers. Tests give HTTP_ADDR port 0: the Serving hook tells
// where the kernel put it, so no port has to be found free first.
func start(t *testing.T, env map[string]string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cancel: cancel, done: make(chan error, 1), stdout: &shoptest.SyncBuffer{}, stderr: &shoptest.SyncBuffer{}}
	getenv := func(k string) string { return env[k] }
	serving := make(chan string, 1)
	p := Program{Serving: func(base string) { serving <- base }}
	go func() { s.done <- p.Run(ctx, nil, getenv, s.stdout, s.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
		}
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", s.stdout, s.stderr)
		}
	})

	select {
	case s.base = <-serving:
	case err := <-s.done:
		t.Fatalf("run returned before serving: %v\nstderr:\n%s", err, s.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("not serving within 30s\nstderr:\n%s", s.stderr)
	}
	res, err := http.Get(s.base + "/healthz")
	if err != nil {
		t.Fatalf("/healthz: %v\nstderr:\n%s", err, s.stderr)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/healthz answered %d, want 200", res.StatusCode)
	}
	return s
}

// stop cancels the context and checks that run shuts down cleanly.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("run returned %v after cancel, want nil", err)
		}
		s.done <- nil // for the cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return within 15s of cancel")
	}
}

// call sends a JSON request and decodes a JSON answer into out (when not nil).
func (s *server) call(t *testing.T, method, path, token string, body, out any) int {
	t.Helper()
	return shoptest.Call(t, s.base, method, path, token, nil, body, out)
}

func TestRunServesAndShutsDown(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	env := map[string]string{
		"DATABASE_URL":             dbURL,
		"HTTP_ADDR":                "127.0.0.1:0",
		"DATA_DIR":                 t.TempDir(),
		"BOOTSTRAP_ADMIN_EMAIL":    "Boss@Example.com",
		"BOOTSTRAP_ADMIN_PASSWORD": "bootstrap-password",
	}

	s := start(t, env)
	var tok struct {
		AccessToken string `json:"accessToken"`
	}
	login := map[string]any{"email": "boss@example.com", "password": "bootstrap-password"}
	if st := s.call(t, http.MethodPost, "/v1/auth/login", "", login, &tok); st != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("bootstrap admin login: %d", st)
	}
	var me struct {
		Role string `json:"role"`
	}
	if st := s.call(t, http.MethodGet, "/v1/me", tok.AccessToken, nil, &me); st != http.StatusOK || me.Role != "admin" {
		t.Fatalf("GET /v1/me: %d, role %q; want the bootstrap admin", st, me.Role)
	}
	var p struct {
		ID string `json:"id"`
	}
	product := map[string]any{"sku": "RUN-1", "name": "From run", "priceCents": 1500, "stock": 3}
	if st := s.call(t, http.MethodPost, "/v1/products", tok.AccessToken, product, &p); st != http.StatusCreated {
		t.Fatalf("create product: %d", st)
	}
	if st := s.call(t, http.MethodGet, "/v1/products/"+p.ID, "", nil, nil); st != http.StatusOK {
		t.Fatalf("get product: %d", st)
	}
	if st := s.call(t, http.MethodGet, "/readyz", "", nil, nil); st != http.StatusOK {
		t.Errorf("/readyz: %d", st)
	}
	if !strings.Contains(s.stdout.String(), s.base) {
		t.Errorf("the banner does not name %s:\n%s", s.base, s.stdout)
	}
	s.stop(t)
	if _, err := http.Get(s.base + "/healthz"); err == nil {
		t.Error("still serving after run returned")
	}

	// A second start with the same environment: one admin still, the same
	// signing key (from DATA_DIR) so earlier tokens stay valid, the data kept.
	s = start(t, env)
	if st := s.call(t, http.MethodGet, "/v1/me", tok.AccessToken, nil, nil); st != http.StatusOK {
		t.Errorf("a token from the first run: %d after restart, want 200", st)
	}
	if st := s.call(t, http.MethodGet, "/v1/products/"+p.ID, "", nil, nil); st != http.StatusOK {
		t.Errorf("product from the first run: %d", st)
	}
	if st := s.call(t, http.MethodPost, "/v1/auth/login", "", login, nil); st != http.StatusOK {
		t.Errorf("admin login after restart: %d", st)
	}
	s.stop(t)

	db, err := sqlx.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var admins int
	if err := db.Get(&admins, `SELECT count(*) FROM users WHERE role = 'admin'`); err != nil {
		t.Fatal(err)
	}
	if admins != 1 {
		t.Errorf("admins = %d after two starts, want 1", admins)
	}
	if !filepath.IsAbs(env["DATA_DIR"]) {
		t.Fatal("DATA_DIR must be absolute for this test")
	}
}

func TestRunFailsOnBadConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/none", "PAYMENT_WINDOW": "abc"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Run(ctx, nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "PAYMENT_WINDOW") {
		t.Errorf("run = %v, want a config error naming PAYMENT_WINDOW", err)
	}
	if err := Run(ctx, []string{"bogus"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Error("an unknown command did not fail")
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := LoadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(".data")
	checks := []struct {
		name      string
		got, want any
	}{
		{"HTTPAddr", c.HTTPAddr, "127.0.0.1:8080"},
		{"JWTIssuer", c.JWTIssuer, "shop"},
		{"JWTAudience", c.JWTAudience, "shop-api"},
		{"PaymentWindow", c.PaymentWindow, time.Hour},
		{"CheckoutsPerHour", c.CheckoutsPerHour, 100},
		{"SearchesPerHour", c.SearchesPerHour, 1000},
		{"LoginFailuresPerMinute", c.LoginFailuresPerMinute, 10},
		{"TaxRateBPS", c.TaxRateBPS, int64(1000)},
		{"ShippingFlatCents", c.ShippingFlatCents, int64(1000)},
		{"FreeShippingOverCents", c.FreeShippingOverCents, int64(10000)},
		{"DataDir", c.DataDir, abs},
		{"DatabaseURL", c.DatabaseURL, ""},
		{"StripeWebhookSecret", c.StripeWebhookSecret, ""},
		{"RedisURL", c.RedisURL, ""},
		{"BootstrapAdminEmail", c.BootstrapAdminEmail, ""},
		{"StreamHeartbeat", c.StreamHeartbeat, 15 * time.Second},
		{"StreamMax", c.StreamMax, 1000},
		{"CatalogCacheMB", c.CatalogCacheMB, 8},
		{"DBMaxConns", c.DBMaxConns, 16},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadConfigOverrides(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DATABASE_URL":              "postgres://db/shop",
		"HTTP_ADDR":                 ":9000",
		"PAYMENT_WINDOW":            "30m",
		"QUOTA_SEARCHES_PER_HOUR":   "0",
		"QUOTA_CHECKOUTS_PER_HOUR":  "5",
		"LOGIN_FAILURES_PER_MINUTE": "3",
		"TAX_RATE_BPS":              "2000",
		"STRIPE_API_BASE":           "http://127.0.0.1:12111",
		"TRUSTED_PROXIES":           "10.0.0.0/8, 192.0.2.7",
		"CORS_ALLOWED_ORIGINS":      "https://a.example,https://b.example",
		"STREAM_HEARTBEAT":          "250ms",
		"STREAM_MAX":                "3",
		"CATALOG_CACHE_MB":          "64",
		"DB_MAX_CONNS":              "24",
	}
	c, err := LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "postgres://db/shop" || c.HTTPAddr != ":9000" || c.PaymentWindow != 30*time.Minute || c.SearchesPerHour != 0 ||
		c.CheckoutsPerHour != 5 || c.LoginFailuresPerMinute != 3 || c.TaxRateBPS != 2000 ||
		c.StreamHeartbeat != 250*time.Millisecond || c.StreamMax != 3 || c.CatalogCacheMB != 64 || c.DBMaxConns != 24 {
		t.Errorf("config = %+v", c)
	}
	if c.StripeSecretKey == "" {
		t.Error("STRIPE_API_BASE without a key should get a test key")
	}
	if len(c.TrustedProxies) != 2 || c.TrustedProxies[1].String() != "192.0.2.7/32" {
		t.Errorf("trusted proxies = %v", c.TrustedProxies)
	}
	if len(c.CORSOrigins) != 2 || c.CORSOrigins[1] != "https://b.example" {
		t.Errorf("CORS origins = %v", c.CORSOrigins)
	}
	if c.StripeWebhookSecret != "" {
		t.Error("no webhook secret should be made up")
	}
}

func TestLoadConfigRejectsBadValues(t *testing.T) {
	t.Parallel()
	cases := []struct {
		variable, value string
		// names is the variable the error must name.
		names string
	}{
		{"PAYMENT_WINDOW", "abc", ""},
		{"PAYMENT_WINDOW", "-1h", ""},
		{"PAYMENT_WINDOW", "0s", ""},
		{"JWT_TTL", "soon", ""},
		{"CHECKOUT_LEASE", "31s", ""},
		{"CHECKOUT_LEASE", "1ms", ""},
		{"QUOTA_SEARCHES_PER_HOUR", "-1", ""},
		{"QUOTA_CHECKOUTS_PER_HOUR", "many", ""},
		{"LOGIN_FAILURES_PER_MINUTE", "1.5", ""},
		{"TAX_RATE_BPS", "10001", ""},
		{"SHIPPING_FLAT_CENTS", "-100", ""},
		{"TRUSTED_PROXIES", "10.0.0.0/33", ""},
		{"TRUSTED_PROXIES", "proxy.internal", ""},
		{"STREAM_HEARTBEAT", "often", ""},
		{"STREAM_HEARTBEAT", "0s", ""},
		{"STREAM_MAX", "0", ""},
		{"STREAM_MAX", "-5", ""},
		{"STREAM_MAX", "lots", ""},
		{"CATALOG_CACHE_MB", "-1", ""},
		{"CATALOG_CACHE_MB", "5000", ""},
		{"CATALOG_CACHE_MB", "some", ""},
		{"DB_MAX_CONNS", "1", ""},
		{"DB_MAX_CONNS", "lots", ""},
		{"BOOTSTRAP_ADMIN_EMAIL", "a@example.com", "BOOTSTRAP_ADMIN_PASSWORD"},
		{"BOOTSTRAP_ADMIN_PASSWORD", "secret-password", "BOOTSTRAP_ADMIN_EMAIL"},
	}
	for _, tc := range cases {
		t.Run(tc.variable+"="+tc.value, func(t *testing.T) {
			t.Parallel()
			_, err := LoadConfig(func(k string) string {
				if k == tc.variable {
					return tc.value
				}
				return ""
			})
			if err == nil {
				t.Fatal("no error")
			}
			names := tc.names
			if names == "" {
				names = tc.variable
			}
			if !strings.Contains(err.Error(), names) {
				t.Errorf("error %q does not name %s", err, names)
			}
		})
	}

	// Every bad value is reported at once.
	_, err := LoadConfig(func(k string) string {
		return map[string]string{"PAYMENT_WINDOW": "abc", "QUOTA_SEARCHES_PER_HOUR": "-1"}[k]
	})
	if err == nil || !strings.Contains(err.Error(), "PAYMENT_WINDOW") || !strings.Contains(err.Error(), "QUOTA_SEARCHES_PER_HOUR") {
		t.Errorf("error %v does not name both bad variables", err)
	}
}

func TestRunRefusesWithoutDatabaseURL(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{nil, {"migrate"}} {
		dataDir := t.TempDir()
		env := map[string]string{"HTTP_ADDR": "127.0.0.1:0", "DATA_DIR": dataDir}
		var stdout, stderr bytes.Buffer
		err := Run(context.Background(), args, func(k string) string { return env[k] }, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "DATABASE_URL is not set") || !strings.Contains(err.Error(), "make run") {
			t.Errorf("Run(%q) = %v, want an error naming DATABASE_URL and pointing at make run", args, err)
		}
		// Nothing was started: no cluster, no key, no listener.
		if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
			t.Errorf("Run(%q) wrote %d entries into DATA_DIR", args, len(entries))
		}
		if stdout.Len() != 0 {
			t.Errorf("Run(%q) printed %q", args, stdout.String())
		}
	}
}

// TestServingHook checks that a launcher learns the address the server
// really listens on, here a port the kernel chose.
func TestServingHook(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DATABASE_URL": pgtest.NewURL(t),
		"HTTP_ADDR":    "127.0.0.1:0",
		"DATA_DIR":     t.TempDir(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	serving := make(chan string, 1)
	done := make(chan error, 1)
	var stdout, stderr shoptest.SyncBuffer
	go func() {
		p := Program{Serving: func(base string) { serving <- base }}
		done <- p.Run(ctx, nil, func(k string) string { return env[k] }, &stdout, &stderr)
	}()
	var base string
	select {
	case base = <-serving:
	case err := <-done:
		t.Fatalf("run returned before serving: %v\n%s", err, stderr.String())
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") || strings.HasSuffix(base, ":0") {
		t.Errorf("base URL %q, want http://127.0.0.1:<the kernel's port>", base)
	}
	res, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET %s/healthz: %d", base, res.StatusCode)
	}
	if !strings.Contains(stdout.String(), base+"/v1") {
		t.Errorf("the banner does not name %s:\n%s", base, stdout.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run returned %v after cancel, want nil", err)
	}
}

func TestBaseURL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		addr *net.TCPAddr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "http://127.0.0.1:8080"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, "http://127.0.0.1:8080"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9000}, "http://[::1]:9000"},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 80}, "http://192.0.2.7:80"},
	}
	for _, c := range cases {
		if got := baseURL(c.addr); got != c.want {
			t.Errorf("baseURL(%v) = %q, want %q", c.addr, got, c.want)
		}
	}
}
