package handlers_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopd/shopd/catalogcache"
	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/handlers"
)

// cacheCounts reads the catalog cache's counters.
type cacheCounts struct{ reg *prometheus.Registry }

func (c cacheCounts) get(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := c.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func (c cacheCounts) hits(t *testing.T) float64 { return c.get(t, "shopd_catalog_cache_hits_total") }

func (c cacheCounts) notifications(t *testing.T) float64 {
	return c.get(t, "shopd_catalog_cache_notifications_total")
}

// awaitNotification waits until a notification has been applied since
// the count was before.
func (c cacheCounts) awaitNotification(t *testing.T, before float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.notifications(t) == before {
		if time.Now().After(deadline) {
			t.Fatal("the change was never notified")
		}
		time.Sleep(time.Millisecond)
	}
}

// withCatalogCache gives the server a catalog cache listening on its
// database, as main does by default.
func withCatalogCache(t *testing.T, counts *cacheCounts) func(*handlers.Config) {
	return func(cfg *handlers.Config) {
		url, _ := databaseURLs.Load(cfg.Store.DB())
		counts.reg = prometheus.NewRegistry()
		c, err := catalogcache.Start(t.Context(), catalogcache.Config{
			DatabaseURL: url.(string), MaxBytes: 1 << 20, Registry: counts.reg, Log: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cfg.CatalogCache = c
	}
}

// TestCachedCatalogReadsAnswerAsBefore: a read served from the cache has
// the body, ETag and headers of the first, public or private by caller,
// and 304s a matching If-None-Match.
func TestCachedCatalogReadsAnswerAsBefore(t *testing.T) {
	t.Parallel()
	counts := &cacheCounts{}
	a := setup(t, withCatalogCache(t, counts))
	admin := a.admin(t)
	p := a.product(t, admin, nil)
	customer, _ := a.customer(t)
	for _, path := range []string{"/v1/products/" + p.Id, "/v1/products?limit=5"} {
		first := a.do(t, http.MethodGet, path, "", nil).want(t, http.StatusOK)
		before := counts.hits(t)
		again := a.do(t, http.MethodGet, path, "", nil).want(t, http.StatusOK)
		if counts.hits(t) != before+1 {
			t.Fatalf("%s: the second read was not served from the cache", path)
		}
		if string(again.body) != string(first.body) || again.header.Get("ETag") != first.header.Get("ETag") ||
			again.header.Get("Cache-Control") != first.header.Get("Cache-Control") ||
			again.header.Get("Content-Type") != first.header.Get("Content-Type") || again.header.Get("Vary") != first.header.Get("Vary") {
			t.Errorf("%s: cached answer differs:\n%v %s\nfirst:\n%v %s", path, again.header, again.body, first.header, first.body)
		}
		signedIn := a.do(t, http.MethodGet, path, customer, nil).want(t, http.StatusOK)
		if string(signedIn.body) != string(first.body) || signedIn.header.Get("Cache-Control") != "private, no-store" {
			t.Errorf("%s: a customer's cached read: Cache-Control %q, body equal %t", path, signedIn.header.Get("Cache-Control"), string(signedIn.body) == string(first.body))
		}
		req := a.request(t, http.MethodGet, path, "", nil)
		req.Header.Set("If-None-Match", first.header.Get("ETag"))
		if r := a.send(t, req); r.status != http.StatusNotModified || len(r.body) != 0 {
			t.Errorf("%s: If-None-Match on a cached read: %d %q", path, r.status, r.body)
		}
	}
}

// TestAdminReadsAreNeverCached: an admin's answer (cost prices) is never
// kept for others, nor another's served to an admin.
func TestAdminReadsAreNeverCached(t *testing.T) {
	t.Parallel()
	counts := &cacheCounts{}
	a := setup(t, withCatalogCache(t, counts))
	admin := a.admin(t)
	p := a.product(t, admin, map[string]any{"costPriceCents": 400})
	path := "/v1/products/" + p.Id
	var got gen.Product
	a.do(t, http.MethodGet, path, admin, nil).want(t, http.StatusOK).decode(t, &got)
	if !got.CostPriceCents.IsSpecified() {
		t.Fatal("the admin does not see the cost price")
	}
	for range 2 {
		r := a.do(t, http.MethodGet, path, "", nil).want(t, http.StatusOK)
		if strings.Contains(string(r.body), "costPriceCents") {
			t.Fatalf("an anonymous read shows the cost price: %s", r.body)
		}
	}
	before := counts.hits(t)
	a.do(t, http.MethodGet, path, admin, nil).want(t, http.StatusOK).decode(t, &got)
	if !got.CostPriceCents.IsSpecified() || counts.hits(t) != before {
		t.Error("an admin was answered from the cache")
	}
}

// TestChangesThroughThisServerAreReadBackAtOnce: whoever changes a product
// through a server reads the change back from it at once, never the
// cached answer from before (the notification of the change may come
// later): price, stock adjustments, archiving, images, new products in
// lists, and stock moved by a checkout.
func TestChangesThroughThisServerAreReadBackAtOnce(t *testing.T) {
	t.Parallel()
	counts := &cacheCounts{}
	s := newShop(t, withCatalogCache(t, counts))
	p := s.product(t, s.admin, map[string]any{"stock": 1000})
	path := "/v1/products/" + p.Id
	read := func() gen.Product {
		t.Helper()
		var out gen.Product
		s.do(t, http.MethodGet, path, "", nil).want(t, http.StatusOK).decode(t, &out)
		return out
	}
	for i := range 30 {
		read()
		read() // cached
		price := int64(1000 + i)
		s.do(t, http.MethodPatch, path, s.admin, map[string]any{"priceCents": price}).want(t, http.StatusOK)
		if got := read(); got.PriceCents != price {
			t.Fatalf("round %d: price %d right after the change to %d", i, got.PriceCents, price)
		}
		read()
		s.do(t, http.MethodPost, path+"/inventory", s.admin, map[string]any{"quantityChange": -1, "type": "adjustment"}).want(t, http.StatusCreated)
		if got := read(); got.Stock != int32(999-i) {
			t.Fatalf("round %d: stock %d right after an adjustment to %d", i, got.Stock, 999-i)
		}
	}
	if counts.hits(t) < 30 {
		t.Errorf("%v reads from the cache, want at least 30", counts.hits(t))
	}

	// A new product shows in the list read just before it was added.
	list := func() []gen.Product {
		var out gen.ProductList
		s.do(t, http.MethodGet, "/v1/products?limit=100", "", nil).want(t, http.StatusOK).decode(t, &out)
		return out.Items
	}
	n := len(list())
	list()
	s.product(t, s.admin, nil)
	if got := len(list()); got != n+1 {
		t.Errorf("%d products listed right after adding one to %d", got, n)
	}

	// A checkout moves stock of products its route does not name.
	before := read().Stock
	c := s.newCustomer(t)
	s.placeOrder(t, c, line{p.Id, 3})
	if got := read().Stock; got != before-3 {
		t.Errorf("stock %d right after a checkout of 3 from %d", got, before)
	}

	// Archived: gone for the public at once.
	s.do(t, http.MethodDelete, path, s.admin, nil).want(t, http.StatusOK)
	s.do(t, http.MethodGet, path, "", nil).want(t, http.StatusNotFound)
}

// TestChangesElsewhereAreSeenOnceNotified: a change this server did not
// make (another instance, a job, psql) is seen as soon as its
// notification has been applied.
func TestChangesElsewhereAreSeenOnceNotified(t *testing.T) {
	t.Parallel()
	counts := &cacheCounts{}
	a := setup(t, withCatalogCache(t, counts))
	admin := a.admin(t)
	p := a.product(t, admin, map[string]any{"stock": 50})
	path := "/v1/products/" + p.Id
	a.do(t, http.MethodGet, path, "", nil).want(t, http.StatusOK)
	before := counts.hits(t)
	a.do(t, http.MethodGet, path, "", nil).want(t, http.StatusOK)
	if counts.hits(t) != before+1 {
		t.Fatal("not cached")
	}
	applied := counts.notifications(t)
	if _, err := a.Store.DB().Exec(`UPDATE products SET stock = 7 WHERE id = $1`, p.Id); err != nil {
		t.Fatal(err)
	}
	counts.awaitNotification(t, applied)
	var got gen.Product
	a.do(t, http.MethodGet, path, "", nil).want(t, http.StatusOK).decode(t, &got)
	if got.Stock != 7 {
		t.Errorf("stock %d once the change was notified, want 7", got.Stock)
	}
}

// TestUncachedReads: searches still count against the quota; a product
// asked for by a non-canonical id is answered but not kept (notifications
// name the canonical one).
func TestUncachedReads(t *testing.T) {
	t.Parallel()
	counts := &cacheCounts{}
	a := setup(t, withCatalogCache(t, counts), func(cfg *handlers.Config) { cfg.SearchesPerHour = 2 })
	admin := a.admin(t)
	p := a.product(t, admin, map[string]any{"name": "Searchable lamp"})
	for i := range 3 {
		want := http.StatusOK
		if i == 2 {
			want = http.StatusTooManyRequests
		}
		a.do(t, http.MethodGet, "/v1/products?q=lamp", "", nil).want(t, want)
	}
	upper := "/v1/products/" + strings.ToUpper(p.Id)
	for range 2 {
		a.do(t, http.MethodGet, upper, "", nil).want(t, http.StatusOK)
	}
	if got := counts.hits(t); got != 0 {
		t.Errorf("%v reads from the cache, want none", got)
	}
	a.do(t, http.MethodPatch, "/v1/products/"+p.Id, admin, map[string]any{"priceCents": 4242}).want(t, http.StatusOK)
	var got gen.Product
	a.do(t, http.MethodGet, upper, "", nil).want(t, http.StatusOK).decode(t, &got)
	if got.PriceCents != 4242 {
		t.Errorf("price %d, want 4242", got.PriceCents)
	}
}

// TestCachedListsFollowEveryProduct: a page of products reflects a change
// to any product on it, made anywhere, once notified.
func TestCachedListsFollowEveryProduct(t *testing.T) {
	t.Parallel()
	counts := &cacheCounts{}
	a := setup(t, withCatalogCache(t, counts))
	admin := a.admin(t)
	for i := range 3 {
		a.product(t, admin, map[string]any{"name": fmt.Sprintf("Listed %d", i)})
	}
	var page gen.ProductList
	a.do(t, http.MethodGet, "/v1/products?limit=3", "", nil).want(t, http.StatusOK).decode(t, &page)
	a.do(t, http.MethodGet, "/v1/products?limit=3", "", nil).want(t, http.StatusOK)
	last := page.Items[2]
	applied := counts.notifications(t)
	if _, err := a.Store.DB().Exec(`UPDATE products SET name = 'Renamed' WHERE id = $1`, last.Id); err != nil {
		t.Fatal(err)
	}
	counts.awaitNotification(t, applied)
	a.do(t, http.MethodGet, "/v1/products?limit=3", "", nil).want(t, http.StatusOK).decode(t, &page)
	if page.Items[2].Name != "Renamed" {
		t.Errorf("the list shows %q once the rename was notified", page.Items[2].Name)
	}
}
