package handlers_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/store"
)

func TestCreateProduct(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	body := productBody(map[string]any{
		"name": "  Classic Tee  ", "description": "Organic cotton.", "priceCents": 2500,
		"compareAtPriceCents": 3000, "costPriceCents": 900, "category": "apparel",
		"tags": []string{"cotton", "basics"}, "stock": 7, "weightGrams": 220,
		"dimensions": map[string]any{"lengthMm": 300, "widthMm": 250, "heightMm": 20},
	})
	var p gen.Product
	created := a.do(t, http.MethodPost, "/v1/products", admin, body).want(t, http.StatusCreated)
	created.decode(t, &p)
	var raw map[string]any
	created.decode(t, &raw)
	for _, f := range []string{"createdAt", "updatedAt"} {
		if s, _ := raw[f].(string); !strings.HasSuffix(s, "Z") {
			t.Errorf("%s = %q, want RFC 3339 in UTC", f, raw[f])
		}
	}
	if p.Id == "" || p.Sku != body["sku"] || p.Name != "Classic Tee" || p.PriceCents != 2500 ||
		p.CompareAtPriceCents.MustGet() != 3000 || p.CostPriceCents.MustGet() != 900 || p.Category.MustGet() != "apparel" ||
		!slices.Equal(p.Tags, []string{"cotton", "basics"}) || p.Stock != 7 || p.WeightGrams.MustGet() != 220 ||
		p.Dimensions.MustGet() != (gen.Dimensions{LengthMm: 300, WidthMm: 250, HeightMm: 20}) {
		t.Errorf("created product = %+v", p)
	}
	// The documented defaults.
	if p.Currency != "usd" || p.LowStockThreshold != 10 || !p.IsActive || p.IsFeatured || len(p.Images) != 0 {
		t.Errorf("defaults: currency %q, lowStockThreshold %d, isActive %v, isFeatured %v, images %v",
			p.Currency, p.LowStockThreshold, p.IsActive, p.IsFeatured, p.Images)
	}

	// The cost price is for admins only.
	var public gen.Product
	r := a.do(t, http.MethodGet, "/v1/products/"+p.Id, "", nil).want(t, http.StatusOK)
	r.decode(t, &public)
	if strings.Contains(string(r.body), "costPriceCents") {
		t.Errorf("anonymous GET shows costPriceCents: %s", r.body)
	}
	customer, _ := a.customer(t)
	if r := a.do(t, http.MethodGet, "/v1/products/"+p.Id, customer, nil).want(t, http.StatusOK); strings.Contains(string(r.body), "costPriceCents") {
		t.Errorf("customer GET shows costPriceCents: %s", r.body)
	}
	if public.Id != p.Id || public.PriceCents != 2500 {
		t.Errorf("GET = %+v", public)
	}
}

func TestCreateProductRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		body      any // a map is merged over a valid body; a string is sent raw
		field     string
		noErrors  bool // a status without field errors
		status    int
		configure func(*testing.T, *http.Request)
	}{
		{name: "negative price", body: map[string]any{"priceCents": -100}, field: "priceCents"},
		{name: "zero price", body: map[string]any{"priceCents": 0}, field: "priceCents"},
		{name: "float price", body: map[string]any{"priceCents": 12.5}, field: "priceCents"},
		{name: "price as string", body: map[string]any{"priceCents": "1999"}, field: "priceCents"},
		{name: "negative stock", body: map[string]any{"stock": -1}, field: "stock"},
		{name: "unknown field", body: map[string]any{"colour": "red"}},
		{name: "read-only id", body: map[string]any{"id": uuid.NewString()}},
		{name: "read-only createdAt", body: map[string]any{"createdAt": "2026-01-01T00:00:00Z"}},
		{name: "read-only images", body: map[string]any{"images": []string{"https://example.com/a.jpg"}}},
		{name: "missing sku", body: map[string]any{"sku": nil}},
		{name: "missing name", body: map[string]any{"name": nil}},
		{name: "missing priceCents", body: map[string]any{"priceCents": nil}},
		{name: "missing stock", body: map[string]any{"stock": nil}},
		{name: "blank name", body: map[string]any{"name": "   "}, field: "name"},
		{name: "bad sku", body: map[string]any{"sku": "has spaces"}, field: "sku"},
		{name: "upper-case currency", body: map[string]any{"currency": "USD"}, field: "currency"},
		{name: "malformed JSON", body: `{"sku": "X-1", "name": `},
		{name: "JSON array", body: `[]`},
		{name: "empty body", body: ``},
		{name: "text/plain", body: map[string]any{}, configure: func(_ *testing.T, r *http.Request) { r.Header.Set("Content-Type", "text/plain") }},
		// Refused by its Content-Length: the body is never sent, let alone parsed.
		{name: "2 MiB body", body: "", status: http.StatusRequestEntityTooLarge, noErrors: true,
			configure: func(t *testing.T, r *http.Request) { declareBody(t, r, 2<<20) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t)
			admin := a.admin(t)
			body := tc.body
			if m, ok := body.(map[string]any); ok {
				body = productBody(m)
			}
			req := a.request(t, http.MethodPost, "/v1/products", admin, body)
			if tc.configure != nil {
				tc.configure(t, req)
			}
			status := tc.status
			if status == 0 {
				status = http.StatusBadRequest
			}
			p := expectProblem(t, a.send(t, req), status)
			if !tc.noErrors && len(p.Errors) == 0 {
				t.Errorf("problem has no errors: %+v", p)
			}
			if tc.field != "" && !p.hasFieldError(tc.field) {
				t.Errorf("errors %+v do not name %q", p.Errors, tc.field)
			}
			if n := a.productCount(t); n != 0 {
				t.Errorf("a rejected create stored %d products", n)
			}
		})
	}
}

// TestBodyLimitIsOneMiB: a body of exactly 1 MiB is read; one byte more is
// refused with 413 before it is parsed.
func TestBodyLimitIsOneMiB(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	padded := func(size int) string {
		b := productBody(nil)
		j := fmt.Sprintf(`{"sku":%q,"name":"Big","priceCents":100,"stock":1}`, b["sku"])
		return j[:len(j)-1] + strings.Repeat(" ", size-len(j)) + "}"
	}
	a.do(t, http.MethodPost, "/v1/products", admin, padded(1<<20)).want(t, http.StatusCreated)

	// One byte over, refused by its Content-Length before a byte is read.
	req := a.request(t, http.MethodPost, "/v1/products", admin, "")
	declareBody(t, req, 1<<20+1)
	expectProblem(t, a.send(t, req), http.StatusRequestEntityTooLarge)

	// Without a Content-Length (chunked), the limit holds while reading.
	req = a.request(t, http.MethodPost, "/v1/products", admin, nil)
	req.Body = io.NopCloser(strings.NewReader(padded(1<<20 + 64<<10)))
	req.Header.Set("Content-Type", "application/json")
	req.Close = true
	expectProblem(t, a.send(t, req), http.StatusRequestEntityTooLarge)
	if n := a.productCount(t); n != 1 {
		t.Errorf("products = %d, want only the 1 MiB one", n)
	}
}

func TestCreateProductDuplicateSKU(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	first := a.product(t, admin, nil)
	r := a.do(t, http.MethodPost, "/v1/products", admin, productBody(map[string]any{"sku": first.Sku, "name": "Another"}))
	expectProblem(t, r, http.StatusConflict)
	if n := a.productCount(t); n != 1 {
		t.Errorf("products = %d, want 1", n)
	}
}

func TestListLimitMustBeInRange(t *testing.T) {
	t.Parallel()
	a := setup(t)
	for _, q := range []string{"limit=0", "limit=101", "limit=abc", "limit=-1", "limit=1.5"} {
		t.Run(q, func(t *testing.T) {
			t.Parallel()
			p := expectProblem(t, a.do(t, http.MethodGet, "/v1/products?"+q, "", nil), http.StatusBadRequest)
			if !p.hasFieldError("limit") {
				t.Errorf("errors %+v do not name limit", p.Errors)
			}
		})
	}
	for _, q := range []string{"limit=1", "limit=100", ""} {
		a.do(t, http.MethodGet, "/v1/products?"+q, "", nil).want(t, http.StatusOK)
	}
}

func TestGetProduct(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	customer, _ := a.customer(t)
	p := a.product(t, admin, nil)
	archived := a.product(t, admin, nil)

	var gone gen.Product
	a.do(t, http.MethodDelete, "/v1/products/"+archived.Id, admin, nil).want(t, http.StatusOK).decode(t, &gone)
	if gone.IsActive || gone.Id != archived.Id {
		t.Errorf("DELETE returned %+v, want the product with isActive false", gone)
	}
	// Archiving again is not an error.
	a.do(t, http.MethodDelete, "/v1/products/"+archived.Id, admin, nil).want(t, http.StatusOK)

	cases := []struct {
		name   string
		id     string
		token  string
		status int
	}{
		{"active, anonymous", p.Id, "", http.StatusOK},
		{"active, customer", p.Id, customer, http.StatusOK},
		{"active, invalid token is anonymous", p.Id, "garbage", http.StatusOK},
		{"unknown uuid", uuid.NewString(), admin, http.StatusNotFound},
		{"not a uuid", "nope", admin, http.StatusNotFound},
		{"archived, anonymous", archived.Id, "", http.StatusNotFound},
		{"archived, customer", archived.Id, customer, http.StatusNotFound},
		{"archived, admin", archived.Id, admin, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := a.do(t, http.MethodGet, "/v1/products/"+tc.id, tc.token, nil)
			if tc.status != http.StatusOK {
				expectProblem(t, r, tc.status)
				return
			}
			var got gen.Product
			r.want(t, http.StatusOK).decode(t, &got)
			if got.Id != tc.id {
				t.Errorf("got product %s, want %s", got.Id, tc.id)
			}
		})
	}

	t.Run("archived is not listed", func(t *testing.T) {
		t.Parallel()
		for _, token := range []string{"", customer, admin} {
			ids := listIDs(t, a, token, "")
			if slices.Contains(ids, archived.Id) || !slices.Contains(ids, p.Id) {
				t.Errorf("list = %v: want %s and not the archived %s", ids, p.Id, archived.Id)
			}
		}
	})
}

// listIDs walks every page of GET /v1/products?query and returns the ids
// in order.
func listIDs(t *testing.T, a *api, token, query string) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for range 100 {
		q, _ := url.ParseQuery(query)
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page gen.ProductList
		a.do(t, http.MethodGet, "/v1/products?"+q.Encode(), token, nil).want(t, http.StatusOK).decode(t, &page)
		for _, p := range page.Items {
			ids = append(ids, p.Id)
		}
		if !page.NextCursor.IsSpecified() || page.NextCursor.IsNull() {
			return ids
		}
		cursor = page.NextCursor.MustGet()
	}
	t.Fatal("more than 100 pages")
	return nil
}

func TestUpdateProduct(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)

	t.Run("price", func(t *testing.T) {
		t.Parallel()
		p := a.product(t, admin, map[string]any{"priceCents": 1000})
		var got gen.Product
		a.do(t, http.MethodPatch, "/v1/products/"+p.Id, admin, map[string]any{"priceCents": 1250}).
			want(t, http.StatusOK).decode(t, &got)
		if got.PriceCents != 1250 || got.Name != p.Name || got.Stock != p.Stock || got.Sku != p.Sku {
			t.Errorf("PATCH returned %+v", got)
		}
		if !got.UpdatedAt.After(p.UpdatedAt) {
			t.Errorf("updatedAt %v not after %v", got.UpdatedAt, p.UpdatedAt)
		}
		a.do(t, http.MethodGet, "/v1/products/"+p.Id, "", nil).want(t, http.StatusOK).decode(t, &got)
		if got.PriceCents != 1250 {
			t.Errorf("GET after PATCH: priceCents %d", got.PriceCents)
		}
	})

	t.Run("name is trimmed as on create", func(t *testing.T) {
		t.Parallel()
		p := a.product(t, admin, nil)
		var got gen.Product
		a.do(t, http.MethodPatch, "/v1/products/"+p.Id, admin, map[string]any{"name": "  Renamed  "}).
			want(t, http.StatusOK).decode(t, &got)
		if got.Name != "Renamed" {
			t.Errorf("name = %q, want %q", got.Name, "Renamed")
		}
	})

	t.Run("null clears", func(t *testing.T) {
		t.Parallel()
		p := a.product(t, admin, map[string]any{"compareAtPriceCents": 2500, "category": "mugs", "weightGrams": 300,
			"dimensions": map[string]any{"lengthMm": 1, "widthMm": 2, "heightMm": 3}})
		var got gen.Product
		a.do(t, http.MethodPatch, "/v1/products/"+p.Id, admin, map[string]any{
			"compareAtPriceCents": nil, "category": nil, "weightGrams": nil, "dimensions": nil,
		}).want(t, http.StatusOK).decode(t, &got)
		for name, n := range map[string]interface{ IsNull() bool }{
			"compareAtPriceCents": got.CompareAtPriceCents, "category": got.Category,
			"weightGrams": got.WeightGrams, "dimensions": got.Dimensions,
		} {
			if !n.IsNull() {
				t.Errorf("%s not cleared: %+v", name, got)
			}
		}
		if got.PriceCents != p.PriceCents {
			t.Errorf("priceCents changed to %d", got.PriceCents)
		}
		a.do(t, http.MethodGet, "/v1/products/"+p.Id, "", nil).want(t, http.StatusOK).decode(t, &got)
		if !got.CompareAtPriceCents.IsNull() {
			t.Errorf("GET after PATCH: compareAtPriceCents %v", got.CompareAtPriceCents)
		}
	})

	t.Run("restore an archived product", func(t *testing.T) {
		t.Parallel()
		p := a.product(t, admin, nil)
		a.do(t, http.MethodDelete, "/v1/products/"+p.Id, admin, nil).want(t, http.StatusOK)
		a.do(t, http.MethodPatch, "/v1/products/"+p.Id, admin, map[string]any{"isActive": true}).want(t, http.StatusOK)
		a.do(t, http.MethodGet, "/v1/products/"+p.Id, "", nil).want(t, http.StatusOK)
	})

	t.Run("unknown product", func(t *testing.T) {
		t.Parallel()
		for _, id := range []string{uuid.NewString(), "nope"} {
			expectProblem(t, a.do(t, http.MethodPatch, "/v1/products/"+id, admin, map[string]any{"priceCents": 5}), http.StatusNotFound)
			expectProblem(t, a.do(t, http.MethodDelete, "/v1/products/"+id, admin, nil), http.StatusNotFound)
		}
	})

	invalid := []struct {
		name  string
		body  any
		field string
	}{
		{"stock", map[string]any{"stock": 99}, ""},
		{"empty", map[string]any{}, ""},
		{"read-only id", map[string]any{"id": uuid.NewString()}, ""},
		{"zero price", map[string]any{"priceCents": 0}, "priceCents"},
		{"null price", map[string]any{"priceCents": nil}, "priceCents"},
		{"blank name", map[string]any{"name": " "}, "name"},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := a.product(t, admin, map[string]any{"priceCents": 1000, "stock": 4})
			prob := expectProblem(t, a.do(t, http.MethodPatch, "/v1/products/"+p.Id, admin, tc.body), http.StatusBadRequest)
			if len(prob.Errors) == 0 {
				t.Errorf("no errors in %+v", prob)
			}
			if tc.field != "" && !prob.hasFieldError(tc.field) {
				t.Errorf("errors %+v do not name %q", prob.Errors, tc.field)
			}
			var got gen.Product
			a.do(t, http.MethodGet, "/v1/products/"+p.Id, admin, nil).want(t, http.StatusOK).decode(t, &got)
			if got.Stock != 4 || got.PriceCents != 1000 || got.Name != p.Name || !got.UpdatedAt.Equal(p.UpdatedAt) {
				t.Errorf("a rejected PATCH changed the product: %+v", got)
			}
		})
	}

	t.Run("taken sku", func(t *testing.T) {
		t.Parallel()
		p := a.product(t, admin, nil)
		other := a.product(t, admin, nil)
		expectProblem(t, a.do(t, http.MethodPatch, "/v1/products/"+p.Id, admin, map[string]any{"sku": other.Sku}), http.StatusConflict)
		var got gen.Product
		a.do(t, http.MethodGet, "/v1/products/"+p.Id, admin, nil).want(t, http.StatusOK).decode(t, &got)
		if got.Sku != p.Sku {
			t.Errorf("sku = %q after a refused change, want %q", got.Sku, p.Sku)
		}
	})
}

func TestListProductsPagination(t *testing.T) {
	t.Parallel()
	a := setup(t)
	ctx := context.Background()
	created := map[string]store.Product{}
	for i := range 45 {
		p, err := a.Store.CreateProduct(ctx, store.NewProduct{
			SKU: fmt.Sprintf("PAGE-%02d", i), Name: fmt.Sprintf("Paged %02d", i), PriceCents: 100, Stock: 1,
			LowStockThreshold: 10, IsActive: true,
		}, "")
		if err != nil {
			t.Fatal(err)
		}
		created[p.ID] = p
	}

	walk := func(interleave func()) []gen.Product {
		var all []gen.Product
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("more pages than 45 products need")
			}
			path := "/v1/products?limit=10"
			if cursor != "" {
				path += "&cursor=" + url.QueryEscape(cursor)
			}
			var page gen.ProductList
			a.do(t, http.MethodGet, path, "", nil).want(t, http.StatusOK).decode(t, &page)
			last := page.NextCursor.IsNull()
			if want := 10; !last && len(page.Items) != want {
				t.Errorf("page %d has %d items, want %d", pages, len(page.Items), want)
			}
			all = append(all, page.Items...)
			if last {
				return all
			}
			cursor = page.NextCursor.MustGet()
			if pages == 0 && interleave != nil {
				interleave()
			}
		}
	}

	// A product created mid-walk is newer than the first page: it must
	// neither appear later nor shift what follows.
	first := walk(func() {
		if _, err := a.Store.CreateProduct(ctx, store.NewProduct{SKU: "PAGE-LATE", Name: "Late", PriceCents: 100, LowStockThreshold: 10, IsActive: true}, ""); err != nil {
			t.Fatal(err)
		}
	})
	if len(first) != 45 {
		t.Fatalf("walked %d products, want 45", len(first))
	}
	seen := map[string]bool{}
	for i, p := range first {
		if _, ok := created[p.Id]; !ok {
			t.Errorf("unexpected product %s (%s)", p.Id, p.Sku)
		}
		if seen[p.Id] {
			t.Errorf("product %s listed twice", p.Sku)
		}
		seen[p.Id] = true
		if i > 0 {
			prev := first[i-1]
			if p.CreatedAt.After(prev.CreatedAt) || (p.CreatedAt.Equal(prev.CreatedAt) && p.Id > prev.Id) {
				t.Errorf("not newest first at %d: %s (%v) after %s (%v)", i, p.Sku, p.CreatedAt, prev.Sku, prev.CreatedAt)
			}
		}
	}

	// Walking again gives the same order (with the late product first).
	second := walk(nil)
	if len(second) != 46 || second[0].Sku != "PAGE-LATE" {
		t.Fatalf("second walk: %d products, first %q", len(second), second[0].Sku)
	}
	for i := range first {
		if first[i].Id != second[i+1].Id {
			t.Fatalf("order changed at %d: %s then %s", i, first[i].Sku, second[i+1].Sku)
		}
	}

	for name, cursor := range map[string]string{
		"garbage":      "garbage!",
		"not json":     base64.RawURLEncoding.EncodeToString([]byte("hello")),
		"empty object": base64.RawURLEncoding.EncodeToString([]byte(`{}`)),
		"bad id":       base64.RawURLEncoding.EncodeToString([]byte(`{"t":"2026-01-01T00:00:00Z","i":"x"}`)),
	} {
		p := expectProblem(t, a.do(t, http.MethodGet, "/v1/products?cursor="+url.QueryEscape(cursor), "", nil), http.StatusBadRequest)
		if !p.hasFieldError("cursor") {
			t.Errorf("%s cursor: errors %+v do not name cursor", name, p.Errors)
		}
	}
}

func TestSearchProducts(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	mk := func(sku, name, description, category string) string {
		o := map[string]any{"sku": sku, "name": name, "description": description}
		if category != "" {
			o["category"] = category
		}
		return a.product(t, admin, o).Id
	}
	blue := mk("WID-001", "Blue Widget", "Sturdy.", "tools")
	sprocket := mk("GAD-002", "Gadget", "Comes with a SPROCKET.", "tools")
	zx := mk("ZX-900", "Thing", "Plain.", "toys")
	percent := mk("TEE-100", "100% Cotton Tee", "Soft.", "apparel")
	thousand := mk("TEE-1000", "1000 Thread Sheet", "Smooth.", "apparel")
	underscore := mk("X_Y-1", "Marker", "Felt tip.", "")
	xzy := mk("XZY-1", "Marker Pro", "Felt tip.", "")
	archived := mk("WID-003", "Old Blue Widget", "Gone.", "tools")
	a.do(t, http.MethodDelete, "/v1/products/"+archived, admin, nil).want(t, http.StatusOK)
	_ = thousand

	cases := []struct {
		name  string
		query url.Values
		want  []string // newest first
	}{
		{"name, case-insensitive", url.Values{"q": {"bLUE wIDGET"}}, []string{blue}},
		{"description", url.Values{"q": {"sprocket"}}, []string{sprocket}},
		{"sku", url.Values{"q": {"zx-9"}}, []string{zx}},
		{"percent is literal", url.Values{"q": {"100%"}}, []string{percent}},
		{"underscore is literal", url.Values{"q": {"x_y"}}, []string{underscore}},
		{"backslash is literal", url.Values{"q": {`\`}}, nil},
		{"category", url.Values{"category": {"tools"}}, []string{sprocket, blue}},
		{"category and q", url.Values{"category": {"tools"}, "q": {"widget"}}, []string{blue}},
		{"category and q, no overlap", url.Values{"category": {"toys"}, "q": {"widget"}}, nil},
		{"unknown category", url.Values{"category": {"nothing"}}, nil},
		{"no match", url.Values{"q": {"nomatchxyz"}}, nil},
		{"marker", url.Values{"q": {"marker"}}, []string{xzy, underscore}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var page gen.ProductList
			a.do(t, http.MethodGet, "/v1/products?"+tc.query.Encode(), "", nil).want(t, http.StatusOK).decode(t, &page)
			var got []string
			for _, p := range page.Items {
				got = append(got, p.Id)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s = %v, want %v", tc.query.Encode(), got, tc.want)
			}
			if page.Items == nil {
				t.Error("items is null, want []")
			}
			if !page.NextCursor.IsNull() {
				t.Errorf("nextCursor = %v, want null", page.NextCursor)
			}
		})
	}
}
