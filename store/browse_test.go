package store_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/store"
)

// seedBrowseCatalog inserts n products in one statement with many ties:
// ten prices, eight names (lower-case letters only, so PostgreSQL's
// collation and Go's byte order agree), twenty creation times; some out of
// stock, some featured, some archived, three categories and none.
func seedBrowseCatalog(t *testing.T, s *store.Store, n int) {
	t.Helper()
	const q = `
INSERT INTO products (sku, name, price_cents, stock, category, is_featured, is_active, created_at)
SELECT 'BR-' || i,
	(ARRAY['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel'])[1 + i % 8],
	500 * (1 + i % 10),
	CASE WHEN i % 4 = 0 THEN 0 ELSE i % 7 + 1 END,
	(ARRAY['apparel', 'home', 'toys', NULL])[1 + i % 4],
	i % 3 = 0,
	i % 9 <> 0,
	TIMESTAMPTZ '2026-01-01 00:00:00Z' + (i % 20) * INTERVAL '1 minute'
FROM generate_series(1, $1) AS i`
	if _, err := s.DB().ExecContext(context.Background(), q, n); err != nil {
		t.Fatalf("seed catalog: %v", err)
	}
}

// allProducts reads every product, archived ones too.
func allProducts(t *testing.T, s *store.Store) []store.Product {
	t.Helper()
	var out []store.Product
	if err := s.DB().Select(&out, `SELECT id, sku, name, price_cents, stock, category, is_featured, is_active, created_at FROM products`); err != nil {
		t.Fatalf("read products: %v", err)
	}
	return out
}

// matches is the filter's meaning, written independently of the SQL.
func matches(f store.ProductFilter, p store.Product) bool {
	switch f.Status {
	case "", store.StatusActive:
		if !p.IsActive {
			return false
		}
	case store.StatusArchived:
		if p.IsActive {
			return false
		}
	}
	return (f.Category == "" || (p.Category != nil && *p.Category == f.Category)) &&
		(f.MinPriceCents == nil || p.PriceCents >= *f.MinPriceCents) &&
		(f.MaxPriceCents == nil || p.PriceCents <= *f.MaxPriceCents) &&
		(!f.InStock || p.Stock > 0) &&
		(!f.Featured || p.IsFeatured) &&
		strings.Contains(strings.ToLower(p.Name+" "+p.SKU), strings.ToLower(f.Query))
}

// compareIn orders two products as the sort promises: by its key, ties by id.
func compareIn(sort string, a, b store.Product) int {
	var c int
	switch sort {
	case store.SortNewest:
		c = b.CreatedAt.Compare(a.CreatedAt)
		if c == 0 {
			return cmp.Compare(b.ID, a.ID)
		}
		return c
	case store.SortPriceAsc:
		c = cmp.Compare(a.PriceCents, b.PriceCents)
	case store.SortPriceDesc:
		c = cmp.Compare(b.PriceCents, a.PriceCents)
		if c == 0 {
			return cmp.Compare(b.ID, a.ID)
		}
		return c
	case store.SortName:
		c = cmp.Compare(a.Name, b.Name)
	}
	if c == 0 {
		return cmp.Compare(a.ID, b.ID)
	}
	return c
}

func ptr[T any](v T) *T { return &v }

// browseFilters are the filter combinations the walks cover.
func browseFilters() map[string]store.ProductFilter {
	return map[string]store.ProductFilter{
		"none":               {},
		"category":           {Category: "home"},
		"price range":        {MinPriceCents: ptr(int64(1500)), MaxPriceCents: ptr(int64(3500))},
		"min price only":     {MinPriceCents: ptr(int64(4500))},
		"in stock":           {InStock: true},
		"featured":           {Featured: true},
		"everything":         {Category: "home", MinPriceCents: ptr(int64(1000)), MaxPriceCents: ptr(int64(4000)), InStock: true, Featured: true},
		"archived":           {Status: store.StatusArchived},
		"all, in stock":      {Status: store.StatusAll, InStock: true},
		"search and feature": {Query: "BR-1", Featured: true},
	}
}

var browseSorts = []string{store.SortNewest, store.SortPriceAsc, store.SortPriceDesc, store.SortName}

// walk reads every page of the list; between pages it calls between.
func walk(t *testing.T, s *store.Store, f store.ProductFilter, limit int, between func(page int)) []store.Product {
	t.Helper()
	var got []store.Product
	cursor := ""
	for page := 0; ; page++ {
		items, next, err := s.ListProducts(context.Background(), f, store.Page{Limit: limit, Cursor: cursor})
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		got = append(got, items...)
		if next == "" {
			return got
		}
		if page > 1000 {
			t.Fatal("the walk does not end")
		}
		cursor = next
		if between != nil {
			between(page)
		}
	}
}

// TestListProductsWalksEverySortAndFilter walks all pages of 400 products
// with ties in price, name and creation time under every sort and filter
// combination: every matching product exactly once, in the sort's order.
func TestListProductsWalksEverySortAndFilter(t *testing.T) {
	t.Parallel()
	s := store.New(pgtest.NewDB(t))
	seedBrowseCatalog(t, s, 400)
	all := allProducts(t, s)
	for name, f := range browseFilters() {
		for _, sort := range browseSorts {
			t.Run(name+"/"+sort, func(t *testing.T) {
				f.Sort = sort
				var want []string
				for _, p := range slices.SortedFunc(slices.Values(all), func(a, b store.Product) int { return compareIn(sort, a, b) }) {
					if matches(f, p) {
						want = append(want, p.ID)
					}
				}
				if len(want) < 2 {
					t.Fatalf("the filter keeps %d products: the walk proves nothing", len(want))
				}
				var got []string
				for _, p := range walk(t, s, f, 7, nil) {
					got = append(got, p.ID)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("walked %d products, want %d in order\n got %v\nwant %v", len(got), len(want), got, want)
				}
			})
		}
	}
}

// TestListProductsWalkWhileInserting inserts products between pages, with
// prices and names all over the order, under every sort: no product is
// returned twice, the order holds, and every product that existed before
// the walk is returned (new ones may be missed).
func TestListProductsWalkWhileInserting(t *testing.T) {
	t.Parallel()
	for _, sort := range browseSorts {
		t.Run(sort, func(t *testing.T) {
			t.Parallel()
			s := store.New(pgtest.NewDB(t))
			seedBrowseCatalog(t, s, 300)
			before := map[string]bool{}
			for _, p := range allProducts(t, s) {
				if p.IsActive {
					before[p.ID] = true
				}
			}
			inserted := 0
			got := walk(t, s, store.ProductFilter{Sort: sort}, 9, func(page int) {
				for i := range 3 {
					inserted++
					_, err := s.CreateProduct(context.Background(), store.NewProduct{
						SKU:        fmt.Sprintf("NEW-%s-%d", sort, inserted),
						Name:       []string{"alpha", "delta", "hotel"}[i],
						PriceCents: int64(500 * (1 + (page+i)%10)),
						Stock:      1,
						IsActive:   true,
					}, "")
					if err != nil {
						t.Fatalf("insert during the walk: %v", err)
					}
				}
			})
			seen := map[string]bool{}
			for i, p := range got {
				if seen[p.ID] {
					t.Fatalf("product %s returned twice", p.ID)
				}
				seen[p.ID] = true
				if i > 0 && compareIn(sort, got[i-1], p) >= 0 {
					t.Fatalf("out of order at %d: %+v then %+v", i, got[i-1], p)
				}
			}
			for id := range before {
				if !seen[id] {
					t.Fatalf("product %s existed before the walk and was missed", id)
				}
			}
			if inserted < 30 {
				t.Fatalf("only %d inserts during the walk", inserted)
			}
		})
	}
}

// TestListProductsRefusesForeignCursors: a cursor is only valid for the
// sort and filter it was made for.
func TestListProductsRefusesForeignCursors(t *testing.T) {
	t.Parallel()
	s := store.New(pgtest.NewDB(t))
	seedBrowseCatalog(t, s, 30)
	ctx := context.Background()
	base := store.ProductFilter{Sort: store.SortPriceAsc, Category: "home"}
	_, next, err := s.ListProducts(ctx, base, store.Page{Limit: 2})
	if err != nil || next == "" {
		t.Fatalf("first page: next %q, %v", next, err)
	}
	if _, _, err := s.ListProducts(ctx, base, store.Page{Limit: 2, Cursor: next}); err != nil {
		t.Fatalf("its own cursor: %v", err)
	}
	for name, f := range map[string]store.ProductFilter{
		"other sort":     {Sort: store.SortPriceDesc, Category: "home"},
		"default sort":   {Category: "home"},
		"other category": {Sort: store.SortPriceAsc, Category: "toys"},
		"added filter":   {Sort: store.SortPriceAsc, Category: "home", InStock: true},
		"price bound":    {Sort: store.SortPriceAsc, Category: "home", MaxPriceCents: ptr(int64(9000))},
		"status":         {Sort: store.SortPriceAsc, Category: "home", Status: store.StatusAll},
	} {
		_, _, err := s.ListProducts(ctx, f, store.Page{Limit: 2, Cursor: next})
		if shopd.ErrorCode(err) != shopd.EInvalid {
			t.Errorf("%s: err = %v, want EInvalid", name, err)
		}
	}
	for _, c := range []string{"garbage", "eyJ0IjoiMjAyNi0wNS0wNFQxMDoxNTozMFoiLCJpIjoiOWIyZjRjMWUtM2Q1YS00ZjZiLThjN2QtMGUxZjJhM2I0YzVkIn0"} {
		if _, _, err := s.ListProducts(ctx, base, store.Page{Cursor: c}); shopd.ErrorCode(err) != shopd.EInvalid {
			t.Errorf("cursor %q: err = %v, want EInvalid", c, err)
		}
	}
}

// TestCategoriesCountActiveProducts: archived products and products without
// a category are not counted.
func TestCategoriesCountActiveProducts(t *testing.T) {
	t.Parallel()
	s := store.New(pgtest.NewDB(t))
	seedBrowseCatalog(t, s, 72)
	want := map[string]int64{}
	for _, p := range allProducts(t, s) {
		if p.IsActive && p.Category != nil {
			want[*p.Category]++
		}
	}
	got, err := s.Categories(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || len(got) != len(want) {
		t.Fatalf("categories = %+v, want %v", got, want)
	}
	for i, c := range got {
		if want[c.Name] != c.ProductCount {
			t.Errorf("%s: %d products, want %d", c.Name, c.ProductCount, want[c.Name])
		}
		if i > 0 && got[i-1].Name >= c.Name {
			t.Errorf("not by name: %+v", got)
		}
	}
}
