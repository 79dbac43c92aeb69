package handlers_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/lib/pq"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/handlers"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/ratelimit"
)

func TestAdminRoutesNeedTheAdminRole(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	customer, _ := a.customer(t)

	cases := []struct {
		name   string
		method string
		// path builds the path for a product made for this case.
		path func(productID string) string
		body func() any
		ok   int
	}{
		{"create product", http.MethodPost, func(string) string { return "/v1/products" },
			func() any { return productBody(nil) }, http.StatusCreated},
		{"update product", http.MethodPatch, func(id string) string { return "/v1/products/" + id },
			func() any { return map[string]any{"priceCents": 2500} }, http.StatusOK},
		{"archive product", http.MethodDelete, func(id string) string { return "/v1/products/" + id },
			func() any { return nil }, http.StatusOK},
		{"adjust inventory", http.MethodPost, func(id string) string { return "/v1/products/" + id + "/inventory" },
			func() any { return map[string]any{"quantityChange": 5, "type": "restock"} }, http.StatusCreated},
		{"list inventory transactions", http.MethodGet, func(id string) string { return "/v1/products/" + id + "/inventory-transactions" },
			func() any { return nil }, http.StatusOK},
	}
	callers := []struct {
		name   string
		token  string
		status int // 0: the case's success status
	}{
		{"no token", "", http.StatusUnauthorized},
		{"garbage token", "not-a-jwt", http.StatusUnauthorized},
		{"customer", customer, http.StatusForbidden},
		{"admin", admin, 0},
	}
	for _, tc := range cases {
		for _, caller := range callers {
			t.Run(tc.name+"/"+caller.name, func(t *testing.T) {
				t.Parallel()
				p := a.product(t, admin, map[string]any{"priceCents": 1000})
				body := tc.body()
				r := a.do(t, tc.method, tc.path(p.Id), caller.token, body)
				if caller.status == 0 {
					r.want(t, tc.ok)
					return
				}
				expectProblem(t, r, caller.status)
				// A refused call changes nothing.
				var after gen.Product
				a.do(t, http.MethodGet, "/v1/products/"+p.Id, admin, nil).want(t, http.StatusOK).decode(t, &after)
				if after.PriceCents != 1000 || after.Stock != p.Stock || !after.IsActive {
					t.Errorf("refused %s changed the product: %+v", tc.name, after)
				}
				if b, ok := body.(map[string]any); ok && b["sku"] != nil {
					var n int
					if err := a.Store.DB().Get(&n, `SELECT count(*) FROM products WHERE sku = $1`, b["sku"]); err != nil {
						t.Fatal(err)
					}
					if n != 0 {
						t.Errorf("refused create stored the product")
					}
				}
			})
		}
	}
}

func TestMe(t *testing.T) {
	t.Parallel()
	a := setup(t)
	email := uniqueEmail()
	c := a.register(t, email)
	token := a.login(t, email, testPassword)
	a.customer(t) // someone else, who must not be returned

	var me gen.Customer
	a.do(t, http.MethodGet, "/v1/me", token, nil).want(t, http.StatusOK).decode(t, &me)
	if me.Id != c.Id || string(me.Email) != email || me.Role != gen.CustomerRoleCustomer || me.FirstName != "Ada" {
		t.Errorf("GET /v1/me = %+v, want customer %s (%s)", me, c.Id, email)
	}
	expectProblem(t, a.do(t, http.MethodGet, "/v1/me", "", nil), http.StatusUnauthorized)
	expectProblem(t, a.do(t, http.MethodGet, "/v1/me", "garbage", nil), http.StatusUnauthorized)

	req := a.request(t, http.MethodGet, "/v1/me", "", nil)
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(email+":"+testPassword)))
	expectProblem(t, a.send(t, req), http.StatusUnauthorized)

	var admin gen.Customer
	a.do(t, http.MethodGet, "/v1/me", a.admin(t), nil).want(t, http.StatusOK).decode(t, &admin)
	if admin.Role != gen.CustomerRoleAdmin {
		t.Errorf("admin's /v1/me role = %q", admin.Role)
	}

	// A valid token for an account that no longer exists.
	if _, err := a.Store.DB().Exec(`DELETE FROM users WHERE id = $1`, c.Id); err != nil {
		t.Fatal(err)
	}
	expectProblem(t, a.do(t, http.MethodGet, "/v1/me", token, nil), http.StatusUnauthorized)
}

func TestRegister(t *testing.T) {
	t.Parallel()
	a := setup(t)

	t.Run("created", func(t *testing.T) {
		t.Parallel()
		local := "New.User-" + randomHex(4)
		r := a.do(t, http.MethodPost, "/v1/auth/register", "", map[string]any{
			"email": local + "@Example.COM", "password": "0123456789", "firstName": "Ada", "lastName": "Lovelace",
			"phone": "+447700900123",
		}).want(t, http.StatusCreated)
		var c gen.Customer
		r.decode(t, &c)
		want := strings.ToLower(local) + "@example.com"
		if c.Id == "" || string(c.Email) != want || c.FirstName != "Ada" || c.LastName != "Lovelace" ||
			c.Role != gen.CustomerRoleCustomer || c.Phone.MustGet() != "+447700900123" || c.CreatedAt.IsZero() {
			t.Errorf("registered customer = %+v, want email %s", c, want)
		}
		if strings.Contains(strings.ToLower(string(r.body)), "password") || strings.Contains(string(r.body), "argon2") {
			t.Errorf("response leaks the password or its hash: %s", r.body)
		}
		u, err := a.Store.UserByEmail(context.Background(), want)
		if err != nil || u.ID != c.Id || u.Role != "customer" {
			t.Errorf("stored user = %+v, %v", u, err)
		}
	})

	t.Run("duplicate email", func(t *testing.T) {
		t.Parallel()
		email := uniqueEmail()
		a.register(t, email)
		for _, dup := range []string{email, strings.ToUpper(email)} {
			r := a.do(t, http.MethodPost, "/v1/auth/register", "", map[string]any{
				"email": dup, "password": testPassword, "firstName": "Eve", "lastName": "Copy",
			})
			expectProblem(t, r, http.StatusConflict)
		}
		var n int
		if err := a.Store.DB().Get(&n, `SELECT count(*) FROM users WHERE email = $1`, email); err != nil || n != 1 {
			t.Errorf("users with %s = %d (%v), want 1", email, n, err)
		}
	})

	invalid := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"short password", map[string]any{"password": "123456789"}, "password"},
		{"invalid email", map[string]any{"email": "not-an-email"}, "email"},
		{"unknown field", map[string]any{"isAdmin": true}, ""},
		{"role", map[string]any{"role": "admin"}, ""},
		{"missing last name", map[string]any{"lastName": nil}, ""},
		{"blank first name", map[string]any{"firstName": "   "}, "firstName"},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := map[string]any{"email": uniqueEmail(), "password": testPassword, "firstName": "Ada", "lastName": "Lovelace"}
			for k, v := range tc.body {
				if v == nil {
					delete(body, k)
				} else {
					body[k] = v
				}
			}
			p := expectProblem(t, a.do(t, http.MethodPost, "/v1/auth/register", "", body), http.StatusBadRequest)
			if len(p.Errors) == 0 {
				t.Errorf("no errors in %+v", p)
			}
			if tc.field != "" && !p.hasFieldError(tc.field) {
				t.Errorf("errors %+v do not name %q", p.Errors, tc.field)
			}
			if email, ok := body["email"].(string); ok {
				if _, err := a.Store.UserByEmail(context.Background(), email); shopd.ErrorCode(err) != shopd.ENotFound {
					t.Errorf("a rejected registration stored a user (err %v)", err)
				}
			}
		})
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	a := setup(t)
	email := uniqueEmail()
	c := a.register(t, email)

	t.Run("right password", func(t *testing.T) {
		t.Parallel()
		var tok gen.TokenResponse
		// Emails are compared case-insensitively.
		a.do(t, http.MethodPost, "/v1/auth/login", "", map[string]any{"email": strings.ToUpper(email), "password": testPassword}).
			want(t, http.StatusOK).decode(t, &tok)
		if tok.TokenType != "Bearer" || tok.ExpiresIn != int32(a.Tokens.TTL().Seconds()) || tok.AccessToken == "" {
			t.Fatalf("token response = %+v", tok)
		}
		var me gen.Customer
		a.do(t, http.MethodGet, "/v1/me", tok.AccessToken, nil).want(t, http.StatusOK).decode(t, &me)
		if me.Id != c.Id {
			t.Errorf("token is for %s, want %s", me.Id, c.Id)
		}
	})

	t.Run("wrong password and unknown email look the same", func(t *testing.T) {
		t.Parallel()
		wrong := a.do(t, http.MethodPost, "/v1/auth/login", "", map[string]any{"email": email, "password": "wrong-password"})
		unknown := a.do(t, http.MethodPost, "/v1/auth/login", "", map[string]any{"email": uniqueEmail(), "password": "wrong-password"})
		expectProblem(t, wrong, http.StatusUnauthorized)
		expectProblem(t, unknown, http.StatusUnauthorized)
		var w, u map[string]any
		wrong.decode(t, &w)
		unknown.decode(t, &u)
		delete(w, "requestId")
		delete(u, "requestId")
		wj, _ := json.Marshal(w)
		uj, _ := json.Marshal(u)
		if string(wj) != string(uj) {
			t.Errorf("wrong password answers %s, unknown email %s", wj, uj)
		}
	})
}

func TestSearchQuota(t *testing.T) {
	t.Parallel()
	a := setup(t, func(c *handlers.Config) { c.SearchesPerHour = 2 })
	for range 2 {
		a.do(t, http.MethodGet, "/v1/products?q=tee", "", nil).want(t, http.StatusOK)
	}
	r := a.do(t, http.MethodGet, "/v1/products?q=other", "", nil)
	expectProblem(t, r, http.StatusTooManyRequests)
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After = %q, want whole seconds >= 1", r.header.Get("Retry-After"))
	}
	// Browsing without q is not a search.
	a.do(t, http.MethodGet, "/v1/products", "", nil).want(t, http.StatusOK)
	a.do(t, http.MethodGet, "/v1/products?category=mugs", "", nil).want(t, http.StatusOK)
}

func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	a := setup(t, func(c *handlers.Config) { c.LoginFailuresPerMinute = 3 })
	email, other := uniqueEmail(), uniqueEmail()
	a.register(t, email)
	a.register(t, other)
	login := func(email, password string) *resp {
		return a.do(t, http.MethodPost, "/v1/auth/login", "", map[string]any{"email": email, "password": password})
	}

	for i := range 3 {
		expectProblem(t, login(email, "wrong-password-"+strconv.Itoa(i)), http.StatusUnauthorized)
	}
	r := login(email, testPassword) // the right password, too late
	expectProblem(t, r, http.StatusTooManyRequests)
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After = %q, want whole seconds >= 1", r.header.Get("Retry-After"))
	}
	expectProblem(t, login(strings.ToUpper(email), testPassword), http.StatusTooManyRequests)

	// Another account from the same address is not affected.
	expectProblem(t, login(other, "wrong-password"), http.StatusUnauthorized)
	login(other, testPassword).want(t, http.StatusOK)
}

// TestLoginRateLimitUnderConcurrency: a burst of concurrent wrong guesses
// gets exactly the allowed number of tries; the rest are 429.
func TestLoginRateLimitUnderConcurrency(t *testing.T) {
	t.Parallel()
	a := setup(t, func(c *handlers.Config) { c.LoginFailuresPerMinute = 3 })
	email := uniqueEmail()
	a.register(t, email)
	const n = 20
	statuses := make([]int, n)
	shoptest.Concurrently(t, n, 60*time.Second, func(i int) {
		r, err := a.roundTrip(t, a.request(t, http.MethodPost, "/v1/auth/login", "",
			map[string]any{"email": email, "password": "wrong-password-" + strconv.Itoa(i)}))
		if err != nil {
			t.Errorf("login: %v", err)
			return
		}
		statuses[i] = r.status
	})
	count := map[int]int{}
	for _, st := range statuses {
		count[st]++
	}
	if count[http.StatusUnauthorized] != 3 || count[http.StatusTooManyRequests] != n-3 {
		t.Errorf("statuses %v, want 3 x 401 and %d x 429", count, n-3)
	}
}

// jwtAttacker forges tokens for a server.
type jwtAttacker struct {
	t   *testing.T
	key *ecdsa.PrivateKey
	kid string
}

// sign signs the token built by build with key, under the server's kid.
func (j jwtAttacker) sign(key *ecdsa.PrivateKey, build func(*jwt.Builder) *jwt.Builder) string {
	j.t.Helper()
	tok, err := build(jwt.NewBuilder()).Build()
	if err != nil {
		j.t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, j.kid); err != nil {
		j.t.Fatal(err)
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		j.t.Fatal(err)
	}
	return string(b)
}

// serverKID returns the kid the server publishes.
func serverKID(t *testing.T, a *api) string {
	t.Helper()
	set, err := jwk.Parse(a.do(t, http.MethodGet, "/.well-known/jwks.json", "", nil).want(t, http.StatusOK).body)
	if err != nil {
		t.Fatal(err)
	}
	k, ok := set.Key(0)
	if !ok || k.KeyID() == "" {
		t.Fatal("the JWKS has no key with a kid")
	}
	return k.KeyID()
}

func TestForgedTokensAreRejected(t *testing.T) {
	t.Parallel()
	a := setup(t)
	email := uniqueEmail()
	c := a.register(t, email)
	issued := a.login(t, email, testPassword)
	j := jwtAttacker{t: t, key: a.SigningKey, kid: serverKID(t, a)}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	valid := func(b *jwt.Builder) *jwt.Builder {
		return b.Subject(c.Id).Issuer("shop").Audience([]string{"shop-api"}).IssuedAt(now).
			Expiration(now.Add(time.Hour)).Claim("role", "customer")
	}
	with := func(change func(*jwt.Builder) *jwt.Builder) func(*jwt.Builder) *jwt.Builder {
		return func(b *jwt.Builder) *jwt.Builder { return change(valid(b)) }
	}

	parts := strings.Split(issued, ".")
	claims := map[string]any{}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["role"] = "admin"
	escalated, _ := json.Marshal(claims)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(escalated) + "." + parts[2]
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"` + j.kid + `"}`))

	cases := []struct {
		name   string
		token  string
		status int
	}{
		// The controls: the forging itself works, so each rejection is about its one flaw.
		{"issued by login", issued, http.StatusOK},
		{"forged with the server's key", j.sign(a.SigningKey, valid), http.StatusOK},

		{"alg none", noneHeader + "." + parts[1] + ".", http.StatusUnauthorized},
		{"tampered claims", tampered, http.StatusUnauthorized},
		{"expired", j.sign(a.SigningKey, with(func(b *jwt.Builder) *jwt.Builder {
			return b.IssuedAt(now.Add(-2 * time.Hour)).Expiration(now.Add(-5 * time.Minute))
		})), http.StatusUnauthorized},
		{"no exp", j.sign(a.SigningKey, func(b *jwt.Builder) *jwt.Builder {
			return b.Subject(c.Id).Issuer("shop").Audience([]string{"shop-api"}).IssuedAt(now).Claim("role", "customer")
		}), http.StatusUnauthorized},
		{"wrong iss", j.sign(a.SigningKey, with(func(b *jwt.Builder) *jwt.Builder { return b.Issuer("evil") })), http.StatusUnauthorized},
		{"wrong aud", j.sign(a.SigningKey, with(func(b *jwt.Builder) *jwt.Builder { return b.Audience([]string{"other-api"}) })), http.StatusUnauthorized},
		{"future nbf", j.sign(a.SigningKey, with(func(b *jwt.Builder) *jwt.Builder { return b.NotBefore(now.Add(time.Hour)) })), http.StatusUnauthorized},
		{"another key, same kid", j.sign(other, valid), http.StatusUnauthorized},
		{"unknown role", j.sign(a.SigningKey, with(func(b *jwt.Builder) *jwt.Builder { return b.Claim("role", "superuser") })), http.StatusUnauthorized},
		{"no role", j.sign(a.SigningKey, func(b *jwt.Builder) *jwt.Builder {
			return b.Subject(c.Id).Issuer("shop").Audience([]string{"shop-api"}).IssuedAt(now).Expiration(now.Add(time.Hour))
		}), http.StatusUnauthorized},
		{"no signature", parts[0] + "." + parts[1] + ".", http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := a.do(t, http.MethodGet, "/v1/me", tc.token, nil)
			if tc.status == http.StatusOK {
				var me gen.Customer
				r.want(t, http.StatusOK).decode(t, &me)
				if me.Id != c.Id {
					t.Errorf("me = %s, want %s", me.Id, c.Id)
				}
				return
			}
			expectProblem(t, r, tc.status)
		})
	}

	// A forged admin token on an admin route is no better.
	forgedAdmin := j.sign(other, with(func(b *jwt.Builder) *jwt.Builder { return b.Claim("role", "admin") }))
	expectProblem(t, a.do(t, http.MethodPost, "/v1/products", forgedAdmin, productBody(nil)), http.StatusUnauthorized)
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	a := setup(t)
	r := a.do(t, http.MethodGet, "/.well-known/jwks.json", "", nil).want(t, http.StatusOK)
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	r.decode(t, &raw)
	if len(raw.Keys) != 1 {
		t.Fatalf("keys = %d, want 1: %s", len(raw.Keys), r.body)
	}
	k := raw.Keys[0]
	for _, f := range []string{"kid", "kty", "crv", "x", "y", "alg"} {
		if s, _ := k[f].(string); s == "" {
			t.Errorf("key lacks %q: %s", f, r.body)
		}
	}
	if k["kty"] != "EC" || k["crv"] != "P-256" || k["alg"] != "ES256" {
		t.Errorf("key is not an ES256 P-256 key: %s", r.body)
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
		if _, ok := k[private]; ok {
			t.Errorf("JWKS publishes the private parameter %q", private)
		}
	}

	set, err := jwk.Parse(r.body)
	if err != nil {
		t.Fatal(err)
	}
	token, id := a.customer(t)
	tok, err := jwt.Parse([]byte(token), jwt.WithKeySet(set), jwt.WithIssuer("shop"), jwt.WithAudience("shop-api"))
	if err != nil {
		t.Fatalf("a login token does not verify against the published JWKS: %v", err)
	}
	if tok.Subject() != id {
		t.Errorf("sub = %q, want %q", tok.Subject(), id)
	}
	if role, _ := tok.PrivateClaims()["role"].(string); role != "customer" {
		t.Errorf("role = %q, want customer", role)
	}
	if _, ok := tok.Get(jwt.IssuedAtKey); !ok {
		t.Error("token has no iat")
	}
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		t.Fatal(err)
	}
	if h := msg.Signatures()[0].ProtectedHeaders(); h.KeyID() != k["kid"] || h.Algorithm() != jwa.ES256 {
		t.Errorf("token header kid=%q alg=%q, want %q ES256", h.KeyID(), h.Algorithm(), k["kid"])
	}
}

// TestTokensOfMissingAccountsAreRefused: validly signed tokens whose user
// does not exist (never did, or was deleted), or whose role is not the
// account's, are 401 on every protected route, admin routes included.
func TestTokensOfMissingAccountsAreRefused(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	p := a.product(t, admin, nil)
	j := jwtAttacker{t: t, key: a.SigningKey, kid: serverKID(t, a)}
	now := time.Now()
	forge := func(sub, role string) string {
		return j.sign(a.SigningKey, func(b *jwt.Builder) *jwt.Builder {
			return b.Subject(sub).Issuer("shop").Audience([]string{"shop-api"}).IssuedAt(now).
				Expiration(now.Add(time.Hour)).Claim("role", role)
		})
	}
	deletedToken, deletedID := a.customer(t)
	if _, err := a.Store.DB().Exec(`DELETE FROM users WHERE id = $1`, deletedID); err != nil {
		t.Fatal(err)
	}
	_, customerID := a.customer(t)
	nobody := uuid.NewString()

	tokens := []struct {
		name, token string
	}{
		{"customer that never existed", forge(nobody, "customer")},
		{"admin that never existed", forge(nobody, "admin")},
		{"deleted customer", deletedToken},
		{"admin role on a customer account", forge(customerID, "admin")},
	}
	checkout := func(token string) *http.Request {
		req := a.request(t, http.MethodPost, "/v1/checkout", token, map[string]any{"shippingAddress": map[string]any{
			"firstName": "Ada", "lastName": "Lovelace", "line1": "1 Main St", "city": "London", "postalCode": "N1 1AA", "country": "GB",
		}})
		req.Header.Set("Idempotency-Key", "key-"+randomHex(8))
		return req
	}
	routes := []struct {
		name    string
		request func(token string) *http.Request
	}{
		{"get cart", func(tok string) *http.Request { return a.request(t, http.MethodGet, "/v1/cart", tok, nil) }},
		{"add to cart", func(tok string) *http.Request {
			return a.request(t, http.MethodPost, "/v1/cart/items", tok, map[string]any{"productId": p.Id, "quantity": 1})
		}},
		{"checkout", checkout},
		{"list orders", func(tok string) *http.Request { return a.request(t, http.MethodGet, "/v1/orders", tok, nil) }},
		{"me", func(tok string) *http.Request { return a.request(t, http.MethodGet, "/v1/me", tok, nil) }},
		{"create product (admin)", func(tok string) *http.Request {
			return a.request(t, http.MethodPost, "/v1/products", tok, productBody(nil))
		}},
		{"inventory ledger (admin)", func(tok string) *http.Request {
			return a.request(t, http.MethodGet, "/v1/products/"+p.Id+"/inventory-transactions", tok, nil)
		}},
	}
	for _, tok := range tokens {
		for _, route := range routes {
			t.Run(tok.name+"/"+route.name, func(t *testing.T) {
				t.Parallel()
				expectProblem(t, a.send(t, route.request(tok.token)), http.StatusUnauthorized)
			})
		}
	}
	t.Run("nothing was created", func(t *testing.T) {
		t.Parallel()
		var orders, carts int
		if err := a.Store.DB().Get(&orders, `SELECT count(*) FROM orders`); err != nil {
			t.Fatal(err)
		}
		if err := a.Store.DB().Get(&carts, `SELECT count(*) FROM carts`); err != nil {
			t.Fatal(err)
		}
		if orders != 0 || carts != 0 {
			t.Errorf("%d orders and %d carts after refused requests", orders, carts)
		}
	})
}

// withClock gives the server Tokens on clk; the account cache follows the
// Tokens' clock.
func withClock(t *testing.T, clk *shoptest.Clock) func(*handlers.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens(auth.TokenConfig{Key: key, Issuer: "shop", Audience: "shop-api", TTL: time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return func(c *handlers.Config) { c.Tokens = tokens }
}

// TestRoleChangesTakeEffectWithinTheCacheTTL: an admin demoted to customer
// keeps admin access for at most the account cache's TTL, on the clock the
// server's tokens run on; a deleted account likewise.
func TestRoleChangesTakeEffectWithinTheCacheTTL(t *testing.T) {
	t.Parallel()
	clk := &shoptest.Clock{}
	a := setup(t, withClock(t, clk))
	admin := a.admin(t)
	customerToken, customerID := a.customer(t)
	a.product(t, admin, nil)
	a.do(t, http.MethodGet, "/v1/cart", customerToken, nil).want(t, http.StatusOK)

	var adminID string
	if err := a.Store.DB().Get(&adminID, `SELECT id FROM users WHERE role = 'admin'`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Store.DB().Exec(`UPDATE users SET role = 'customer' WHERE id = $1`, adminID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Store.DB().Exec(`DELETE FROM users WHERE id = $1`, customerID); err != nil {
		t.Fatal(err)
	}

	clk.Advance(auth.DefaultAccountCacheTTL)
	expectProblem(t, a.do(t, http.MethodPost, "/v1/products", admin, productBody(nil)), http.StatusUnauthorized)
	expectProblem(t, a.do(t, http.MethodGet, "/v1/me", admin, nil), http.StatusUnauthorized)
	expectProblem(t, a.do(t, http.MethodGet, "/v1/cart", customerToken, nil), http.StatusUnauthorized)
	if auth.DefaultAccountCacheTTL > 60*time.Second {
		t.Errorf("the cache TTL %v is longer than the 60 s the contract allows", auth.DefaultAccountCacheTTL)
	}
}

// TestTokenHeaderAndClaimTypes: through the whole stack, a correctly
// signed token with a crit header or a non-numeric exp, nbf or iat is 401.
func TestTokenHeaderAndClaimTypes(t *testing.T) {
	t.Parallel()
	a := setup(t)
	_, id := a.customer(t)
	kid := serverKID(t, a)
	now := time.Now()
	iat, exp := now.Unix(), now.Add(time.Hour).Unix()
	header := fmt.Sprintf(`{"alg":"ES256","kid":%q,"typ":"JWT"}`, kid)
	claims := func(dates string) string {
		return fmt.Sprintf(`{"sub":%q,"iss":"shop","aud":["shop-api"],"role":"customer",%s}`, id, dates)
	}
	numeric := fmt.Sprintf(`"iat":%d,"nbf":%d,"exp":%d`, iat, iat, exp)
	cases := []struct {
		name, header, claims string
		status               int
	}{
		{"control", header, claims(numeric), http.StatusOK},
		{"crit", fmt.Sprintf(`{"alg":"ES256","kid":%q,"crit":["urn:example:ext"],"urn:example:ext":1}`, kid), claims(numeric), http.StatusUnauthorized},
		{"exp a string", header, claims(fmt.Sprintf(`"iat":%d,"exp":"%d"`, iat, exp)), http.StatusUnauthorized},
		{"exp an RFC 3339 string", header, claims(fmt.Sprintf(`"iat":%d,"exp":%q`, iat, now.Add(time.Hour).UTC().Format(time.RFC3339))), http.StatusUnauthorized},
		{"nbf a string", header, claims(fmt.Sprintf(`"iat":%d,"nbf":"%d","exp":%d`, iat, iat, exp)), http.StatusUnauthorized},
		{"iat a string", header, claims(fmt.Sprintf(`"iat":"%d","exp":%d`, iat, exp)), http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := a.do(t, http.MethodGet, "/v1/me", shoptest.SignJWT(t, a.SigningKey, tc.header, tc.claims), nil)
			if tc.status == http.StatusOK {
				r.want(t, http.StatusOK)
				return
			}
			expectProblem(t, r, tc.status)
		})
	}
}

// fromIP makes the server believe X-Forwarded-For from loopback, so a test
// can send requests from several client addresses.
func fromIP(c *handlers.Config) {
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	c.TrustedProxies = []*net.IPNet{loopback}
}

// frozenLimits gives the server a rate limiter whose clock stands still, so
// that no allowance refills while a slow test runs (argon2id under the race
// detector).
func frozenLimits(c *handlers.Config) {
	now := time.Now()
	c.Limiter = ratelimit.NewMemory(func() time.Time { return now })
}

// loginFrom sends a login as the client at ip.
func (a *api) loginFrom(t *testing.T, ip, email, password string) (*resp, error) {
	req := a.request(t, http.MethodPost, "/v1/auth/login", "", map[string]any{"email": email, "password": password})
	req.Header.Set("X-Forwarded-For", ip)
	return a.roundTrip(t, req)
}

// sendCounting sends n requests from workers goroutines and counts the
// statuses; every 429 must carry a Retry-After of whole seconds >= 1.
func sendCounting(t *testing.T, n, workers int, send func(i int) (*resp, error)) map[int]int {
	t.Helper()
	var mu sync.Mutex
	counts := map[int]int{}
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r, err := send(i)
				if err != nil {
					t.Errorf("request %d: %v", i, err)
					continue
				}
				if r.status == http.StatusTooManyRequests {
					if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
						t.Errorf("429 with Retry-After %q, want whole seconds >= 1", r.header.Get("Retry-After"))
					}
				}
				mu.Lock()
				counts[r.status]++
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return counts
}

// TestLoginFailuresPerIP: 200 different emails guessed concurrently from
// one address get the per-IP allowance (the default, 60) and then 429,
// whatever the email; the right password from that address too. Another
// address is not affected.
func TestLoginFailuresPerIP(t *testing.T) {
	t.Parallel()
	const perIP = 60
	a := setup(t, fromIP, frozenLimits, func(c *handlers.Config) { c.LoginFailuresPerIPPerMinute = perIP })
	email := uniqueEmail()
	a.register(t, email)
	attacker, other := "203.0.113.7", "198.51.100.9"

	counts := sendCounting(t, 200, 16, func(i int) (*resp, error) {
		return a.loginFrom(t, attacker, fmt.Sprintf("victim-%d-%s", i, uniqueEmail()), "wrong-password")
	})
	if counts[http.StatusUnauthorized] != perIP || counts[http.StatusTooManyRequests] != 200-perIP {
		t.Errorf("statuses %v, want %d x 401 and %d x 429", counts, perIP, 200-perIP)
	}
	r, err := a.loginFrom(t, attacker, email, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	expectProblem(t, r, http.StatusTooManyRequests)
	r, err = a.loginFrom(t, other, email, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	r.want(t, http.StatusOK)
}

// TestSuccessfulLoginsDoNotCount: only failures count against the login
// limits; an attempt's slot comes back when the password is right.
func TestSuccessfulLoginsDoNotCount(t *testing.T) {
	t.Parallel()
	a := setup(t, frozenLimits, func(c *handlers.Config) { c.LoginFailuresPerMinute, c.LoginFailuresPerIPPerMinute = 2, 2 })
	email := uniqueEmail()
	a.register(t, email)
	for range 6 {
		a.login(t, email, testPassword)
	}
	for range 2 {
		expectProblem(t, a.do(t, http.MethodPost, "/v1/auth/login", "", map[string]any{"email": email, "password": "wrong-password"}),
			http.StatusUnauthorized)
	}
	expectProblem(t, a.do(t, http.MethodPost, "/v1/auth/login", "", map[string]any{"email": email, "password": testPassword}),
		http.StatusTooManyRequests)
}

// TestRegistrationsPerIP: concurrent registrations from one address get
// exactly the allowance, then 429; invalid requests do not count,
// duplicates do; another address is not affected.
func TestRegistrationsPerIP(t *testing.T) {
	t.Parallel()
	const perIP = 3
	a := setup(t, fromIP, frozenLimits, func(c *handlers.Config) { c.RegistrationsPerIPPerHour = perIP })
	register := func(ip, email, password string) (*resp, error) {
		req := a.request(t, http.MethodPost, "/v1/auth/register", "", map[string]any{
			"email": email, "password": password, "firstName": "Ada", "lastName": "Lovelace",
		})
		req.Header.Set("X-Forwarded-For", ip)
		return a.roundTrip(t, req)
	}
	mustRegister := func(ip, email, password string) *resp {
		t.Helper()
		r, err := register(ip, email, password)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	t.Run("concurrent", func(t *testing.T) {
		t.Parallel()
		ip := "203.0.113.20"
		for range 3 {
			expectProblem(t, mustRegister(ip, uniqueEmail(), "short"), http.StatusBadRequest)
		}
		emails := make([]string, 12)
		for i := range emails {
			emails[i] = uniqueEmail()
		}
		counts := sendCounting(t, len(emails), len(emails), func(i int) (*resp, error) {
			return register(ip, emails[i], testPassword)
		})
		if counts[http.StatusCreated] != perIP || counts[http.StatusTooManyRequests] != len(emails)-perIP {
			t.Errorf("statuses %v, want %d x 201 and %d x 429", counts, perIP, len(emails)-perIP)
		}
		var n int
		if err := a.Store.DB().Get(&n, `SELECT count(*) FROM users WHERE email = ANY($1)`, pq.Array(emails)); err != nil {
			t.Fatal(err)
		}
		if n != perIP {
			t.Errorf("%d accounts created, want %d", n, perIP)
		}
		mustRegister("203.0.113.21", uniqueEmail(), testPassword).want(t, http.StatusCreated)
	})

	t.Run("duplicates count", func(t *testing.T) {
		t.Parallel()
		ip, email := "203.0.113.30", uniqueEmail()
		mustRegister(ip, email, testPassword).want(t, http.StatusCreated)
		expectProblem(t, mustRegister(ip, email, testPassword), http.StatusConflict)
		expectProblem(t, mustRegister(ip, email, testPassword), http.StatusConflict)
		expectProblem(t, mustRegister(ip, uniqueEmail(), testPassword), http.StatusTooManyRequests)
	})
}

// TestLoginResponsesAreNotCached: a token response tells every cache not
// to keep it.
func TestLoginResponsesAreNotCached(t *testing.T) {
	t.Parallel()
	a := setup(t)
	email := uniqueEmail()
	a.register(t, email)
	r := a.do(t, http.MethodPost, "/v1/auth/login", "", map[string]any{"email": email, "password": testPassword}).want(t, http.StatusOK)
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if p := r.header.Get("Pragma"); p != "no-cache" {
		t.Errorf("Pragma = %q, want no-cache", p)
	}
}

// TestCredentialBodiesAreSmall: login and registration bodies over 16 KiB
// are refused with 413 before they are read (a login holds its body while
// it waits for a hashing slot), padding included; smaller ones are served.
func TestCredentialBodiesAreSmall(t *testing.T) {
	t.Parallel()
	a := setup(t)
	padded := func(fields map[string]any, size int) []byte {
		b, err := json.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		return append(append(b[:len(b)-1:len(b)-1], strings.Repeat(" ", size-len(b))...), '}')
	}
	login := map[string]any{"email": uniqueEmail(), "password": "wrong-password"}
	register := func() map[string]any {
		return map[string]any{"email": uniqueEmail(), "password": testPassword, "firstName": "Ada", "lastName": "Lovelace"}
	}

	expectProblem(t, a.do(t, http.MethodPost, "/v1/auth/login", "", padded(login, 16<<10)), http.StatusUnauthorized)
	a.do(t, http.MethodPost, "/v1/auth/register", "", padded(register(), 16<<10)).want(t, http.StatusCreated)

	expectProblem(t, a.do(t, http.MethodPost, "/v1/auth/login", "", padded(login, 16<<10+1)), http.StatusRequestEntityTooLarge)
	tooBig := register()
	expectProblem(t, a.do(t, http.MethodPost, "/v1/auth/register", "", padded(tooBig, 64<<10)), http.StatusRequestEntityTooLarge)
	if _, err := a.Store.UserByEmail(context.Background(), tooBig["email"].(string)); shopd.ErrorCode(err) != shopd.ENotFound {
		t.Errorf("a refused registration stored a user (err %v)", err)
	}

	req := a.request(t, http.MethodPost, "/v1/auth/login", "", nil)
	req.Header.Set("Content-Type", "application/json")
	declareBody(t, req, 1<<20)
	expectProblem(t, a.send(t, req), http.StatusRequestEntityTooLarge)
}
