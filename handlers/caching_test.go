package handlers_test

import (
	"net/http"
	"testing"
)

// conditionalGet is GET path as token ("" for anonymous) with If-None-Match
// etag ("" for none); the response is checked against the spec.
func (a *api) conditionalGet(t *testing.T, path, token, etag string) *resp {
	t.Helper()
	req := a.request(t, http.MethodGet, path, token, nil)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	return a.send(t, req)
}

// TestCatalogETag: product and product-list reads carry a strong ETag; a
// repeat with it is 304 without a body; it changes after a PATCH, a
// restock and a sale, each of which changes the body.
func TestCatalogETag(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	p := s.product(t, s.admin, map[string]any{"stock": 10, "costPriceCents": 900})
	for _, path := range []string{"/v1/products/" + p.Id, "/v1/products"} {
		t.Run(path, func(t *testing.T) {
			first := s.conditionalGet(t, path, "", "").want(t, http.StatusOK)
			etag := first.header.Get("ETag")
			if len(etag) != 66 || etag[0] != '"' {
				t.Fatalf("ETag = %q, want a quoted SHA-256", etag)
			}
			again := s.conditionalGet(t, path, "", etag).want(t, http.StatusNotModified)
			if len(again.body) != 0 || again.header.Get("ETag") != etag {
				t.Errorf("repeat: body %q, ETag %q; want none and %q", again.body, again.header.Get("ETag"), etag)
			}
			// Any of several tags, and a weakened one, match too.
			s.conditionalGet(t, path, "", `"other", W/`+etag).want(t, http.StatusNotModified)
			s.conditionalGet(t, path, "", `"other"`).want(t, http.StatusOK)
		})
	}

	// changed asserts that path's ETag moved off etag and returns the new one.
	changed := func(t *testing.T, path, etag, after string) string {
		t.Helper()
		r := s.conditionalGet(t, path, "", etag).want(t, http.StatusOK)
		next := r.header.Get("ETag")
		if next == etag || next == "" {
			t.Errorf("%s: ETag %q after %s, want a new one", path, next, after)
		}
		return next
	}
	path := "/v1/products/" + p.Id
	etag := s.conditionalGet(t, path, "", "").want(t, http.StatusOK).header.Get("ETag")
	listETag := s.conditionalGet(t, "/v1/products", "", "").want(t, http.StatusOK).header.Get("ETag")

	s.do(t, http.MethodPatch, path, s.admin, map[string]any{"name": "Renamed"}).want(t, http.StatusOK)
	etag = changed(t, path, etag, "PATCH")
	listETag = changed(t, "/v1/products", listETag, "PATCH")

	s.do(t, http.MethodPost, path+"/inventory", s.admin, map[string]any{"quantityChange": 5, "type": "restock"}).
		want(t, http.StatusCreated)
	etag = changed(t, path, etag, "restock")
	listETag = changed(t, "/v1/products", listETag, "restock")

	s.placeOrder(t, s.newCustomer(t), line{p.Id, 2})
	changed(t, path, etag, "sale")
	changed(t, "/v1/products", listETag, "sale")
}

// TestCatalogCacheHeaders: an anonymous read may sit in a shared cache
// briefly; a signed-in one (an admin's carries cost prices) may not, and
// both say Vary: Authorization so a cache never mixes them up. Errors are
// not given cache headers.
func TestCatalogCacheHeaders(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	p := a.product(t, admin, map[string]any{"costPriceCents": 900})
	for _, path := range []string{"/v1/products/" + p.Id, "/v1/products"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			anon := a.conditionalGet(t, path, "", "").want(t, http.StatusOK)
			adm := a.conditionalGet(t, path, admin, "").want(t, http.StatusOK)
			if got := anon.header.Get("Cache-Control"); got != "public, max-age=30, stale-while-revalidate=30" {
				t.Errorf("anonymous Cache-Control = %q", got)
			}
			if got := adm.header.Get("Cache-Control"); got != "private, no-store" {
				t.Errorf("admin Cache-Control = %q", got)
			}
			for who, r := range map[string]*resp{"anonymous": anon, "admin": adm} {
				if got := r.header.Values("Vary"); len(got) != 1 || got[0] != "Authorization" {
					t.Errorf("%s Vary = %q, want [Authorization]", who, got)
				}
			}
			if anon.header.Get("ETag") == adm.header.Get("ETag") {
				t.Errorf("admin and anonymous bodies share ETag %s", anon.header.Get("ETag"))
			}
			// An admin's tag does not validate the anonymous body.
			a.conditionalGet(t, path, "", adm.header.Get("ETag")).want(t, http.StatusOK)
			a.conditionalGet(t, path, admin, adm.header.Get("ETag")).want(t, http.StatusNotModified)
		})
	}
	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		r := a.conditionalGet(t, "/v1/products/00000000-0000-4000-8000-000000000000", "", "*")
		expectProblem(t, r, http.StatusNotFound)
		if r.header.Get("ETag") != "" || r.header.Get("Cache-Control") != "" {
			t.Errorf("404 carries ETag %q, Cache-Control %q", r.header.Get("ETag"), r.header.Get("Cache-Control"))
		}
	})
}
