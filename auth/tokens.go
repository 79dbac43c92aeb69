// Package auth issues and verifies the service's JWTs (ES256, jwx v2),
// publishes their public keys as a JWKS, hashes passwords (argon2id) and
// authenticates requests for the OpenAPI validator.
package auth

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Roles a token can carry.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"
)

// Claims is what a verified token says about its bearer.
type Claims struct {
	UserID string
	Role   string
}

// IsAdmin reports whether the bearer is an admin.
func (c Claims) IsAdmin() bool { return c.Role == RoleAdmin }

// ErrInvalidToken is returned for any token that does not verify; the reason
// is deliberately not told to the client.
var ErrInvalidToken = errors.New("invalid token")

// Tokens signs and verifies access tokens with one key.
type Tokens struct {
	priv     jwk.Key
	pubSet   jwk.Set
	issuer   string
	audience string
	ttl      time.Duration
	now      func() time.Time
}

// TokenConfig configures Tokens.
type TokenConfig struct {
	Key      *ecdsa.PrivateKey
	Issuer   string
	Audience string
	TTL      time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewTokens returns Tokens signing with cfg.Key.
func NewTokens(cfg TokenConfig) (*Tokens, error) {
	priv, pub, err := newJWKs(cfg.Key)
	if err != nil {
		return nil, err
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TTL <= 0 {
		cfg.TTL = time.Hour
	}
	return &Tokens{priv: priv, pubSet: set, issuer: cfg.Issuer, audience: cfg.Audience, ttl: cfg.TTL, now: cfg.Now}, nil
}

// TTL is how long an issued token is valid.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// Issue signs a token for the user with the role.
func (t *Tokens) Issue(userID, role string) (string, error) {
	now := t.now()
	tok, err := jwt.NewBuilder().
		Subject(userID).
		Issuer(t.issuer).
		Audience([]string{t.audience}).
		IssuedAt(now).
		NotBefore(now).
		Expiration(now.Add(t.ttl)).
		Claim("role", role).
		Build()
	if err != nil {
		return "", fmt.Errorf("build token: %w", err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, t.priv))
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return string(signed), nil
}

// Verify checks the signature (by kid, ES256 only), iss, aud, exp (required),
// nbf and iat, and returns the claims. Any failure is ErrInvalidToken.
func (t *Tokens) Verify(token string) (Claims, error) {
	tok, err := jwt.ParseString(token,
		jwt.WithKeySet(t.pubSet),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(t.now)),
		jwt.WithAcceptableSkew(30*time.Second),
		jwt.WithIssuer(t.issuer),
		jwt.WithAudience(t.audience),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.SubjectKey),
	)
	if err != nil {
		return Claims{}, ErrInvalidToken
	}
	role, _ := tok.PrivateClaims()["role"].(string)
	if role != RoleCustomer && role != RoleAdmin {
		return Claims{}, ErrInvalidToken
	}
	return Claims{UserID: tok.Subject(), Role: role}, nil
}

// JWKS returns the public key set as JSON, with no private parameters.
func (t *Tokens) JWKS() ([]byte, error) {
	return json.Marshal(t.pubSet)
}

type claimsKey struct{}

// WithClaims returns ctx carrying the verified claims.
func WithClaims(ctx context.Context, c Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFrom returns the claims in ctx, if the request was authenticated.
func ClaimsFrom(ctx context.Context) (Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(Claims)
	return c, ok
}
