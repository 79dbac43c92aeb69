package server

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// TestCatalogCacheProductReadsNeverGoBack: one instance keeps a product; another writer
// (psql) raises its price one step at a time; eight readers hammer the
// product on that instance. A reader must never see the price go down.
func TestCatalogCacheProductReadsNeverGoBack(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 1, nil)
	s := servers[0]
	var p cachedProduct
	body := map[string]any{"sku": "ATK-MONO", "name": "Monotonic", "priceCents": 1000, "stock": 5}
	if code := s.call(t, http.MethodPost, "/v1/products", sh.admin, body, &p); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	var done atomic.Bool
	var backwards atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			var seen int64
			for !done.Load() {
				f := s.fetch(t, http.MethodGet, "/v1/products/"+p.ID, "", nil, nil)
				var got cachedProduct
				if f.Status != http.StatusOK || json.Unmarshal(f.Body, &got) != nil {
					t.Errorf("GET: %d", f.Status)
					return
				}
				if got.PriceCents < seen {
					if backwards.Add(1) == 1 {
						t.Errorf("price %d read after %d", got.PriceCents, seen)
					}
				}
				seen = max(seen, got.PriceCents)
			}
		})
	}
	for v := 1001; v <= 1300; v++ {
		if _, err := sh.db.Exec(`UPDATE products SET price_cents = $2 WHERE id = $1`, p.ID, v); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	if n := backwards.Load(); n > 0 {
		t.Errorf("%d reads went backwards", n)
	}
}
