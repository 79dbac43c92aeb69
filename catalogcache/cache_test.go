package catalogcache_test

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopd/shopd/catalogcache"
	"github.com/shopd/shopd/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// harness is a cache listening on a fresh database, with a pool of its own
// to change products as another instance would.
type harness struct {
	cache *catalogcache.Cache
	db    *sqlx.DB
	reg   *prometheus.Registry
}

func start(t *testing.T, maxBytes int64) *harness {
	t.Helper()
	db, url := pgtest.NewDBAndURL(t)
	reg := prometheus.NewRegistry()
	c, err := catalogcache.Start(t.Context(), catalogcache.Config{
		DatabaseURL: url, MaxBytes: maxBytes, Registry: reg,
		PingInterval: 20 * time.Millisecond, PingTimeout: time.Second, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &harness{cache: c, db: db, reg: reg}
}

// product adds a product and returns its id.
func (h *harness) product(t *testing.T) string {
	t.Helper()
	var id string
	err := h.db.Get(&id, `INSERT INTO products (sku, name, price_cents, currency, stock)
		VALUES ('S-' || gen_random_uuid(), 'Cached', 1000, 'usd', 0) RETURNING id`)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// setStock commits one change to the product, as any instance might.
func (h *harness) setStock(t testing.TB, id string, stock int) {
	t.Helper()
	if _, err := h.db.Exec(`UPDATE products SET stock = $2 WHERE id = $1`, id, stock); err != nil {
		t.Error(err)
	}
}

func (h *harness) stock(t testing.TB, id string) int {
	t.Helper()
	var n int
	if err := h.db.Get(&n, `SELECT stock FROM products WHERE id = $1`, id); err != nil {
		t.Error(err)
	}
	return n
}

// applied is how many notifications the cache has applied.
func (h *harness) applied(t testing.TB) int {
	t.Helper()
	return int(counter(t, h.reg, "shopd_catalog_cache_notifications_total"))
}

// awaitApplied waits until at least n notifications have been applied.
func (h *harness) awaitApplied(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.applied(t) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d notifications applied after 10s, want %d", h.applied(t), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func counter(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// readThrough is how the HTTP layer uses the cache: the kept entry, or a
// read of the database offered with a ticket taken before it.
func (h *harness) readThrough(t testing.TB, id string) int {
	t.Helper()
	k := catalogcache.Key{Product: id}
	if e, ok := h.cache.Get(k, time.Now()); ok {
		n, err := strconv.Atoi(string(e.Body))
		if err != nil {
			t.Error(err)
		}
		return n
	}
	ticket := h.cache.Begin(k)
	n := h.stock(t, id)
	h.cache.Put(ticket, entry(strconv.Itoa(n)))
	return n
}

// awaitStock reads through the cache until it gives stock want.
func (h *harness) awaitStock(t *testing.T, id string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.readThrough(t, id) != want {
		if time.Now().After(deadline) {
			t.Fatalf("stock %d is never read through the cache", want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// awaitCaching reads through the cache until the product is kept.
func (h *harness) awaitCaching(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.readThrough(t, id)
		if _, ok := h.cache.Get(catalogcache.Key{Product: id}, time.Now()); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache keeps nothing")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func entry(body string) catalogcache.Entry {
	return catalogcache.Entry{Body: []byte(body), ETag: `"e"`, ContentType: "application/json", ExpiresAt: time.Now().Add(time.Hour)}
}

func TestNotifiedChangeDropsItsProductAndEveryList(t *testing.T) {
	t.Parallel()
	h := start(t, 1<<20)
	changed, other := h.product(t), h.product(t)
	h.awaitApplied(t, 2) // the inserts' notifications
	list := catalogcache.Key{List: "/v1/products?limit=20"}
	for _, k := range []catalogcache.Key{{Product: changed}, {Product: other}, list} {
		h.cache.Put(h.cache.Begin(k), entry("kept"))
		if _, ok := h.cache.Get(k, time.Now()); !ok {
			t.Fatalf("%+v not kept", k)
		}
	}
	before := h.applied(t)
	h.setStock(t, changed, 7)
	h.awaitApplied(t, before+1)
	if _, ok := h.cache.Get(catalogcache.Key{Product: changed}, time.Now()); ok {
		t.Error("the changed product is still served after its notification")
	}
	if _, ok := h.cache.Get(list, time.Now()); ok {
		t.Error("a list is still served after a product changed")
	}
	if _, ok := h.cache.Get(catalogcache.Key{Product: other}, time.Now()); !ok {
		t.Error("another product was dropped too")
	}
	// A transaction that rolls back notifies nobody.
	tx, err := h.db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`UPDATE products SET stock = 9 WHERE id = $1`, other); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	h.setStock(t, changed, 8) // a later commit, as a fence
	h.awaitApplied(t, before+2)
	if got := h.applied(t); got != before+2 {
		t.Errorf("%d notifications applied, want %d: the rolled-back change notified", got, before+2)
	}
	if _, ok := h.cache.Get(catalogcache.Key{Product: other}, time.Now()); !ok {
		t.Error("a rolled-back change dropped its product")
	}
}

// TestImageChangeDropsItsProduct: images are part of a product's answer.
func TestImageChangeDropsItsProduct(t *testing.T) {
	t.Parallel()
	h := start(t, 1<<20)
	id := h.product(t)
	h.awaitApplied(t, 1)
	k := catalogcache.Key{Product: id}
	h.cache.Put(h.cache.Begin(k), entry("kept"))
	_, err := h.db.Exec(`INSERT INTO product_images (id, product_id, blob_key, content_type, width, height, byte_size, position)
		VALUES (gen_random_uuid(), $1, 'k', 'image/png', 1, 1, 1, 0)`, id)
	if err != nil {
		t.Fatal(err)
	}
	h.awaitApplied(t, 2)
	if _, ok := h.cache.Get(k, time.Now()); ok {
		t.Error("the product is still served after an image was added")
	}
}

// TestReadRacingAChangeIsNotKept: a read that began before a change's
// notification was applied may hold the value before the change; it is
// answered but never kept.
func TestReadRacingAChangeIsNotKept(t *testing.T) {
	t.Parallel()
	h := start(t, 1<<20)
	id := h.product(t)
	h.awaitApplied(t, 1)
	k := catalogcache.Key{Product: id}
	ticket := h.cache.Begin(k)
	stale := h.stock(t, id)
	h.setStock(t, id, stale+1)
	h.awaitApplied(t, 2)
	h.cache.Put(ticket, entry(strconv.Itoa(stale)))
	if e, ok := h.cache.Get(k, time.Now()); ok {
		t.Fatalf("a read that raced a change was kept: %s", e.Body)
	}
	if got := counter(t, h.reg, "shopd_catalog_cache_refused_total"); got != 1 {
		t.Errorf("refused = %v, want 1", got)
	}
	// A change made through this instance (Invalidate) refuses it too.
	ticket = h.cache.Begin(k)
	h.cache.Invalidate(id)
	h.cache.Put(ticket, entry("stale"))
	if _, ok := h.cache.Get(k, time.Now()); ok {
		t.Fatal("a read that raced a local change was kept")
	}
}

// TestNeverOlderThanTheAppliedNotifications hammers one product: a writer
// commits stock 1, 2, 3 ... (each its own transaction, as another instance
// would) while readers read through the cache. A read that starts after n
// notifications were applied must see stock n or later: the cache is never
// older than the changes it has been told of.
func TestNeverOlderThanTheAppliedNotifications(t *testing.T) {
	t.Parallel()
	h := start(t, 1<<20)
	id := h.product(t)
	h.awaitApplied(t, 1)
	base := h.applied(t) // notifications before stock 1
	const writes = 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var mu sync.Mutex
	var violations []string
	var reads, hits int
	for r := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				floor := h.applied(t) - base
				_, hit := h.cache.Get(catalogcache.Key{Product: id}, time.Now())
				got := h.readThrough(t, id)
				mu.Lock()
				reads++
				if hit {
					hits++
				}
				if got < floor {
					violations = append(violations, fmt.Sprintf("reader %d: stock %d after %d changes were applied", r, got, floor))
				}
				mu.Unlock()
			}
		}()
	}
	for i := 1; i <= writes; i++ {
		h.setStock(t, id, i)
		if i%10 == 0 {
			time.Sleep(time.Millisecond) // let readers fill between bursts
		}
	}
	h.awaitApplied(t, base+writes)
	if got := h.readThrough(t, id); got != writes {
		t.Errorf("after every change was applied: stock %d, want %d", got, writes)
	}
	close(stop)
	wg.Wait()
	if len(violations) > 0 {
		t.Fatalf("%d stale reads, e.g. %s", len(violations), violations[0])
	}
	if hits == 0 {
		t.Errorf("%d reads, none from the cache: the hammer did not exercise it", reads)
	}
	t.Logf("%d reads, %d from the cache", reads, hits)
}

// TestBoundedLeastRecentlyUsed: entries stay within MaxBytes, the least
// recently used going first; one over an eighth of it is not kept.
func TestBoundedLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	const maxBytes = 16 << 10
	h := start(t, maxBytes)
	body := string(make([]byte, 700)) // about 1 KiB per entry with the overhead
	key := func(i int) catalogcache.Key { return catalogcache.Key{List: fmt.Sprintf("/v1/products?limit=%d", i)} }
	for i := range 100 {
		h.cache.Put(h.cache.Begin(key(i)), entry(body))
		if i > 0 {
			h.cache.Get(key(0), time.Now()) // keep the first in use
		}
	}
	if got := counter(t, h.reg, "shopd_catalog_cache_bytes"); got > maxBytes || got < maxBytes/2 {
		t.Errorf("cache holds %v bytes, want at most %d and more than half", got, maxBytes)
	}
	if _, ok := h.cache.Get(key(0), time.Now()); !ok {
		t.Error("the entry in use was evicted")
	}
	if _, ok := h.cache.Get(key(1), time.Now()); ok {
		t.Error("the least recently used entry is still kept")
	}
	if _, ok := h.cache.Get(key(99), time.Now()); !ok {
		t.Error("the newest entry was evicted")
	}
	big := catalogcache.Key{List: "/v1/products?limit=100"}
	h.cache.Put(h.cache.Begin(big), entry(string(make([]byte, maxBytes/8))))
	if _, ok := h.cache.Get(big, time.Now()); ok {
		t.Error("an entry over an eighth of the bound was kept")
	}
}

func TestExpiredEntryIsNotServed(t *testing.T) {
	t.Parallel()
	h := start(t, 1<<20)
	k := catalogcache.Key{List: "/v1/products"}
	e := entry("x")
	e.ExpiresAt = time.Now().Add(time.Minute)
	h.cache.Put(h.cache.Begin(k), e)
	if _, ok := h.cache.Get(k, time.Now()); !ok {
		t.Fatal("not kept")
	}
	if _, ok := h.cache.Get(k, e.ExpiresAt); ok {
		t.Error("served at its expiry")
	}
}

// TestListenerLossBypassesTheCache: while the listening connection is
// gone, notifications may be lost, so nothing is served or kept; once it
// is back, what changed meanwhile is read afresh.
func TestListenerLossBypassesTheCache(t *testing.T) {
	t.Parallel()
	h := start(t, 1<<20)
	id := h.product(t)
	h.awaitApplied(t, 1)
	if got := h.readThrough(t, id); got != 0 {
		t.Fatalf("stock %d, want 0", got)
	}
	var killed int
	err := h.db.Get(&killed, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = $1`, catalogcache.ListenerApplicationName)
	if err != nil || killed != 1 {
		t.Fatalf("terminate the listener: %v, %d, want 1", err, killed)
	}
	// Changed while nobody listens: no notification will come.
	h.setStock(t, id, 5)
	h.awaitStock(t, id, 5)
	// Back: kept and dropped again as before.
	h.awaitCaching(t, id)
	before := h.applied(t)
	h.setStock(t, id, 6)
	h.awaitApplied(t, before+1)
	if got := h.readThrough(t, id); got != 6 {
		t.Errorf("after reconnecting: stock %d, want 6", got)
	}
}

// TestOffCacheKeepsNothing: a nil cache (CATALOG_CACHE_MB=0) is off.
func TestOffCacheKeepsNothing(t *testing.T) {
	t.Parallel()
	var c *catalogcache.Cache
	k := catalogcache.Key{Product: "p"}
	c.Put(c.Begin(k), entry("x"))
	if _, ok := c.Get(k, time.Now()); ok {
		t.Error("an off cache served an entry")
	}
	c.Invalidate("p")
	c.InvalidateAll()
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}

// freezableProxy forwards TCP connections to target until frozen: then it
// stops passing bytes without closing anything, as a broken network does.
type freezableProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen bool
	thawed *sync.Cond
}

func newFreezableProxy(t *testing.T, target string) *freezableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezableProxy{ln: ln}
	p.thawed = sync.NewCond(&p.mu)
	t.Cleanup(func() { ln.Close(); p.set(false) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go p.pipe(c, up)
			go p.pipe(up, c)
		}
	}()
	return p
}

func (p *freezableProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.frozen {
			p.thawed.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *freezableProxy) set(frozen bool) {
	p.mu.Lock()
	p.frozen = frozen
	p.mu.Unlock()
	p.thawed.Broadcast()
}

// TestSilentListenerBypassesTheCache: a listening connection that stops
// answering without closing (a broken network) loses notifications
// unseen; the cache is bypassed from the first unanswered ping, so a
// change made meanwhile is read at most PingInterval + PingTimeout later,
// and it caches again once the connection answers.
func TestSilentListenerBypassesTheCache(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newFreezableProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	db, err := sqlx.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg := prometheus.NewRegistry()
	c, err := catalogcache.Start(t.Context(), catalogcache.Config{
		DatabaseURL: u.String(), MaxBytes: 1 << 20, Registry: reg,
		PingInterval: 20 * time.Millisecond, PingTimeout: 100 * time.Millisecond, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{cache: c, db: db, reg: reg}
	t.Cleanup(func() { proxy.set(false); c.Close() })
	id := h.product(t)
	h.awaitApplied(t, 1)
	h.readThrough(t, id)
	if _, ok := c.Get(catalogcache.Key{Product: id}, time.Now()); !ok {
		t.Fatal("not kept")
	}
	proxy.set(true)
	h.setStock(t, id, 9) // its notification is stuck in the frozen connection
	h.awaitStock(t, id, 9)
	proxy.set(false)
	h.awaitCaching(t, id)
	before := h.applied(t)
	h.setStock(t, id, 10)
	h.awaitApplied(t, before+1)
	if got := h.readThrough(t, id); got != 10 {
		t.Errorf("after the connection answered again: stock %d, want 10", got)
	}
}

// versioned is an answer of product version v.
func versioned(v int64) catalogcache.Entry {
	e := entry(strconv.FormatInt(v, 10))
	e.Version = v
	return e
}

// TestNewerReadOfAProductWins: of two reads of a product, the cache keeps
// the newer, whatever order they are offered in; a read answered but not
// kept (its ticket voided) still bars older ones; and a change's
// invalidation drops the answer but not that floor.
func TestNewerReadOfAProductWins(t *testing.T) {
	t.Parallel()
	h := start(t, 1<<20)
	k := catalogcache.Key{Product: "5d0f1f3e-0000-4000-8000-000000000001"}
	served := func() int64 {
		t.Helper()
		e, ok := h.cache.Get(k, time.Now())
		if !ok {
			return 0
		}
		return e.Version
	}
	older, newer := h.cache.Begin(k), h.cache.Begin(k)
	h.cache.Put(newer, versioned(3))
	h.cache.Put(older, versioned(2))
	if got := served(); got != 3 {
		t.Fatalf("serves version %d after 3 then 2 were offered, want 3", got)
	}
	// Answered with a voided ticket: not kept, but nothing older after it.
	voided := h.cache.Begin(k)
	h.cache.Invalidate(k.Product)
	h.cache.Put(voided, versioned(5))
	if got := served(); got != 0 {
		t.Fatalf("serves version %d after the invalidation, want none", got)
	}
	h.cache.Put(h.cache.Begin(k), versioned(4))
	if got := served(); got != 0 {
		t.Fatalf("kept version %d after 5 was answered", got)
	}
	h.cache.Put(h.cache.Begin(k), versioned(5))
	if got := served(); got != 5 {
		t.Fatalf("serves version %d, want 5", got)
	}
	h.cache.Invalidate(k.Product)
	h.cache.Put(h.cache.Begin(k), versioned(4))
	if got := served(); got != 0 {
		t.Fatalf("kept version %d below the floor after an invalidation", got)
	}
	h.cache.Put(h.cache.Begin(k), versioned(6))
	if got := served(); got != 6 {
		t.Fatalf("serves version %d, want 6", got)
	}
}
