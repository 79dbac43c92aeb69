// Package auth issues and verifies the service's JWTs (ES256, jwx v2),
// publishes their public keys as a JWKS, hashes passwords (argon2id) and
// authenticates requests for the OpenAPI validator.
package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
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
	verified *verifiedTokens
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
	return &Tokens{priv: priv, pubSet: set, issuer: cfg.Issuer, audience: cfg.Audience, ttl: cfg.TTL, now: cfg.Now,
		verified: newExpiringCache[Claims](verifiedTokensSize)}, nil
}

// TTL is how long an issued token is valid.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// Issue signs a token for the user with the role.
func (t *Tokens) Issue(userID, role string) (string, error) {
	return t.issue(userID, role, t.audience, t.ttl)
}

// StreamTokenTTL is how long a stream token is valid.
const StreamTokenTTL = 60 * time.Second

// streamAudience is the audience of stream tokens: not the API's, so that
// Verify refuses them and only VerifyStream accepts them.
func (t *Tokens) streamAudience() string { return t.audience + ":streams" }

// IssueStream signs a stream token for the user with the role: valid for
// StreamTokenTTL, for the Server-Sent Event streams only, where a browser
// must send it in the URL (EventSource cannot set headers).
func (t *Tokens) IssueStream(userID, role string) (string, error) {
	return t.issue(userID, role, t.streamAudience(), StreamTokenTTL)
}

func (t *Tokens) issue(userID, role, audience string, ttl time.Duration) (string, error) {
	now := t.now()
	tok, err := jwt.NewBuilder().
		Subject(userID).
		Issuer(t.issuer).
		Audience([]string{audience}).
		IssuedAt(now).
		NotBefore(now).
		Expiration(now.Add(ttl)).
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
// nbf and iat, and returns the claims. Any failure is ErrInvalidToken. It
// also refuses what jwx accepts but the service never issues (see
// checkCompact): a crit header, and exp, nbf or iat that are not numbers.
func (t *Tokens) Verify(token string) (Claims, error) {
	return t.verify(token, t.audience)
}

// VerifyStream verifies a stream token as Verify does an access token;
// an access token is not a stream token (ErrInvalidToken).
func (t *Tokens) VerifyStream(token string) (Claims, error) {
	return t.verify(token, t.streamAudience())
}

func (t *Tokens) verify(token, audience string) (Claims, error) {
	key := audience + " " + token
	if c, ok := t.verified.get(key, t.now()); ok {
		return c, nil
	}
	if err := checkCompact(token); err != nil {
		return Claims{}, ErrInvalidToken
	}
	tok, err := jwt.ParseString(token,
		jwt.WithKeySet(t.pubSet),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(t.now)),
		jwt.WithAcceptableSkew(30*time.Second),
		jwt.WithIssuer(t.issuer),
		jwt.WithAudience(audience),
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
	c := Claims{UserID: tok.Subject(), Role: role}
	t.verified.put(key, c, tok.Expiration(), t.now())
	return c, nil
}

// verifiedTokensSize bounds the tokens a Tokens remembers as verified.
const verifiedTokensSize = 10_000

// verifiedTokens remembers the tokens that verified, with their claims,
// until they expire: a client sends the same token with every request,
// and verifying it again (an ECDSA signature check and two JSON parses, a
// fifth of the server's CPU under checkout load) would give the same
// answer, since it depends only on the token, the audience, the key set
// (fixed for a Tokens) and the clock, which the expiry stands for. Only a
// verified token goes in; whether its account still exists, with that
// role, is checked on every request all the same (Authenticator). It holds
// at most verifiedTokensSize tokens (expiringCache); a token evicted is
// merely verified again.
type verifiedTokens = expiringCache[Claims]

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

// dateClaims are the NumericDate claims (RFC 7519 section 2: a JSON number).
var dateClaims = map[string]bool{jwt.ExpirationKey: true, jwt.NotBeforeKey: true, jwt.IssuedAtKey: true}

// checkCompact refuses a token that jwx v2.1.7 would verify but that must
// not be trusted:
//   - a crit header parameter: RFC 7515 section 4.1.11 requires refusing a
//     token whose crit names an extension the recipient does not
//     understand, and this service understands none; jwx ignores crit;
//   - exp, nbf or iat that are not JSON numbers: jwx also takes numeric
//     strings and RFC 3339 times ("2099-01-01T00:00:00Z") for them;
//   - a member name given twice in the header or the claims, so that no
//     two parsers can disagree on which value counts;
//   - anything but the compact serialisation (jwx also parses JWS JSON).
func checkCompact(token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("not a compact JWS")
	}
	header, payload := parts[0], parts[1]
	err := visitMembers(header, func(name string, _ json.RawMessage) error {
		if name == jws.CriticalKey {
			return errors.New("crit header parameter")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	err = visitMembers(payload, func(name string, value json.RawMessage) error {
		if dateClaims[name] && !isJSONNumber(value) {
			return fmt.Errorf("%s is not a number", name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	return nil
}

// visitMembers decodes a base64url segment holding one JSON object and calls
// visit for each member; a duplicate name is an error.
func visitMembers(segment string, visit func(name string, value json.RawMessage) error) error {
	b, err := base64.RawURLEncoding.DecodeString(segment)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		if seen[name] {
			return fmt.Errorf("duplicate member %q", name)
		}
		seen[name] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return err
		}
		if err := visit(name, value); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// isJSONNumber reports whether a JSON value (already known to be valid) is
// a number.
func isJSONNumber(v json.RawMessage) bool {
	return len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9')
}
