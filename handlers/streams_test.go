package handlers_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/handlers"
	"github.com/shopd/shopd/images"
	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/live"
	"github.com/shopd/shopd/ratelimit"
	"github.com/shopd/shopd/store"
)

// streamAPI is the handler with a live hub, served by an http.Server with
// the given read and write timeouts.
type streamAPI struct {
	*api
	db    *sqlx.DB
	admin string
}

func setupStreams(t *testing.T, timeout time.Duration) streamAPI {
	t.Helper()
	return setupStreamsAt(t, timeout, nil)
}

// setupStreamsAt is setupStreams with the tokens' (and so the account
// cache's) clock now; nil is time.Now.
func setupStreamsAt(t *testing.T, timeout time.Duration, now func() time.Time) streamAPI {
	t.Helper()
	dbURL := pgtest.NewURL(t)
	db, err := sqlx.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := store.New(db)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens(auth.TokenConfig{Key: key, Issuer: "shop", Audience: "shop-api", TTL: time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := live.Start(t.Context(), live.Config{DB: db, DatabaseURL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	pictures, err := images.OpenFileStore(t.Context(), t.TempDir(), images.Config{
		PublicURL: "http://127.0.0.1", Secret: []byte(testImageSecret), Store: st, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pictures.Close() })
	h, err := handlers.New(handlers.Config{
		Store: st, Tokens: tokens, Limiter: ratelimit.NewMemory(nil), Log: slog.New(slog.DiscardHandler),
		Streams: hub, StreamHeartbeat: 20 * time.Millisecond, Images: pictures,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = timeout, timeout
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(hub.Shutdown) // first: the streams end, so Close does not wait for them
	u := shoptest.User(t.Context(), t, st, &shoptest.UserOpts{Role: auth.RoleAdmin})
	admin, err := tokens.Issue(u.ID, auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	return streamAPI{api: &api{URL: srv.URL, Store: st, Tokens: tokens, SigningKey: key, client: srv.Client()}, db: db, admin: admin}
}

// cross records a low-stock crossing of a new product and returns its SKU.
func (s streamAPI) cross(t *testing.T) string {
	t.Helper()
	stock, threshold := 20, 10
	p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{Stock: &stock, LowStockThreshold: &threshold})
	if _, err := s.db.Exec(`UPDATE products SET stock = 5 WHERE id = $1`, p.ID); err != nil {
		t.Fatal(err)
	}
	return p.SKU
}

// TestStreamOutlivesServerTimeouts: the server's ReadTimeout and
// WriteTimeout (100 ms here) do not end a stream, which extends its own
// deadlines per write: an event committed after ten times that arrives.
func TestStreamOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	const timeout = 100 * time.Millisecond
	s := setupStreams(t, timeout)
	req := s.request(t, http.MethodGet, "/v1/admin/events", s.admin, nil)
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("X-Request-Id") == "" {
		t.Fatalf("stream: %d %v", res.StatusCode, res.Header)
	}
	lines := bufio.NewScanner(res.Body)
	opened := time.Now()
	heartbeats := 0
	for time.Since(opened) < 10*timeout {
		if !lines.Scan() {
			t.Fatalf("the stream ended after %d heartbeats: %v", heartbeats, lines.Err())
		}
		if lines.Text() == ": heartbeat" {
			heartbeats++
		}
	}
	sku := s.cross(t)
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "data: ") {
			if !strings.Contains(lines.Text(), `"sku":"`+sku+`"`) {
				t.Fatalf("event %s, want the crossing of %s", lines.Text(), sku)
			}
			return
		}
	}
	t.Fatalf("the stream ended before the event: %v", lines.Err())
}

// TestStreamsAsDocumented calls both streams with their documented
// parameter examples: the example Last-Event-ID is a well-formed id (the
// stream opens and resumes after it), the example streamToken is not a
// valid token (401, as documented); every refusal matches the spec.
func TestStreamsAsDocumented(t *testing.T) {
	t.Parallel()
	s := setupStreams(t, time.Minute)
	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	sku := s.cross(t)
	for _, path := range []string{"/v1/admin/events", "/v1/orders/{orderId}/stream"} {
		op := spec.Paths.Value(path).Get
		if op == nil {
			t.Fatalf("GET %s is not in the spec", path)
		}
		examples := map[string]string{}
		for _, p := range op.Parameters {
			if ex, ok := exampleOf(p.Value); ok {
				examples[p.Value.Name] = fmt.Sprint(ex)
			}
		}
		if examples["Last-Event-ID"] == "" || examples["streamToken"] == "" {
			t.Fatalf("GET %s documents no Last-Event-ID or streamToken example: %v", path, examples)
		}
		target := strings.ReplaceAll(path, "{orderId}", url.PathEscape("5d9c7e3a-2b1f-4c6d-8e0a-7f3b5c1d9e2a"))
		// The documented token: refused as a token, not as malformed.
		r := s.send(t, s.request(t, http.MethodGet, target+"?streamToken="+url.QueryEscape(examples["streamToken"]), "", nil))
		if r.status != http.StatusUnauthorized {
			t.Errorf("GET %s with the documented streamToken: %d, want 401\n%s", path, r.status, r.body)
		}
		if path != "/v1/admin/events" {
			r := s.send(t, s.request(t, http.MethodGet, target, s.admin, nil)) // no such order
			if r.status != http.StatusNotFound {
				t.Errorf("GET %s of no order: %d, want 404", target, r.status)
			}
			continue
		}
		req := s.request(t, http.MethodGet, target, s.admin, nil)
		req.Header.Set("Last-Event-ID", examples["Last-Event-ID"])
		res, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK || res.Header.Get("Cache-Control") != "no-store" {
			res.Body.Close()
			t.Fatalf("GET %s with the documented Last-Event-ID: %d, want 200 no-store", path, res.StatusCode)
		}
		// The example id is early: the crossing above comes after it.
		body := bufio.NewReader(res.Body)
		found := false
		for !found {
			line, err := body.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended: %v", err)
			}
			found = strings.Contains(line, sku)
		}
		res.Body.Close()
	}
	// Customers: 403 on the admin stream, documented.
	u := shoptest.User(t.Context(), t, s.Store, nil)
	customer, err := s.Tokens.Issue(u.ID, auth.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.send(t, s.request(t, http.MethodGet, "/v1/admin/events", customer, nil)); r.status != http.StatusForbidden {
		t.Errorf("customer on the admin stream: %d, want 403", r.status)
	}
	// A stream token: documented answer, and refused everywhere else.
	var tok gen.StreamToken
	s.do(t, http.MethodPost, "/v1/auth/stream-token", customer, nil).want(t, http.StatusOK).decode(t, &tok)
	if tok.ExpiresIn != 60 {
		t.Errorf("expiresIn %d, want 60", tok.ExpiresIn)
	}
	s.do(t, http.MethodGet, "/v1/me", tok.StreamToken, nil).want(t, http.StatusUnauthorized)

	// Parameters past the spec's limits are 400, as on every other route.
	for _, target := range []string{
		"/v1/orders/" + strings.Repeat("a", 65) + "/stream",
		"/v1/admin/events?streamToken=" + strings.Repeat("a", 4097),
	} {
		if r := s.send(t, s.request(t, http.MethodGet, target, s.admin, nil)); r.status != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", target[:40], r.status)
		}
	}
}

// TestStreamRefusesLastEventIDFromTheFuture: a Last-Event-ID past every
// event the database could have recorded (a transaction not yet begun, or
// a row id past a bigint) is not an id these streams sent: 400, as the
// spec says, not a stream that silently skips every event to come.
func TestStreamRefusesLastEventIDFromTheFuture(t *testing.T) {
	t.Parallel()
	s := setupStreams(t, time.Minute)
	s.cross(t)
	var xid uint64
	if err := s.db.Get(&xid, `SELECT pg_current_xact_id()::text::bigint`); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{
		"7fffffffffffffff7fffffffffffffff",
		"ffffffffffffffffffffffffffffffff",
		live.Cursor{Xid: xid + 1_000_000, ID: 1}.String(),
		live.Cursor{Xid: xid, ID: 1 << 63}.String(), // past any row id
	} {
		for _, path := range []string{"/v1/admin/events"} {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			req := s.request(t, http.MethodGet, path, s.admin, nil).WithContext(ctx)
			req.Header.Set("Last-Event-ID", id)
			res, err := s.client.Do(req)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
			res.Body.Close()
			cancel()
			if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"field":"Last-Event-ID"`) {
				t.Errorf("GET %s with Last-Event-ID %s: %d %s, want 400 naming Last-Event-ID", path, id, res.StatusCode, body)
			}
		}
	}
	// An id it did send still resumes.
	var sent live.Cursor
	var sentXid string
	if err := s.db.QueryRow(`SELECT xid::text, id FROM stream_events ORDER BY id DESC LIMIT 1`).Scan(&sentXid, &sent.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscan(sentXid, &sent.Xid); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req := s.request(t, http.MethodGet, "/v1/admin/events", s.admin, nil).WithContext(ctx)
	req.Header.Set("Last-Event-ID", sent.String())
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("Last-Event-ID of the last event sent: %d, want 200", res.StatusCode)
	}
}

// TestStreamEndsWhenTheAccountChanges: a stream is authenticated when it
// opens, but an admin demoted (or a user deleted) afterwards must not keep
// receiving every order's events: like any token of theirs, the open
// stream is refused once the account cache has seen the change (here the
// cache's clock is moved past its TTL); the stream ends at its next
// heartbeat.
func TestStreamEndsWhenTheAccountChanges(t *testing.T) {
	t.Parallel()
	var clock shoptest.Clock
	s := setupStreamsAt(t, time.Minute, clock.Now)
	u := shoptest.User(t.Context(), t, s.Store, &shoptest.UserOpts{Role: auth.RoleAdmin})
	admin, err := s.Tokens.Issue(u.ID, auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	res, err := s.client.Do(s.request(t, http.MethodGet, "/v1/admin/events", admin, nil).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", res.StatusCode)
	}
	lines := bufio.NewScanner(res.Body)
	for lines.Scan() && lines.Text() != ": heartbeat" {
	}
	if _, err := s.db.Exec(`UPDATE users SET role = 'customer' WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(auth.DefaultAccountCacheTTL + time.Second)
	for lines.Scan() {
	}
	if ctx.Err() != nil {
		t.Fatal("a demoted admin's stream stayed open")
	}
}
