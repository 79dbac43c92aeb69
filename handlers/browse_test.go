package handlers_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/shopd/shopd/gen"
)

// TestBrowseProductsOverHTTP sorts and filters through the API and walks a
// sorted, filtered list by its cursors; a cursor used with another sort or
// filter is a 400 problem.
func TestBrowseProductsOverHTTP(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	// Ties in price and name, so the id decides.
	var ids []string
	for i := range 9 {
		p := a.product(t, admin, map[string]any{
			"name":       []string{"mug", "cap", "bag"}[i%3],
			"priceCents": 1000 * (1 + i%3),
			"stock":      i % 2, // odd ones in stock
			"isFeatured": i%4 == 0,
			"category":   "browse",
		})
		ids = append(ids, p.Id)
	}
	byPrice := listIDs(t, a, "", "category=browse&sort=price_desc&minPriceCents=2000&maxPriceCents=3000&limit=2")
	if len(byPrice) != 6 {
		t.Fatalf("price 2000..3000: %d products, want 6", len(byPrice))
	}
	var prev gen.Product
	for i, id := range byPrice {
		var p gen.Product
		a.do(t, http.MethodGet, "/v1/products/"+id, "", nil).want(t, http.StatusOK).decode(t, &p)
		if p.PriceCents < 2000 || p.PriceCents > 3000 {
			t.Errorf("price %d outside the range", p.PriceCents)
		}
		if i > 0 && (p.PriceCents > prev.PriceCents || p.PriceCents == prev.PriceCents && p.Id > prev.Id) {
			t.Errorf("not price_desc: %d/%s after %d/%s", p.PriceCents, p.Id, prev.PriceCents, prev.Id)
		}
		prev = p
	}
	inStock := listIDs(t, a, "", "category=browse&inStock=true&sort=name&limit=2")
	if len(inStock) != 4 {
		t.Errorf("inStock: %d products, want 4", len(inStock))
	}
	featured := listIDs(t, a, "", "category=browse&featured=true")
	if !slices.Equal(featured, []string{ids[8], ids[4], ids[0]}) {
		t.Errorf("featured = %v, want %v newest first", featured, []string{ids[8], ids[4], ids[0]})
	}

	var first gen.ProductList
	a.do(t, http.MethodGet, "/v1/products?category=browse&sort=name&limit=2", "", nil).want(t, http.StatusOK).decode(t, &first)
	cursor := first.NextCursor.MustGet()
	for _, q := range []string{"category=browse&sort=price_asc", "category=browse", "category=browse&sort=name&inStock=true", "sort=name"} {
		p := expectProblem(t, a.do(t, http.MethodGet, "/v1/products?"+q+"&cursor="+url.QueryEscape(cursor), "", nil), http.StatusBadRequest)
		if !p.hasFieldError("cursor") {
			t.Errorf("%s: problem does not name the cursor: %+v", q, p)
		}
	}
	a.do(t, http.MethodGet, "/v1/products?category=browse&sort=name&limit=2&cursor="+url.QueryEscape(cursor), "", nil).want(t, http.StatusOK)

	r := a.do(t, http.MethodGet, "/v1/products?minPriceCents=3000&maxPriceCents=2000", "", nil)
	if p := expectProblem(t, r, http.StatusBadRequest); !p.hasFieldError("minPriceCents") {
		t.Errorf("min > max: %+v", p)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id on the problem")
	}
	expectProblem(t, a.do(t, http.MethodGet, "/v1/products?sort=cheapest", "", nil), http.StatusBadRequest)
}

// TestListProductsStatusIsForAdmins: status is an admin parameter (403 for
// anyone else, even status=active); admins list archived products and
// restore one with PATCH {isActive: true}.
func TestListProductsStatusIsForAdmins(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	customer, _ := a.customer(t)
	kept := a.product(t, admin, map[string]any{"category": "status"})
	archived := a.product(t, admin, map[string]any{"category": "status"})
	a.do(t, http.MethodDelete, "/v1/products/"+archived.Id, admin, nil).want(t, http.StatusOK)

	for _, token := range []string{"", customer, "not-a-token"} {
		for _, status := range []string{"active", "archived", "all"} {
			r := a.do(t, http.MethodGet, "/v1/products?status="+status, token, nil)
			expectProblem(t, r, http.StatusForbidden)
			if r.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id on the 403")
			}
		}
	}
	for status, want := range map[string][]string{
		"active":   {kept.Id},
		"archived": {archived.Id},
		"all":      {archived.Id, kept.Id},
	} {
		if got := listIDs(t, a, admin, "category=status&status="+status); !slices.Equal(got, want) {
			t.Errorf("status=%s: %v, want %v", status, got, want)
		}
	}
	if got := listIDs(t, a, "", "category=status"); !slices.Equal(got, []string{kept.Id}) {
		t.Errorf("public list: %v, want only the active product", got)
	}

	var restored gen.Product
	a.do(t, http.MethodPatch, "/v1/products/"+archived.Id, admin, map[string]any{"isActive": true}).
		want(t, http.StatusOK).decode(t, &restored)
	if !restored.IsActive {
		t.Fatal("PATCH {isActive: true} left the product archived")
	}
	a.do(t, http.MethodGet, "/v1/products/"+archived.Id, "", nil).want(t, http.StatusOK)
	if got := listIDs(t, a, "", "category=status"); !slices.Equal(got, []string{archived.Id, kept.Id}) {
		t.Errorf("after the restore: %v, want both", got)
	}
}

// TestListCategories counts active products per category, without a token.
func TestListCategories(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	for _, c := range []string{"kitchen", "garden", "kitchen", "kitchen"} {
		a.product(t, admin, map[string]any{"category": c})
	}
	a.product(t, admin, nil) // no category
	gone := a.product(t, admin, map[string]any{"category": "garden"})
	a.do(t, http.MethodDelete, "/v1/products/"+gone.Id, admin, nil).want(t, http.StatusOK)
	only := a.product(t, admin, map[string]any{"category": "attic"})
	a.do(t, http.MethodDelete, "/v1/products/"+only.Id, admin, nil).want(t, http.StatusOK)

	var got gen.CategoryList
	r := a.do(t, http.MethodGet, "/v1/categories", "", nil).want(t, http.StatusOK)
	r.decode(t, &got)
	want := []gen.Category{{Name: "garden", ProductCount: 1}, {Name: "kitchen", ProductCount: 3}}
	if !slices.Equal(got.Items, want) {
		t.Errorf("categories = %+v, want %+v", got.Items, want)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
}
