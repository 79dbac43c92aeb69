package auth

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"
	echomw "github.com/oapi-codegen/echo-middleware"

	"github.com/shopd/shopd"
)

// echoClaimsKey is where Authenticate leaves the claims on the Echo context.
const echoClaimsKey = "shopd.claims"

// Accounts is what authentication needs from the user store: a signature
// proves who a token was issued to, not that the account still exists or
// still has the token's role.
type Accounts interface {
	// UserRole returns the user's current role; ENotFound when there is no
	// such user.
	UserRole(ctx context.Context, userID string) (string, error)
}

// Defaults of AuthenticatorConfig.
const (
	// DefaultAccountCacheTTL keeps a deleted or re-roled account's tokens
	// working for at most this long (the contract allows 60 s).
	DefaultAccountCacheTTL = 30 * time.Second
	// DefaultAccountCacheSize bounds the accounts one instance remembers.
	DefaultAccountCacheSize = 10_000
)

// AuthenticatorConfig configures an Authenticator.
type AuthenticatorConfig struct {
	Tokens   *Tokens
	Accounts Accounts
	// CacheTTL is how long an account's role, or its absence, is believed
	// without asking Accounts again; 0 means DefaultAccountCacheTTL.
	CacheTTL time.Duration
	// CacheSize bounds the accounts remembered; 0 means
	// DefaultAccountCacheSize.
	CacheSize int
	// Now is the cache's clock; nil means the Tokens' clock.
	Now func() time.Time
}

// Authenticator authenticates requests for the OpenAPI validator: the
// token must verify, its user must exist and have the token's role.
// Accounts are looked up through a small per-instance cache, so a busy
// instance does not ask the database on every request, and a change to an
// account takes effect within the cache's TTL on every instance.
type Authenticator struct {
	tokens   *Tokens
	accounts Accounts
	cache    *accountCache
}

// NewAuthenticator returns an Authenticator for cfg.
func NewAuthenticator(cfg AuthenticatorConfig) *Authenticator {
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultAccountCacheTTL
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultAccountCacheSize
	}
	if cfg.Now == nil {
		cfg.Now = cfg.Tokens.now
	}
	return &Authenticator{
		tokens:   cfg.Tokens,
		accounts: cfg.Accounts,
		cache:    newAccountCache(cfg.CacheTTL, cfg.CacheSize, cfg.Now),
	}
}

// Authenticate is the OpenAPI validator's AuthenticationFunc for the
// bearerAuth scheme. A missing or bad token, or one whose user no longer
// exists or no longer has the token's role, is 401; when the operation
// names a role as its scope and the token lacks it, 403. The claims are
// left on the Echo context; ClaimsMiddleware moves them into the request's
// context for the handlers.
func (a *Authenticator) Authenticate(ctx context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return echo.NewHTTPError(http.StatusUnauthorized, "A bearer token is required.")
	}
	claims, err := a.tokens.Verify(strings.TrimSpace(token))
	if err != nil {
		return echo.NewHTTPError(http.StatusUnauthorized, "The bearer token is not valid.")
	}
	if err := a.checkAccount(ctx, claims); err != nil {
		return err
	}
	for _, role := range in.Scopes {
		if claims.Role != role {
			return echo.NewHTTPError(http.StatusForbidden, "This operation needs the "+role+" role.")
		}
	}
	if ec := echomw.GetEchoContext(ctx); ec != nil {
		ec.Set(echoClaimsKey, claims)
	}
	return nil
}

// checkAccount refuses (401) claims whose user no longer exists or no
// longer has the token's role.
func (a *Authenticator) checkAccount(ctx context.Context, claims Claims) error {
	role, exists, err := a.accountRole(ctx, claims.UserID)
	if err != nil {
		// Not a 401: the token may well be good. The validator passes on
		// only an *echo.HTTPError; the cause is logged with the 500.
		return echo.NewHTTPError(http.StatusInternalServerError).SetInternal(err)
	}
	if !exists || role != claims.Role {
		return echo.NewHTTPError(http.StatusUnauthorized, "The bearer token is not valid.")
	}
	return nil
}

// CheckAccount refuses (401) claims whose user no longer exists or no
// longer has the token's role, as every request's authentication does:
// for what outlives its authentication (a stream), within the account
// cache's TTL of the change.
func (a *Authenticator) CheckAccount(ctx context.Context, claims Claims) error {
	return a.checkAccount(ctx, claims)
}

// StreamTokenParam is the query parameter that carries a stream token.
const StreamTokenParam = "streamToken"

// AuthenticateStream authenticates a request to a Server-Sent Event
// stream, which the validator does not see: a stream token in
// ?streamToken= (browsers' EventSource cannot send headers) or else an
// access token in the Authorization header. An access token in the query,
// or a stream token in the header, is refused (401) like any bad token;
// the user must exist and have the token's role.
func (a *Authenticator) AuthenticateStream(ctx context.Context, r *http.Request) (Claims, error) {
	var claims Claims
	var err error
	if q := r.URL.Query(); q.Has(StreamTokenParam) {
		claims, err = a.tokens.VerifyStream(q.Get(StreamTokenParam))
		if err != nil {
			return Claims{}, echo.NewHTTPError(http.StatusUnauthorized, "The stream token is not valid (they last 60 seconds; get a new one).")
		}
	} else {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return Claims{}, echo.NewHTTPError(http.StatusUnauthorized, "A bearer token or a streamToken is required.")
		}
		if claims, err = a.tokens.Verify(strings.TrimSpace(token)); err != nil {
			return Claims{}, echo.NewHTTPError(http.StatusUnauthorized, "The bearer token is not valid.")
		}
	}
	if err := a.checkAccount(ctx, claims); err != nil {
		return Claims{}, err
	}
	return claims, nil
}

// accountRole returns the user's current role and whether the user exists,
// from the cache or else from Accounts.
func (a *Authenticator) accountRole(ctx context.Context, userID string) (role string, exists bool, err error) {
	if e, ok := a.cache.get(userID, a.cache.now()); ok {
		return e.role, e.exists, nil
	}
	role, err = a.accounts.UserRole(ctx, userID)
	switch shopd.ErrorCode(err) {
	case "":
		exists = true
	case shopd.ENotFound:
		// Remembered too: a deleted user's tokens keep arriving until
		// they expire, and each would otherwise cost a query.
		role, exists = "", false
	default:
		return "", false, fmt.Errorf("authenticate: look up user %s: %w", userID, err)
	}
	now := a.cache.now()
	a.cache.put(userID, accountEntry{role: role, exists: exists}, now.Add(a.cache.ttl), now)
	return role, exists, nil
}

// accountEntry is what the cache knows of one user.
type accountEntry struct {
	role   string
	exists bool
}

// accountCache maps user ids to their role (or absence) for ttl, bounded
// as expiringCache is: a flood of tokens for distinct users (existing or
// not) cannot grow it without bound.
type accountCache struct {
	*expiringCache[accountEntry]
	ttl time.Duration
	now func() time.Time
}

func newAccountCache(ttl time.Duration, size int, now func() time.Time) *accountCache {
	return &accountCache{expiringCache: newExpiringCache[accountEntry](size), ttl: ttl, now: now}
}

// ClaimsMiddleware runs after the validator and puts the verified claims
// into the request context, where the strict handlers can see them.
func ClaimsMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if claims, ok := c.Get(echoClaimsKey).(Claims); ok {
			req := c.Request()
			c.SetRequest(req.WithContext(WithClaims(req.Context(), claims)))
		}
		return next(c)
	}
}
