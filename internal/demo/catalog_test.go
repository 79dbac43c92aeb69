package demo

import (
	"context"
	"testing"

	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestSeedCatalogOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, pgtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	n, err := SeedCatalog(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if n != 50 {
		t.Errorf("first seed added %d products, want 50", n)
	}
	// A catalog that has products (the demo's, or the user's) is left alone.
	if n, err := SeedCatalog(ctx, st); err != nil || n != 0 {
		t.Errorf("second seed: %d, %v; want 0, nil", n, err)
	}
	products, _, err := st.ListProducts(ctx, store.ProductFilter{}, store.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(products) != 50 {
		t.Errorf("catalog has %d products, want 50", len(products))
	}
}
