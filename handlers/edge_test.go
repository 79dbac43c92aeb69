package handlers_test

import (
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/shopd/shopd/handlers"
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
