package store_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/store"
)

// TestProductVersionFollowsEveryChange: a product's version moves on with
// each change to it or its images (the catalog cache orders reads by it).
func TestProductVersionFollowsEveryChange(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := store.New(pgtest.NewDB(t))
	p := shoptest.Product(ctx, t, s, nil)
	version := func() int64 {
		t.Helper()
		got, err := s.Product(ctx, p.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		return got.Version
	}
	last := version()
	step := func(what string, change func() error) {
		t.Helper()
		if err := change(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if v := version(); v <= last {
			t.Errorf("after %s the version is %d, was %d", what, v, last)
		} else {
			last = v
		}
	}
	name := "Renamed"
	step("an update", func() error { _, err := s.UpdateProduct(ctx, p.ID, store.ProductPatch{Name: &name}); return err })
	step("a stock change", func() error {
		_, err := s.AdjustStock(ctx, store.StockChange{ProductID: p.ID, QuantityChange: 3, Type: "restock"})
		return err
	})
	var img store.ProductImage
	step("an image", func() error {
		var err error
		img, err = s.AddProductImage(ctx, store.NewProductImage{ID: uuid.NewString(), ProductID: p.ID, BlobKey: "k",
			ContentType: "image/png", Width: 1, Height: 1, ByteSize: 1}, nil)
		return err
	})
	step("its thumbnail", func() error { _, err := s.SetImageThumbnail(ctx, img.ID, "t"); return err })
	step("its deletion", func() error { _, err := s.DeleteProductImage(ctx, p.ID, img.ID); return err })
}
