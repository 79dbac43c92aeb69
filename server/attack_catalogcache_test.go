package server

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/internal/stripefake"
	"github.com/shopd/shopd/payments"
)

// Attacks on the catalog read cache from outside: real instances over
// HTTP, with direct SQL as "another writer".

// fetch sends a request with the given headers (token as a bearer when
// not empty) and returns the whole answer.
func (s *server) fetch(t testing.TB, method, path, token string, header map[string]string, body []byte) shoptest.Response {
	t.Helper()
	return shoptest.Fetch(t, s.base, method, path, token, header, body)
}

// cachedRead reads path until a read is answered from the cache (the
// notifications of earlier writes may still drop what it kept): what
// follows then attacks a kept entry.
func (s *server) cachedRead(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		s.fetch(t, http.MethodGet, path, "", nil, nil)
		hits := s.cacheMetric(t, "shopd_catalog_cache_hits_total")
		if f := s.fetch(t, http.MethodGet, path, "", nil, nil); f.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, f.Status, f.Body)
		}
		if s.cacheMetric(t, "shopd_catalog_cache_hits_total") == hits+1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: not answered from the cache within 10s", path)
		}
	}
}

// TestAttackUnsignedWebhookKeepsTheCache: anyone can POST to the Stripe
// webhook route without a signature. Such a request changes nothing, so
// it must not empty the instance's cache (it did: every write but a few
// named ones emptied it, refused or not, so one unsigned request per read
// made every catalog read go to the database). A verified event still
// empties it: payment events move stock.
func TestAttackUnsignedWebhookKeepsTheCache(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 1, nil)
	s := servers[0]
	var p cachedProduct
	body := map[string]any{"sku": "ATK-WH", "name": "Webhook target", "priceCents": 1000, "stock": 5}
	if code := s.call(t, http.MethodPost, "/v1/products", sh.admin, body, &p); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	path := "/v1/products/" + p.ID
	for _, sig := range []string{"", "t=1,v1=00", payments.SignWebhook([]byte(`{}`), "whsec_not_ours", time.Now())} {
		s.cachedRead(t, path)
		f := s.fetch(t, http.MethodPost, "/v1/webhooks/stripe", "", map[string]string{"Content-Type": "application/json", "Stripe-Signature": sig}, []byte(`{}`))
		if f.Status != http.StatusBadRequest {
			t.Fatalf("unsigned webhook (signature %q): %d, want 400", sig, f.Status)
		}
		hits := s.cacheMetric(t, "shopd_catalog_cache_hits_total")
		s.product(t, p.ID)
		if got := s.cacheMetric(t, "shopd_catalog_cache_hits_total"); got != hits+1 {
			t.Errorf("after a webhook refused for its signature %q the product was read from the database: the cache was emptied", sig)
		}
	}
	s.cachedRead(t, path)
	event, _ := json.Marshal(map[string]any{
		"id": "evt_" + uuid.NewString(), "object": "event", "type": "customer.created", "api_version": "2023-10-16",
		"created": time.Now().Unix(), "livemode": false, "data": map[string]any{"object": map[string]any{"id": "cus_1", "object": "customer"}},
	})
	s.deliver(t, event, sh.secret)
	misses := s.cacheMetric(t, "shopd_catalog_cache_misses_total")
	s.product(t, p.ID)
	if got := s.cacheMetric(t, "shopd_catalog_cache_misses_total"); got != misses+1 {
		t.Errorf("a verified webhook left the cache as it was: %v misses, want %v", got, misses+1)
	}
}

// TestAttackRefusedWritesKeepTheCache: a signed-in customer's writes
// that are refused before they do anything (an order that does not exist,
// an admin route) must not empty the cache: they did, so any customer
// could make every read go to the database with one request per read.
func TestAttackRefusedWritesKeepTheCache(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 1, nil)
	s := servers[0]
	customer := registerCustomer(t, s)
	var p cachedProduct
	body := map[string]any{"sku": "ATK-REF", "name": "Refusals", "priceCents": 1000, "stock": 5}
	if code := s.call(t, http.MethodPost, "/v1/products", sh.admin, body, &p); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	path := "/v1/products/" + p.ID
	for _, w := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/v1/orders/" + uuid.NewString() + "/cancel", http.StatusNotFound},
		{http.MethodPost, "/v1/admin/orders/" + uuid.NewString() + "/refund", http.StatusForbidden},
		{http.MethodPatch, "/v1/products/" + p.ID, http.StatusForbidden},
	} {
		s.cachedRead(t, path)
		if code := s.call(t, w.method, w.path, customer, map[string]any{}, nil); code != w.want {
			t.Fatalf("%s %s: %d, want %d", w.method, w.path, code, w.want)
		}
		hits := s.cacheMetric(t, "shopd_catalog_cache_hits_total")
		s.product(t, p.ID)
		if got := s.cacheMetric(t, "shopd_catalog_cache_hits_total"); got != hits+1 {
			t.Errorf("after %s %s (refused: %d) the product was read from the database: the cache was emptied", w.method, w.path, w.want)
		}
	}
}

// TestAttackAdminBodiesNeverReachOthers: admins read first (cost prices,
// an archived product, the archived list), then anonymous callers and a
// customer read the same paths, several times so cached answers are
// served too: none of them sees a cost price or an archived product.
func TestAttackAdminBodiesNeverReachOthers(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 2, nil)
	a, b := servers[0], servers[1]
	customer := registerCustomer(t, a)
	var live, gone cachedProduct
	for _, pr := range []struct {
		into *cachedProduct
		sku  string
	}{{&live, "ATK-LIVE"}, {&gone, "ATK-GONE"}} {
		body := map[string]any{"sku": pr.sku, "name": "Secret cost " + pr.sku, "priceCents": 1000, "costPriceCents": 123, "stock": 5}
		if code := a.call(t, http.MethodPost, "/v1/products", sh.admin, body, pr.into); code != http.StatusCreated {
			t.Fatalf("create: %d", code)
		}
	}
	if code := a.call(t, http.MethodDelete, "/v1/products/"+gone.ID, sh.admin, nil, nil); code != http.StatusNoContent && code != http.StatusOK {
		t.Fatalf("archive: %d", code)
	}
	paths := []string{"/v1/products/" + live.ID, "/v1/products/" + gone.ID, "/v1/products", "/v1/products?limit=10", "/v1/products?sort=price_asc"}
	for _, s := range servers {
		for _, path := range paths {
			for range 2 {
				if f := s.fetch(t, http.MethodGet, path, sh.admin, nil, nil); f.Status != http.StatusOK {
					t.Fatalf("admin GET %s: %d", path, f.Status)
				}
			}
		}
	}
	for round := range 3 {
		for _, s := range []*server{a, b} {
			for _, token := range []string{"", customer, "not-a-token"} {
				for _, path := range paths {
					f := s.fetch(t, http.MethodGet, path, token, nil, nil)
					if bytes.Contains(f.Body, []byte("costPriceCents")) || bytes.Contains(f.Body, []byte(`"123`)) {
						t.Errorf("round %d, token %.10q: GET %s shows a cost price: %s", round, token, path, f.Body)
					}
					if bytes.Contains(f.Body, []byte("ATK-GONE")) {
						t.Errorf("round %d, token %.10q: GET %s shows the archived product: %d %s", round, token, path, f.Status, f.Body)
					}
					if f.Status == http.StatusOK && f.Header.Get("Cache-Control") != "public, max-age=30, stale-while-revalidate=30" && token == "" {
						t.Errorf("anonymous GET %s: Cache-Control %q", path, f.Header.Get("Cache-Control"))
					}
				}
			}
		}
	}
}

// registerCustomer signs up a customer through s and returns a token.
func registerCustomer(t *testing.T, s *server) string {
	t.Helper()
	email := "atk-" + uuid.NewString()[:8] + "@example.com"
	reg := map[string]any{"email": email, "password": "a-long-password", "firstName": "Eve", "lastName": "Attacker"}
	if code := s.call(t, http.MethodPost, "/v1/auth/register", "", reg, nil); code != http.StatusCreated {
		t.Fatalf("register: %d", code)
	}
	return s.token(t, email, "a-long-password")
}

// pngBytes is a small PNG image.
func pngBytes(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for x := range 40 {
		img.Set(x, 3, color.RGBA{200, 10, 10, 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// uploadImage adds an image to the product through s and returns its id.
func (s *server) uploadImage(t *testing.T, token, productID string) string {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	part, _ := w.CreateFormFile("file", "a.png")
	part.Write(pngBytes(t))
	w.Close()
	f := s.fetch(t, http.MethodPost, "/v1/products/"+productID+"/images", token, map[string]string{"Content-Type": w.FormDataContentType()}, body.Bytes())
	var img struct{ ID string }
	if f.Status != http.StatusCreated || json.Unmarshal(f.Body, &img) != nil {
		t.Fatalf("upload: %d %s", f.Status, f.Body)
	}
	return img.ID
}

// fullProduct is what the read-your-writes attack compares.
type fullProduct struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PriceCents int64  `json:"priceCents"`
	Stock      int    `json:"stock"`
	IsFeatured bool   `json:"isFeatured"`
	Images     []struct {
		Alt string `json:"alt"`
	} `json:"images"`
}

type fullPage struct {
	Items []fullProduct `json:"items"`
}

// TestAttackReadYourWritesOnTheSameInstance: with the product and list
// pages kept on instance a, each write that changes the product through
// a (admin routes, images, checkout, cancel, a payment webhook) is read
// back from a right after its answer, through the product and through
// filtered list pages; instance b follows once notified.
func TestAttackReadYourWritesOnTheSameInstance(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 2, nil)
	a, b := servers[0], servers[1]
	var p fullProduct
	body := map[string]any{"sku": "ATK-RYW", "name": "Aardvark lamp", "priceCents": 1000, "stock": 5, "category": "lamps"}
	if code := a.call(t, http.MethodPost, "/v1/products", sh.admin, body, &p); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	customer := registerCustomer(t, a)
	var image string
	var order struct {
		Order struct{ ID string } `json:"order"`
	}
	pages := []string{"/v1/products?category=lamps", "/v1/products?inStock=true", "/v1/products?minPriceCents=1500", "/v1/products?featured=true", "/v1/products?sort=name&limit=1"}
	steps := []struct {
		name  string
		write func()
		want  func(p fullProduct, in map[string]bool) bool
	}{
		{"price up", func() {
			a.call(t, http.MethodPatch, "/v1/products/"+p.ID, sh.admin, map[string]any{"priceCents": 2000}, nil)
		},
			func(p fullProduct, in map[string]bool) bool { return p.PriceCents == 2000 && in[pages[2]] }},
		{"featured", func() {
			a.call(t, http.MethodPatch, "/v1/products/"+p.ID, sh.admin, map[string]any{"isFeatured": true}, nil)
		},
			func(p fullProduct, in map[string]bool) bool { return p.IsFeatured && in[pages[3]] }},
		{"stock to 0", func() {
			a.call(t, http.MethodPost, "/v1/products/"+p.ID+"/inventory", sh.admin, map[string]any{"quantityChange": -5, "type": "adjustment"}, nil)
		}, func(p fullProduct, in map[string]bool) bool { return p.Stock == 0 && !in[pages[1]] }},
		{"restock", func() {
			a.call(t, http.MethodPost, "/v1/products/"+p.ID+"/inventory", sh.admin, map[string]any{"quantityChange": 3, "type": "restock"}, nil)
		}, func(p fullProduct, in map[string]bool) bool { return p.Stock == 3 && in[pages[1]] }},
		{"image upload", func() { image = a.uploadImage(t, sh.admin, p.ID) },
			func(p fullProduct, _ map[string]bool) bool { return len(p.Images) == 1 }},
		{"image alt", func() {
			a.call(t, http.MethodPatch, "/v1/products/"+p.ID+"/images/"+image, sh.admin, map[string]any{"alt": "side view"}, nil)
		}, func(p fullProduct, _ map[string]bool) bool {
			return len(p.Images) == 1 && p.Images[0].Alt == "side view"
		}},
		{"image delete", func() { a.call(t, http.MethodDelete, "/v1/products/"+p.ID+"/images/"+image, sh.admin, nil, nil) },
			func(p fullProduct, _ map[string]bool) bool { return len(p.Images) == 0 }},
		{"checkout", func() {
			if code := a.call(t, http.MethodPost, "/v1/cart/items", customer, map[string]any{"productId": p.ID, "quantity": 2}, nil); code >= 300 {
				t.Fatalf("add to cart: %d", code)
			}
			addr := map[string]any{"firstName": "Eve", "lastName": "Attacker", "line1": "1 Road", "city": "London", "postalCode": "N1", "country": "GB"}
			raw, _ := json.Marshal(map[string]any{"shippingAddress": addr})
			f := a.fetch(t, http.MethodPost, "/v1/checkout", customer, map[string]string{"Content-Type": "application/json", "Idempotency-Key": uuid.NewString()}, raw)
			if f.Status != http.StatusCreated || json.Unmarshal(f.Body, &order) != nil {
				t.Fatalf("checkout: %d %s", f.Status, f.Body)
			}
		}, func(p fullProduct, _ map[string]bool) bool { return p.Stock == 1 }},
		{"cancel", func() {
			if code := a.call(t, http.MethodPost, "/v1/orders/"+order.Order.ID+"/cancel", customer, nil, nil); code != http.StatusOK {
				t.Fatalf("cancel: %d", code)
			}
		}, func(p fullProduct, _ map[string]bool) bool { return p.Stock == 3 }},
		{"rename", func() {
			a.call(t, http.MethodPatch, "/v1/products/"+p.ID, sh.admin, map[string]any{"name": "Zebra lamp"}, nil)
		},
			func(p fullProduct, in map[string]bool) bool { return p.Name == "Zebra lamp" }},
		{"archive", func() { a.call(t, http.MethodDelete, "/v1/products/"+p.ID, sh.admin, nil, nil) },
			func(p fullProduct, in map[string]bool) bool { return p.ID == "" && !in[pages[0]] && !in[pages[1]] }},
	}
	// read is the product (zero when not found) and the pages it is on.
	read := func(s *server) (fullProduct, map[string]bool) {
		var got fullProduct
		f := s.fetch(t, http.MethodGet, "/v1/products/"+p.ID, "", nil, nil)
		if f.Status == http.StatusOK {
			if err := json.Unmarshal(f.Body, &got); err != nil {
				t.Fatal(err)
			}
		} else if f.Status != http.StatusNotFound {
			t.Fatalf("GET product: %d", f.Status)
		}
		in := map[string]bool{}
		for _, path := range pages {
			var page fullPage
			f := s.fetch(t, http.MethodGet, path, "", nil, nil)
			if f.Status != http.StatusOK || json.Unmarshal(f.Body, &page) != nil {
				t.Fatalf("GET %s: %d %s", path, f.Status, f.Body)
			}
			for _, it := range page.Items {
				if it.ID == p.ID {
					in[path] = true
				}
			}
		}
		return got, in
	}
	for _, step := range steps {
		for _, s := range servers {
			read(s)
			read(s) // kept now
		}
		step.write()
		if got, in := read(a); !step.want(got, in) {
			t.Errorf("%s: instance a right after its own write: %+v, on pages %v", step.name, got, in)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if got, in := read(b); step.want(got, in) {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("%s: instance b after 10s: %+v, on pages %v", step.name, got, in)
			}
		}
	}
}

// TestAttackHammerNeverOlder: one writer raises a product's price one
// step at a time, alternately through instance a's API and straight in
// the database; readers on both instances hammer the product and a list
// page. A read that starts on a after a's own write has answered shows at
// least that write, however many reads race it, and every reader ends on
// the last price. (Not asserted: that a reader never sees the price go
// back. Two misses racing a change not yet notified may keep the older
// read after the newer one was answered; that is within the notification
// delay the cache promises, but it is not monotonic.)
func TestAttackHammerNeverOlder(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 2, nil)
	a := servers[0]
	var p cachedProduct
	body := map[string]any{"sku": "ATK-HAM", "name": "Hammered", "priceCents": 1000, "stock": 5}
	if code := a.call(t, http.MethodPost, "/v1/products", sh.admin, body, &p); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	const steps = 120
	const last = 1000 + steps
	var done atomic.Bool
	// answered is the last price a's API has answered a change to.
	var answered atomic.Int64
	var wg sync.WaitGroup
	priceOf := func(s *server, path string) int64 {
		f := s.fetch(t, http.MethodGet, path, "", nil, nil)
		if f.Status != http.StatusOK {
			t.Errorf("GET %s: %d", path, f.Status)
			return 0
		}
		if strings.HasSuffix(path, p.ID) {
			var got cachedProduct
			json.Unmarshal(f.Body, &got)
			return got.PriceCents
		}
		var page struct{ Items []cachedProduct }
		json.Unmarshal(f.Body, &page)
		for _, it := range page.Items {
			if it.ID == p.ID {
				return it.PriceCents
			}
		}
		t.Errorf("GET %s: the product is missing", path)
		return 0
	}
	var reads atomic.Int64
	for i := range 8 {
		s := servers[i%2]
		path := "/v1/products/" + p.ID
		if i%4 >= 2 {
			path = "/v1/products?limit=5"
		}
		wg.Go(func() {
			for {
				finished := done.Load()
				floor := answered.Load()
				got := priceOf(s, path)
				reads.Add(1)
				if s == a && got < floor {
					t.Errorf("reader %d (%s) on a: price %d, though a had answered its change to %d before the read", i, path, got, floor)
					return
				}
				if finished {
					// The last write may still be on its way to this instance.
					for deadline := time.Now().Add(10 * time.Second); got != last && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
						got = priceOf(s, path)
					}
					if got != last {
						t.Errorf("reader %d (%s): ends on %d, want %d", i, path, got, last)
					}
					return
				}
			}
		})
	}
	for v := 1001; v <= last; v++ {
		if v%2 == 0 {
			if code := a.call(t, http.MethodPatch, "/v1/products/"+p.ID, sh.admin, map[string]any{"priceCents": v}, nil); code != http.StatusOK {
				t.Fatalf("patch: %d", code)
			}
			answered.Store(int64(v))
		} else if _, err := sh.db.Exec(`UPDATE products SET price_cents = $2 WHERE id = $1`, p.ID, v); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	if n := reads.Load(); n < steps {
		t.Errorf("only %d reads raced %d writes", n, steps)
	}
}

// TestAttackETagsAgreeWithAndWithoutTheCache: instance a keeps reads, b
// has its cache off, on one database: a kept answer and a fresh one carry
// the same body and ETag, each instance answers the other's ETag with 304
// (also weakened by a proxy, or in a list), an admin's ETag differs and
// is no 304 for anyone else, and the 304 carries no body.
func TestAttackETagsAgreeWithAndWithoutTheCache(t *testing.T) {
	t.Parallel()
	fake := stripefake.New(t)
	env := shopEnv(t, fake.URL, "whsec_etags", map[string]string{"IMAGE_URL_SECRET": "one secret for every instance, 32+ bytes"})
	a := start(t, env)
	off := map[string]string{"CATALOG_CACHE_MB": "0"}
	for k, v := range env {
		off[k] = v
	}
	b := start(t, off)
	admin := a.token(t, "boss@example.com", "bootstrap-password")
	var p cachedProduct
	body := map[string]any{"sku": "ATK-ETAG", "name": "Tagged", "priceCents": 1000, "costPriceCents": 300, "stock": 5}
	if code := a.call(t, http.MethodPost, "/v1/products", admin, body, &p); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	a.uploadImage(t, admin, p.ID)
	// The thumbnail job changes the answer once: after it, nothing does.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if f := b.fetch(t, http.MethodGet, "/v1/products/"+p.ID, "", nil, nil); bytes.Contains(f.Body, []byte(`"thumbnailUrl":"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no thumbnail after 30s")
		}
	}
	for _, path := range []string{"/v1/products/" + p.ID, "/v1/products?limit=3"} {
		a.cachedRead(t, path)
		kept := a.fetch(t, http.MethodGet, path, "", nil, nil)
		fresh := b.fetch(t, http.MethodGet, path, "", nil, nil)
		etag := kept.Header.Get("ETag")
		if etag == "" || etag != fresh.Header.Get("ETag") || !bytes.Equal(kept.Body, fresh.Body) {
			t.Fatalf("GET %s: kept %s %s, fresh %s %s", path, etag, kept.Body, fresh.Header.Get("ETag"), fresh.Body)
		}
		for _, s := range []*server{a, b} {
			for _, inm := range []string{etag, "W/" + etag, `"nope", ` + etag} {
				f := s.fetch(t, http.MethodGet, path, "", map[string]string{"If-None-Match": inm}, nil)
				if f.Status != http.StatusNotModified || len(f.Body) != 0 || f.Header.Get("ETag") != etag {
					t.Errorf("GET %s If-None-Match %s: %d %q ETag %s", path, inm, f.Status, f.Body, f.Header.Get("ETag"))
				}
			}
			adm := s.fetch(t, http.MethodGet, path, admin, nil, nil)
			if adm.Header.Get("ETag") == etag {
				t.Errorf("GET %s: the admin's answer has the public ETag", path)
			}
			if f := s.fetch(t, http.MethodGet, path, "", map[string]string{"If-None-Match": adm.Header.Get("ETag")}, nil); f.Status != http.StatusOK || !bytes.Equal(f.Body, kept.Body) {
				t.Errorf("GET %s with the admin's ETag: %d", path, f.Status)
			}
		}
	}
}

// TestAttackSearchesCountWhenRepeated: the same search, over and over on
// an instance that keeps reads, still counts against the quota; a
// search spelled with an encoded parameter name counts too, and plain
// pages are still answered.
func TestAttackSearchesCountWhenRepeated(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 1, map[string]string{"QUOTA_SEARCHES_PER_HOUR": "3"})
	s := servers[0]
	if code := s.call(t, http.MethodPost, "/v1/products", sh.admin, map[string]any{"sku": "ATK-Q", "name": "Findable", "priceCents": 1000, "stock": 5}, nil); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	var codes []int
	for _, path := range []string{"/v1/products?q=Findable", "/v1/products?q=Findable", "/v1/products?%71=Findable", "/v1/products?q=Findable", "/v1/products?%71=Findable"} {
		codes = append(codes, s.fetch(t, http.MethodGet, path, "", nil, nil).Status)
	}
	want := []int{200, 200, 200, 429, 429}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("five searches with a quota of 3: %v, want %v", codes, want)
		}
	}
	s.cachedRead(t, "/v1/products?limit="+strconv.Itoa(7))
}

// TestAttackTruncateReachesTheCache: another writer empties
// product_images with TRUNCATE (an operator clearing pictures), which no
// row trigger sees. Every instance must stop showing the images once
// notified, not when its entries happen to expire (minutes later).
func TestAttackTruncateReachesTheCache(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 2, nil)
	a := servers[0]
	var p fullProduct
	body := map[string]any{"sku": "ATK-TRUNC", "name": "Pictured", "priceCents": 1000, "stock": 5}
	if code := a.call(t, http.MethodPost, "/v1/products", sh.admin, body, &p); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	a.uploadImage(t, sh.admin, p.ID)
	// The thumbnail job changes the image too: its change first.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var thumbs int
		if err := sh.db.Get(&thumbs, `SELECT count(*) FROM product_images WHERE thumbnail_key IS NOT NULL`); err != nil {
			t.Fatal(err)
		}
		if thumbs == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no thumbnail after 30s")
		}
	}
	imagesOf := func(s *server) int {
		var got fullProduct
		if f := s.fetch(t, http.MethodGet, "/v1/products/"+p.ID, "", nil, nil); f.Status != http.StatusOK || json.Unmarshal(f.Body, &got) != nil {
			t.Fatalf("GET product: %d %s", f.Status, f.Body)
		}
		return len(got.Images)
	}
	for _, s := range servers {
		s.cachedRead(t, "/v1/products/"+p.ID)
		if n := imagesOf(s); n != 1 {
			t.Fatalf("%d images before, want 1", n)
		}
	}
	if _, err := sh.db.Exec(`TRUNCATE product_images`); err != nil {
		t.Fatal(err)
	}
	for i, s := range servers {
		for deadline := time.Now().Add(10 * time.Second); imagesOf(s) != 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("instance %d still shows the truncated images after 10s", i)
			}
		}
	}
}
