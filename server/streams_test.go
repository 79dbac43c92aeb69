package server

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/internal/stripefake"
	"github.com/shopd/shopd/live"
)

// sseEvent is one event as a client parses it off the wire.
type sseEvent struct {
	ID, Event string
	Data      streamData
}

// streamData is an event's data, every field as sent (null or not).
type streamData struct {
	Type              string  `json:"type"`
	OrderID           *string `json:"orderId"`
	OrderNumber       *string `json:"orderNumber"`
	Status            *string `json:"status"`
	PaymentStatus     *string `json:"paymentStatus"`
	FulfillmentStatus *string `json:"fulfillmentStatus"`
	ProductID         *string `json:"productId"`
	SKU               *string `json:"sku"`
	Stock             *int    `json:"stock"`
	OccurredAt        string  `json:"occurredAt"`
}

// sseClient reads one open stream: events and comment lines, in order, as
// they come; items is closed when the stream ends.
type sseClient struct {
	res   *http.Response
	items chan sseItem
	raw   map[string]json.RawMessage // the last event's data, field by field
	mu    sync.Mutex
}

// sseItem is an event, or a comment (heartbeat) when Comment is set.
type sseItem struct {
	sseEvent
	Comment string
}

// openStream opens path on base with the token (bearer, unless it is in
// the path's query) and the extra headers, and wants 200.
func openStream(t *testing.T, base, path, token string, header map[string]string) *sseClient {
	t.Helper()
	res := streamRequest(t, base, path, token, header)
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("GET %s: %d %s, want 200", path, res.StatusCode, b)
	}
	return readStream(t, res)
}

// readStream reads an open stream's response (200).
func readStream(t *testing.T, res *http.Response) *sseClient {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	c := &sseClient{res: res, items: make(chan sseItem, 10000)}
	go c.read()
	t.Cleanup(func() { res.Body.Close() })
	// The stream starts with a comment: by then it is subscribed.
	if it := c.next(t); it.Comment != "connected" {
		t.Fatalf("first item %+v, want the connected comment", it)
	}
	return c
}

func streamRequest(t *testing.T, base, path, token string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (c *sseClient) read() {
	defer close(c.items)
	sc := bufio.NewScanner(c.res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var it sseItem
	var data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if it.Event != "" {
				_ = json.Unmarshal([]byte(data), &it.Data)
				var raw map[string]json.RawMessage
				_ = json.Unmarshal([]byte(data), &raw)
				c.mu.Lock()
				c.raw = raw
				c.mu.Unlock()
				c.items <- it
			}
			it, data = sseItem{}, ""
		case strings.HasPrefix(line, ": "):
			c.items <- sseItem{Comment: strings.TrimPrefix(line, ": ")}
		case strings.HasPrefix(line, "id: "):
			it.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			it.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// next is the next item, failing after 60 s (a bound for a loaded
// machine, not an expectation) or at the stream's end.
func (c *sseClient) next(t *testing.T) sseItem {
	t.Helper()
	select {
	case it, ok := <-c.items:
		if !ok {
			t.Fatal("the stream ended")
		}
		return it
	case <-time.After(60 * time.Second):
		t.Fatal("nothing on the stream within 60s")
	}
	return sseItem{}
}

// events takes the next n events, skipping heartbeats.
func (c *sseClient) events(t *testing.T, n int) []sseEvent {
	t.Helper()
	var out []sseEvent
	for len(out) < n {
		if it := c.next(t); it.Comment == "" {
			out = append(out, it.sseEvent)
		}
	}
	return out
}

// ended reports whether the stream ends (after its remaining items)
// within 60 s.
func (c *sseClient) ended() ([]sseEvent, bool) {
	var rest []sseEvent
	timeout := time.After(60 * time.Second)
	for {
		select {
		case it, ok := <-c.items:
			if !ok {
				return rest, true
			}
			if it.Comment == "" {
				rest = append(rest, it.sseEvent)
			}
		case <-timeout:
			return rest, false
		}
	}
}

// shop is a server (or two on one database) with an admin, the database
// and the Stripe double the checkout uses.
type shop struct {
	db      *sqlx.DB
	admin   string
	secret  string
	dataDir string
}

const streamWebhookSecret = "whsec_streams"

// startShops runs n instances on one database, sharing a signing key.
func startShops(t *testing.T, n int, extra map[string]string) ([]*server, shop) {
	t.Helper()
	fake := stripefake.New(t)
	dbURL := pgtest.NewURL(t)
	dataDir := t.TempDir()
	var out []*server
	for range n {
		env := shopEnv(t, fake.URL, streamWebhookSecret, map[string]string{
			"DATABASE_URL": dbURL, "DATA_DIR": dataDir, "STREAM_HEARTBEAT": "50ms", "JOB_POLL_INTERVAL": "50ms",
		})
		for k, v := range extra {
			env[k] = v
		}
		out = append(out, start(t, env))
	}
	db, err := sqlx.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sh := shop{db: db, secret: streamWebhookSecret, dataDir: dataDir}
	sh.admin = out[0].token(t, "boss@example.com", "bootstrap-password")
	return out, sh
}

// crossings records n low-stock crossings in one transaction, straight in
// the database (as any instance's stock change would): n products with
// stock 20 and threshold 10 whose stock falls to 5. It returns their SKUs
// in the order the crossings are recorded.
func (sh shop) crossings(t *testing.T, n int) []string {
	t.Helper()
	prefix := "X-" + uuid.NewString()[:8] + "-"
	var skus []string
	err := sh.db.Select(&skus, `
		WITH p AS (
			INSERT INTO products (sku, name, price_cents, currency, stock, low_stock_threshold)
			SELECT $1 || lpad(i::text, 6, '0'), 'Crossing ' || i, 1000, 'usd', 20, 10
			FROM generate_series(1, $2) AS i
			RETURNING id
		)
		SELECT sku FROM products WHERE id IN (SELECT id FROM p) ORDER BY sku`, prefix, n)
	if err != nil {
		t.Fatal(err)
	}
	// One statement: the crossings' rows follow the scan order, so the
	// SKUs are read back in the order they were recorded.
	if _, err := sh.db.Exec(`UPDATE products SET stock = 5 WHERE sku LIKE $1 || '%'`, prefix); err != nil {
		t.Fatal(err)
	}
	var recorded []string
	if err := sh.db.Select(&recorded, `SELECT sku FROM stream_events WHERE sku LIKE $1 || '%' ORDER BY xid, id`, prefix); err != nil {
		t.Fatal(err)
	}
	if len(recorded) != n {
		t.Fatalf("%d crossings recorded, want %d", len(recorded), n)
	}
	return recorded
}

func skusOf(events []sseEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		if e.Data.SKU != nil {
			out[i] = *e.Data.SKU
		}
	}
	return out
}

// increasing checks that the events' ids increase, as the server orders
// them and as text.
func increasing(t *testing.T, events []sseEvent) {
	t.Helper()
	for i := 1; i < len(events); i++ {
		if events[i].ID <= events[i-1].ID {
			t.Fatalf("event %d id %s after %s: not increasing", i, events[i].ID, events[i-1].ID)
		}
	}
}

// TestStreamAcrossInstances: an admin and a customer subscribe on one
// instance; the customer checks out and is paid, and stock falls through
// its threshold, all through the other instance. Both streams get their
// events, with exactly the documented data.
func TestStreamAcrossInstances(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 2, nil)
	a, b := servers[0], servers[1]
	adminStream := openStream(t, b.base, "/v1/admin/events", sh.admin, nil)

	var p struct{ ID, SKU string }
	if st := a.call(t, http.MethodPost, "/v1/products", sh.admin, map[string]any{"sku": "S-" + uuid.NewString()[:8], "name": "Kettle", "priceCents": 1500, "stock": 11}, &p); st != http.StatusCreated {
		t.Fatalf("create product: %d", st)
	}
	email := "ada-" + uuid.NewString()[:8] + "@example.com"
	if st := a.call(t, http.MethodPost, "/v1/auth/register", "", map[string]any{"email": email, "password": "a-long-password", "firstName": "Ada", "lastName": "Lovelace"}, nil); st != http.StatusCreated {
		t.Fatalf("register: %d", st)
	}
	customer := a.token(t, email, "a-long-password")
	if st := a.call(t, http.MethodPost, "/v1/cart/items", customer, map[string]any{"productId": p.ID, "quantity": 1}, nil); st != http.StatusCreated {
		t.Fatalf("add to cart: %d", st)
	}
	addr := map[string]any{"firstName": "Ada", "lastName": "Lovelace", "line1": "1 Road", "city": "London", "postalCode": "N1", "country": "GB"}
	order := checkout(t, a, customer, addr)

	got := adminStream.events(t, 2)
	slices.SortFunc(got, func(x, y sseEvent) int { return strings.Compare(x.Event, y.Event) })
	low, placedEv := got[0], got[1]
	if low.Event != live.InventoryLowStock || placedEv.Event != live.OrderPlaced {
		t.Fatalf("events %q and %q, want a low-stock crossing and order.placed", low.Event, placedEv.Event)
	}
	if d := low.Data; d.Type != low.Event || d.ProductID == nil || *d.ProductID != p.ID || d.Stock == nil || *d.Stock != 10 ||
		d.OrderID != nil || d.OrderNumber != nil || d.Status != nil || d.PaymentStatus != nil || d.FulfillmentStatus != nil || d.OccurredAt == "" {
		t.Errorf("low-stock data %+v", d)
	}
	if d := placedEv.Data; d.Type != placedEv.Event || d.OrderID == nil || *d.OrderID != order.Order.ID ||
		d.OrderNumber == nil || *d.OrderNumber != order.Order.OrderNumber || *d.Status != "pending" || *d.PaymentStatus != "pending" ||
		*d.FulfillmentStatus != "unfulfilled" || d.ProductID != nil || d.SKU != nil || d.Stock != nil {
		t.Errorf("order.placed data %+v, want order %s (%s) pending", d, order.Order.ID, order.Order.OrderNumber)
	}
	adminStream.mu.Lock()
	if len(adminStream.raw) != 10 {
		t.Errorf("data has %d fields, want all 10 present: %v", len(adminStream.raw), adminStream.raw)
	}
	adminStream.mu.Unlock()

	// The customer follows the order on b; it is paid through a.
	orderStream := openStream(t, b.base, "/v1/orders/"+order.Order.ID+"/stream", customer, nil)
	a.deliver(t, paidEvent(order), sh.secret)
	paid := orderStream.events(t, 1)[0]
	if paid.Event != live.OrderPaid || *paid.Data.OrderID != order.Order.ID || *paid.Data.Status != "processing" || *paid.Data.PaymentStatus != "paid" {
		t.Errorf("order stream: %+v, want order.paid, processing", paid)
	}
	if adminPaid := adminStream.events(t, 1)[0]; adminPaid.ID != paid.ID || adminPaid.Event != live.OrderPaid {
		t.Errorf("admin stream: %+v, want the same order.paid (id %s)", adminPaid, paid.ID)
	}
	if paid.ID <= placedEv.ID {
		t.Errorf("order.paid id %s not after order.placed's %s", paid.ID, placedEv.ID)
	}
	if m := b.metrics(t); !strings.Contains(m, `shopd_streams_open{stream="admin"} 1`) || !strings.Contains(m, `shopd_streams_open{stream="order"} 1`) ||
		!strings.Contains(m, `shopd_stream_events_total{type="order.paid"} 1`) {
		t.Errorf("b's metrics lack the open streams and the fanned-out event:\n%s", grepLines(m, "stream"))
	}
}

func grepLines(text, word string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// checkout checks the customer's cart out through s with a fresh key.
func checkout(t *testing.T, s *server, token string, addr map[string]any) placed {
	t.Helper()
	var out placed
	st := shoptest.Call(t, s.base, http.MethodPost, "/v1/checkout", token, map[string]string{"Idempotency-Key": uuid.NewString()}, map[string]any{"shippingAddress": addr}, &out)
	if st != http.StatusCreated {
		t.Fatalf("checkout: %d", st)
	}
	return out
}

// TestStreamBurstToManySubscribers: 200 subscribers on one instance all
// receive a burst of 100 events, all of them, once, in the same order,
// with increasing ids.
func TestStreamBurstToManySubscribers(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 1, nil)
	s := servers[0]
	const subscribers, burst = 200, 100
	clients := make([]*sseClient, subscribers)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { clients[i] = openStream(t, s.base, "/v1/admin/events", sh.admin, nil) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	want := sh.crossings(t, burst)
	results := make([][]sseEvent, subscribers)
	for i, c := range clients {
		wg.Go(func() { results[i] = c.events(t, burst) })
	}
	wg.Wait()
	for i, got := range results {
		if !slices.Equal(skusOf(got), want) {
			t.Fatalf("subscriber %d got %d events, not the burst in order", i, len(got))
		}
		increasing(t, got)
		if i > 0 && !slices.EqualFunc(got, results[0], func(x, y sseEvent) bool { return x.ID == y.ID }) {
			t.Fatalf("subscriber %d saw other ids than subscriber 0", i)
		}
	}
}

// TestStreamResumesWithLastEventID: a client that saw some events and
// reconnects with the last one's id gets exactly the ones after it, on
// either instance, and then goes on live.
func TestStreamResumesWithLastEventID(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 2, nil)
	a, b := servers[0], servers[1]
	first := openStream(t, a.base, "/v1/admin/events", sh.admin, nil)
	want := sh.crossings(t, 3)
	seen := first.events(t, 2) // the client goes after two
	first.res.Body.Close()
	want = append(want, sh.crossings(t, 4)...)

	for _, s := range []*server{a, b} {
		again := openStream(t, s.base, "/v1/admin/events", sh.admin, map[string]string{"Last-Event-ID": seen[1].ID})
		missed := again.events(t, len(want)-2)
		if !slices.Equal(skusOf(missed), want[2:]) {
			t.Errorf("%s: resumed with %q, want %q", s.base, skusOf(missed), want[2:])
		}
		increasing(t, append(seen[1:], missed...))
		// No more: the next item is a heartbeat, then new events come live.
		if it := again.next(t); it.Comment != "heartbeat" {
			t.Errorf("%s: after the missed events %+v, want a heartbeat", s.base, it)
		}
		live := sh.crossings(t, 1)
		if got := skusOf(again.events(t, 1)); got[0] != live[0] {
			t.Errorf("%s: live event %q, want %q", s.base, got, live)
		}
		want = append(want, live...)
		again.res.Body.Close()
	}

	for _, bad := range []string{"not-an-id", strings.Repeat("g", 32)} {
		res := streamRequest(t, a.base, "/v1/admin/events", sh.admin, map[string]string{"Last-Event-ID": bad})
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "Last-Event-ID") {
			t.Errorf("Last-Event-ID %q: %d %s, want 400 naming the header", bad, res.StatusCode, body)
		}
	}
}

// TestStreamListenerConnectionKilled: the listening connection of each
// instance is terminated; events committed meanwhile and after arrive,
// all of them, in order.
func TestStreamListenerConnectionKilled(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 2, nil)
	a, b := servers[0], servers[1]
	ca := openStream(t, a.base, "/v1/admin/events", sh.admin, nil)
	cb := openStream(t, b.base, "/v1/admin/events", sh.admin, nil)
	want := sh.crossings(t, 2)
	var killed int
	err := sh.db.Get(&killed, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = $1`, live.ListenerApplicationName)
	if err != nil || killed != 2 {
		t.Fatalf("terminate the listeners: %v, %d, want 2", err, killed)
	}
	want = append(want, sh.crossings(t, 3)...)
	for _, c := range []*sseClient{ca, cb} {
		got := c.events(t, len(want))
		if !slices.Equal(skusOf(got), want) {
			t.Errorf("after the listener was killed: %q, want %q", skusOf(got), want)
		}
	}
	// Reconnected: live again.
	more := sh.crossings(t, 1)
	if got := skusOf(cb.events(t, 1)); got[0] != more[0] {
		t.Errorf("after reconnecting: %q, want %q", got, more)
	}
}

// TestStreamTokens: a stream token opens the streams from the URL and
// nothing else, is refused as a bearer token and once expired, and never
// reaches the log; an access token is refused in the URL. Customers get
// 403 on the admin stream and 404 on another customer's order.
func TestStreamTokens(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 1, nil)
	s := servers[0]
	var tok struct {
		StreamToken string `json:"streamToken"`
		ExpiresIn   int    `json:"expiresIn"`
	}
	req, _ := http.NewRequest(http.MethodPost, s.base+"/v1/auth/stream-token", nil)
	req.Header.Set("Authorization", "Bearer "+sh.admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || tok.StreamToken == "" || tok.ExpiresIn != 60 || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("stream token: %d %+v Cache-Control %q", res.StatusCode, tok, res.Header.Get("Cache-Control"))
	}
	c := openStream(t, s.base, "/v1/admin/events?streamToken="+tok.StreamToken, "", nil)
	want := sh.crossings(t, 1)
	if got := skusOf(c.events(t, 1)); got[0] != want[0] {
		t.Errorf("stream opened with a stream token: %q, want %q", got, want)
	}

	status := func(path, bearer string) int {
		res := streamRequest(t, s.base, path, bearer, nil)
		res.Body.Close()
		return res.StatusCode
	}
	key, err := auth.LoadSigningKey(filepath.Join(sh.dataDir, "jwt-es256.pem"))
	if err != nil {
		t.Fatal(err)
	}
	past, err := auth.NewTokens(auth.TokenConfig{Key: key, Issuer: "shop", Audience: "shop-api",
		Now: func() time.Time { return time.Now().Add(-2 * time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := past.IssueStream(mustSub(t, s, sh.admin), "admin")
	if err != nil {
		t.Fatal(err)
	}
	customer := streamCustomer(t, s)
	order, ownerEmail := s.placeOrder(t, sh.admin)
	owner := s.token(t, ownerEmail, "a-long-password")
	openStream(t, s.base, "/v1/orders/"+order.Order.ID+"/stream", owner, nil).res.Body.Close()
	openStream(t, s.base, "/v1/orders/"+order.Order.ID+"/stream", sh.admin, nil).res.Body.Close()
	missing := uuid.NewString() // the last request below: its log line comes after the others'
	for _, tc := range []struct {
		name, path, bearer string
		want               int
	}{
		{"as a bearer token on /v1/orders", "/v1/orders", tok.StreamToken, http.StatusUnauthorized},
		{"in the URL of /v1/orders", "/v1/orders?streamToken=" + tok.StreamToken, "", http.StatusUnauthorized},
		{"as a bearer token on the stream", "/v1/admin/events", tok.StreamToken, http.StatusUnauthorized},
		{"expired", "/v1/admin/events?streamToken=" + expired, "", http.StatusUnauthorized},
		{"an access token in the URL", "/v1/admin/events?streamToken=" + sh.admin, "", http.StatusUnauthorized},
		{"no token", "/v1/admin/events", "", http.StatusUnauthorized},
		{"a customer on the admin stream", "/v1/admin/events", customer, http.StatusForbidden},
		{"another customer's order", "/v1/orders/" + order.Order.ID + "/stream", customer, http.StatusNotFound},
		{"no such order", "/v1/orders/" + missing + "/stream", owner, http.StatusNotFound},
	} {
		if got := status(tc.path, tc.bearer); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	c.res.Body.Close()
	// The refusals are logged (one line each, with the path and no query).
	// The access log is buffered and written out every 200 ms: wait for
	// the last request's line, which follows all the others'.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.stderr.String(), `"path":"/v1/orders/`+missing+`/stream"`); {
		if time.Now().After(deadline) {
			t.Fatalf("no log line for the last request:\n%s", s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(s.stderr.String(), `"path":"/v1/orders","status":401`) {
		t.Errorf("no log line for the refused stream token on /v1/orders:\n%s", s.stderr)
	}
	for _, secret := range []string{tok.StreamToken, expired} {
		if strings.Contains(s.stderr.String(), secret) {
			t.Errorf("the log holds a stream token")
		}
	}
}

// TestStreamMaxAndShutdown: past STREAM_MAX a stream is 503 with
// Retry-After; a closed one makes room; stopping the server ends the open
// streams (run returns nil: streams left open would make the graceful
// shutdown time out, and run return its error).
func TestStreamMaxAndShutdown(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 1, map[string]string{"STREAM_MAX": "2", "STREAM_HEARTBEAT": "1h"})
	s := servers[0]
	one := openStream(t, s.base, "/v1/admin/events", sh.admin, nil)
	two := openStream(t, s.base, "/v1/admin/events", sh.admin, nil)
	res := streamRequest(t, s.base, "/v1/admin/events", sh.admin, nil)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "https://shopd.dev/problems/unavailable") {
		t.Fatalf("third stream: %d Retry-After %q %s, want 503 unavailable with Retry-After", res.StatusCode, res.Header.Get("Retry-After"), body)
	}
	one.res.Body.Close()
	if _, ended := one.ended(); !ended {
		t.Fatal("a closed stream did not end")
	}
	var three *sseClient
	deadline := time.Now().Add(10 * time.Second)
	for three == nil {
		// The server notices the closed stream when its read fails.
		res := streamRequest(t, s.base, "/v1/admin/events", sh.admin, nil)
		if res.StatusCode == http.StatusOK {
			three = readStream(t, res)
			break
		}
		res.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("no room after a stream closed")
		}
		time.Sleep(10 * time.Millisecond)
	}

	s.cancel()
	for _, c := range []*sseClient{two, three} {
		if _, ended := c.ended(); !ended {
			t.Fatal("an open stream was not ended by the shutdown")
		}
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("run returned %v, want nil: the shutdown waited for the streams", err)
		}
		s.done <- nil // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return")
	}
}

func mustSub(t *testing.T, s *server, token string) string {
	t.Helper()
	var me struct{ ID string }
	if st := s.call(t, http.MethodGet, "/v1/me", token, nil, &me); st != http.StatusOK {
		t.Fatalf("me: %d", st)
	}
	return me.ID
}

func streamCustomer(t *testing.T, s *server) string {
	t.Helper()
	email := "c-" + uuid.NewString()[:8] + "@example.com"
	if st := s.call(t, http.MethodPost, "/v1/auth/register", "", map[string]any{"email": email, "password": "a-long-password", "firstName": "Ada", "lastName": "Lovelace"}, nil); st != http.StatusCreated {
		t.Fatalf("register: %d", st)
	}
	return s.token(t, email, "a-long-password")
}

// TestStreamsPerCustomerBounded: one customer, who anyone can become by
// registering, cannot take every stream an instance may serve: past
// live.DefaultMaxStreamsPerUser of their streams open at once the next is
// 429 with Retry-After, while the admin still opens one, and closing one
// makes room again.
func TestStreamsPerCustomerBounded(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 1, nil)
	s := servers[0]
	var p struct{ ID string }
	if st := s.call(t, http.MethodPost, "/v1/products", sh.admin, map[string]any{"sku": "S-" + uuid.NewString()[:8], "name": "Kettle", "priceCents": 1500, "stock": 5}, &p); st != http.StatusCreated {
		t.Fatalf("create product: %d", st)
	}
	if st := s.call(t, http.MethodPost, "/v1/auth/register", "", map[string]any{"email": "greedy@example.com", "password": "a-long-password", "firstName": "Gr", "lastName": "Eedy"}, nil); st != http.StatusCreated {
		t.Fatalf("register: %d", st)
	}
	customer := s.token(t, "greedy@example.com", "a-long-password")
	if st := s.call(t, http.MethodPost, "/v1/cart/items", customer, map[string]any{"productId": p.ID, "quantity": 1}, nil); st != http.StatusCreated {
		t.Fatalf("add to cart: %d", st)
	}
	order := checkout(t, s, customer, map[string]any{"firstName": "Gr", "lastName": "Eedy", "line1": "1 Road", "city": "London", "postalCode": "N1", "country": "GB"})
	path := "/v1/orders/" + order.Order.ID + "/stream"
	var open []*sseClient
	for range live.DefaultMaxStreamsPerUser {
		open = append(open, openStream(t, s.base, path, customer, nil))
	}
	res := streamRequest(t, s.base, path, customer, nil)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "rate_limited") {
		t.Fatalf("stream %d of one customer: %d (Retry-After %q) %s, want 429", live.DefaultMaxStreamsPerUser+1, res.StatusCode, res.Header.Get("Retry-After"), body)
	}
	openStream(t, s.base, "/v1/admin/events", sh.admin, nil)
	open[0].res.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := streamRequest(t, s.base, path, customer, nil)
		if res.StatusCode == http.StatusOK {
			readStream(t, res)
			return
		}
		res.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("after one stream closed: %d, want 200", res.StatusCode)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
