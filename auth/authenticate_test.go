package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// clock is a settable clock, safe for concurrent use. It stands still
// unless a test advances it, unlike shoptest.Clock, which runs with real
// time: the account cache's TTL is checked to the millisecond.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// countingAccounts is the real store, counting the lookups that reach it.
type countingAccounts struct {
	*store.Store
	lookups atomic.Int64
}

func (c *countingAccounts) UserRole(ctx context.Context, id string) (string, error) {
	c.lookups.Add(1)
	return c.Store.UserRole(ctx, id)
}

// authBundle is an Authenticator on a fresh database, with what tests need
// to reach behind it.
type authBundle struct {
	auth     *Authenticator
	tokens   *Tokens
	store    *store.Store
	accounts *countingAccounts
	clock    *clock
}

func setupAuth(t *testing.T, cacheSize int) *authBundle {
	t.Helper()
	st := store.New(pgtest.NewDB(t))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	tokens, err := NewTokens(TokenConfig{Key: key, Issuer: "shop", Audience: "shop-api", TTL: time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	accounts := &countingAccounts{Store: st}
	a := NewAuthenticator(AuthenticatorConfig{Tokens: tokens, Accounts: accounts, CacheSize: cacheSize})
	return &authBundle{auth: a, tokens: tokens, store: st, accounts: accounts, clock: clk}
}

// user creates an account with the role and returns its id.
func (b *authBundle) user(t *testing.T, role string) string {
	t.Helper()
	return shoptest.User(context.Background(), t, b.store, &shoptest.UserOpts{Role: role}).ID
}

// token issues a token for the user id with the role.
func (b *authBundle) token(t *testing.T, userID, role string) string {
	t.Helper()
	tok, err := b.tokens.Issue(userID, role)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// authenticate runs the AuthenticationFunc as the validator does for an
// operation that needs scopes, and returns the HTTP status it decided (200
// when it let the request through).
func (b *authBundle) authenticate(t *testing.T, token string, scopes ...string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/v1/cart", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	err := b.auth.Authenticate(context.Background(), &openapi3filter.AuthenticationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req},
		SecuritySchemeName:     "bearerAuth",
		SecurityScheme:         &openapi3.SecurityScheme{Type: "http", Scheme: "bearer"},
		Scopes:                 scopes,
	})
	if err == nil {
		return http.StatusOK
	}
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		t.Errorf("Authenticate returned %T %v; the validator passes on only *echo.HTTPError", err, err)
		return -1
	}
	return he.Code
}

func TestAuthenticateChecksTheAccount(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, 0)
	customer := b.user(t, RoleCustomer)
	admin := b.user(t, RoleAdmin)
	nobody := uuid.NewString()

	cases := []struct {
		name   string
		token  string
		scopes []string
		want   int
	}{
		{"customer", b.token(t, customer, RoleCustomer), nil, http.StatusOK},
		{"admin on an admin route", b.token(t, admin, RoleAdmin), []string{RoleAdmin}, http.StatusOK},
		{"customer on an admin route", b.token(t, customer, RoleCustomer), []string{RoleAdmin}, http.StatusForbidden},
		{"no token", "", nil, http.StatusUnauthorized},
		{"customer that does not exist", b.token(t, nobody, RoleCustomer), nil, http.StatusUnauthorized},
		{"admin that does not exist", b.token(t, nobody, RoleAdmin), []string{RoleAdmin}, http.StatusUnauthorized},
		{"subject that is no user id", b.token(t, "not-a-uuid", RoleAdmin), []string{RoleAdmin}, http.StatusUnauthorized},
		{"admin role on a customer account", b.token(t, customer, RoleAdmin), []string{RoleAdmin}, http.StatusUnauthorized},
		{"customer role on an admin account", b.token(t, admin, RoleCustomer), nil, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := b.authenticate(t, tc.token, tc.scopes...); got != tc.want {
				t.Errorf("status = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestAccountChangesTakeEffectWithinTheTTL: a demoted admin, a promoted
// customer and a deleted user are refused once the cached entry is
// DefaultAccountCacheTTL old, and not asked about before (the cache works).
func TestAccountChangesTakeEffectWithinTheTTL(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, 0)
	ctx := context.Background()
	admin, customer, deleted := b.user(t, RoleAdmin), b.user(t, RoleCustomer), b.user(t, RoleCustomer)
	adminToken, customerToken, deletedToken := b.token(t, admin, RoleAdmin), b.token(t, customer, RoleCustomer), b.token(t, deleted, RoleCustomer)
	for _, tok := range []string{adminToken, customerToken, deletedToken} {
		if got := b.authenticate(t, tok); got != http.StatusOK {
			t.Fatalf("before the change: status %d", got)
		}
	}
	lookups := b.accounts.lookups.Load()

	db := b.store.DB()
	if _, err := db.ExecContext(ctx, `UPDATE users SET role = 'customer' WHERE id = $1`, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE users SET role = 'admin' WHERE id = $1`, customer); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM users WHERE id = $1`, deleted); err != nil {
		t.Fatal(err)
	}

	// Within the TTL the cache answers, without the database.
	b.clock.Advance(DefaultAccountCacheTTL - time.Millisecond)
	if got := b.authenticate(t, adminToken, RoleAdmin); got != http.StatusOK {
		t.Errorf("within the TTL: status %d, want the cached answer 200", got)
	}
	if n := b.accounts.lookups.Load(); n != lookups {
		t.Errorf("%d lookups within the TTL, want none", n-lookups)
	}

	b.clock.Advance(time.Millisecond)
	for name, tok := range map[string]string{"demoted admin": adminToken, "promoted customer": customerToken, "deleted user": deletedToken} {
		if got := b.authenticate(t, tok); got != http.StatusUnauthorized {
			t.Errorf("%s after the TTL: status %d, want 401", name, got)
		}
	}
	// The demoted admin's new role is what counts now: a fresh customer
	// token works, and the old admin token stays refused on admin routes.
	if got := b.authenticate(t, b.token(t, admin, RoleCustomer)); got != http.StatusOK {
		t.Errorf("demoted admin's new customer token: status %d, want 200", got)
	}
	if got := b.authenticate(t, adminToken, RoleAdmin); got != http.StatusUnauthorized {
		t.Errorf("demoted admin's old token on an admin route: status %d, want 401", got)
	}
}

// TestAccountCacheIsBounded: tokens for many distinct users that do not
// exist are each looked up once, and the cache never holds more than its
// size; a user looked up again within the TTL costs nothing.
func TestAccountCacheIsBounded(t *testing.T) {
	t.Parallel()
	const size = 64
	b := setupAuth(t, size)
	nobody := uuid.NewString()
	tok := b.token(t, nobody, RoleCustomer)
	for range 3 {
		if got := b.authenticate(t, tok); got != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", got)
		}
	}
	if n := b.accounts.lookups.Load(); n != 1 {
		t.Errorf("a missing user was looked up %d times, want once (negative caching)", n)
	}

	const flood = 10 * size
	const workers = 8
	shoptest.Concurrently(t, workers, 60*time.Second, func(int) {
		for range flood / workers {
			tok, err := b.tokens.Issue(uuid.NewString(), RoleCustomer)
			if err != nil {
				t.Error(err)
				return
			}
			if got := b.authenticate(t, tok); got != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", got)
				return
			}
			if n := b.auth.cache.len(); n > size {
				t.Errorf("cache holds %d entries, more than its size %d", n, size)
				return
			}
		}
	})
	if n := b.accounts.lookups.Load(); n != flood+1 {
		t.Errorf("%d lookups for %d distinct users, want one each", n, flood+1)
	}
}

// TestAuthenticateWhenTheDatabaseFails: a lookup that fails is a server
// error, never a 401 that would log a good user out, nor a pass.
func TestAuthenticateWhenTheDatabaseFails(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, 0)
	id := b.user(t, RoleCustomer)
	b.store.DB().Close()
	if got := b.authenticate(t, b.token(t, id, RoleCustomer)); got != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", got)
	}
}
