package server

import (
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/shopd/shopd/catalogcache"
)

// cacheMetric is a catalog cache counter from the server's /metrics; -1
// when the server has none (the cache is off).
func (s *server) cacheMetric(t *testing.T, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(s.metrics(t))
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type cachedProduct struct {
	ID         string `json:"id"`
	PriceCents int64  `json:"priceCents"`
	Stock      int    `json:"stock"`
}

func (s *server) product(t *testing.T, id string) cachedProduct {
	t.Helper()
	var p cachedProduct
	if code := s.call(t, http.MethodGet, "/v1/products/"+id, "", nil, &p); code != http.StatusOK {
		t.Fatalf("GET product: %d", code)
	}
	return p
}

// awaitProduct reads the product from s until ok accepts it, and returns
// how long that took.
func (s *server) awaitProduct(t *testing.T, id string, ok func(cachedProduct) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok(s.product(t, id)) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("after 10s the product is still %+v", s.product(t, id))
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// TestCatalogCacheAcrossInstances: two instances on one database, each
// with its catalog cache (on by default). A change through one is read
// back from it at once and reaches the other once notified; a change made
// in the database directly reaches both.
func TestCatalogCacheAcrossInstances(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 2, nil)
	a, b := servers[0], servers[1]
	var p cachedProduct
	body := map[string]any{"sku": "CACHE-1", "name": "Cached lamp", "priceCents": 1000, "stock": 20}
	if code := a.call(t, http.MethodPost, "/v1/products", sh.admin, body, &p); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	hits := b.cacheMetric(t, "shopd_catalog_cache_hits_total")
	for _, s := range servers {
		s.product(t, p.ID)
		s.product(t, p.ID)
	}
	if got := b.cacheMetric(t, "shopd_catalog_cache_hits_total"); got != hits+1 {
		t.Fatalf("instance b: %v hits after reading twice, want %v", got, hits+1)
	}
	for i := range 20 {
		price := int64(2000 + i)
		if code := a.call(t, http.MethodPatch, "/v1/products/"+p.ID, sh.admin, map[string]any{"priceCents": price}, nil); code != http.StatusOK {
			t.Fatalf("patch: %d", code)
		}
		if got := a.product(t, p.ID).PriceCents; got != price {
			t.Fatalf("instance a: price %d right after its own change to %d", got, price)
		}
		delay := b.awaitProduct(t, p.ID, func(c cachedProduct) bool { return c.PriceCents == price })
		if i == 0 {
			t.Logf("instance b saw a's change after %v", delay)
		}
		b.product(t, p.ID) // cached again
	}
	if _, err := sh.db.Exec(`UPDATE products SET stock = 3 WHERE id = $1`, p.ID); err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		s.awaitProduct(t, p.ID, func(c cachedProduct) bool { return c.Stock == 3 })
	}
}

// TestCatalogCacheListenerKilled: with its listening connection gone, an
// instance serves nothing from the cache (a change may go unnotified);
// once it reconnects it caches again and follows changes again.
func TestCatalogCacheListenerKilled(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 1, nil)
	s := servers[0]
	var p cachedProduct
	body := map[string]any{"sku": "CACHE-2", "name": "Cached chair", "priceCents": 1000, "stock": 20}
	if code := s.call(t, http.MethodPost, "/v1/products", sh.admin, body, &p); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	s.product(t, p.ID)
	var killed int
	err := sh.db.Get(&killed, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = $1`, catalogcache.ListenerApplicationName)
	if err != nil || killed != 1 {
		t.Fatalf("terminate the listener: %v, %d, want 1", err, killed)
	}
	if _, err := sh.db.Exec(`UPDATE products SET stock = 4 WHERE id = $1`, p.ID); err != nil {
		t.Fatal(err)
	}
	s.awaitProduct(t, p.ID, func(c cachedProduct) bool { return c.Stock == 4 })
	// Caching again once reconnected.
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := s.cacheMetric(t, "shopd_catalog_cache_hits_total")
		s.product(t, p.ID)
		s.product(t, p.ID)
		if s.cacheMetric(t, "shopd_catalog_cache_hits_total") > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no read served from the cache after the listener reconnected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := sh.db.Exec(`UPDATE products SET stock = 5 WHERE id = $1`, p.ID); err != nil {
		t.Fatal(err)
	}
	s.awaitProduct(t, p.ID, func(c cachedProduct) bool { return c.Stock == 5 })
}

// TestCatalogCacheOff: CATALOG_CACHE_MB=0 turns the cache off: no cache
// metrics, and every read goes to the database, so a change made there
// shows at the next read.
func TestCatalogCacheOff(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 1, map[string]string{"CATALOG_CACHE_MB": "0"})
	s := servers[0]
	var p cachedProduct
	body := map[string]any{"sku": "CACHE-3", "name": "Uncached desk", "priceCents": 1000, "stock": 20}
	if code := s.call(t, http.MethodPost, "/v1/products", sh.admin, body, &p); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	for i := range 10 {
		s.product(t, p.ID)
		if _, err := sh.db.Exec(`UPDATE products SET stock = $2 WHERE id = $1`, p.ID, i); err != nil {
			t.Fatal(err)
		}
		if got := s.product(t, p.ID).Stock; got != i {
			t.Fatalf("stock %d right after it was set to %d with the cache off", got, i)
		}
	}
	if got := s.cacheMetric(t, "shopd_catalog_cache_hits_total"); got != -1 {
		t.Errorf("the cache is off but /metrics counts %v hits", got)
	}
}
