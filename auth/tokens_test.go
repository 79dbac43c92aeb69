package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/shopd/shopd/internal/shoptest"
)

func newTestTokens(t *testing.T, now time.Time) (*Tokens, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := NewTokens(TokenConfig{Key: key, Issuer: "shop", Audience: "shop-api", TTL: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return tk, key
}

// sign builds a token with the given claims, signed by key with tk's kid.
func sign(t *testing.T, tk *Tokens, key *ecdsa.PrivateKey, build func(*jwt.Builder) *jwt.Builder) string {
	t.Helper()
	priv, _, err := newJWKs(key)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the kid of the service's key so only the signature can fail.
	if err := priv.Set("kid", tk.priv.KeyID()); err != nil {
		t.Fatal(err)
	}
	tok, err := build(jwt.NewBuilder()).Build()
	if err != nil {
		t.Fatal(err)
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, priv))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestVerify(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tk, key := newTestTokens(t, now)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	valid := func(b *jwt.Builder) *jwt.Builder {
		return b.Subject("u1").Issuer("shop").Audience([]string{"shop-api"}).IssuedAt(now).Expiration(now.Add(time.Hour)).Claim("role", "customer")
	}
	good, err := tk.Issue("u1", RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	_ = json.Unmarshal(payload, &m)
	m["sub"] = "someone-else"
	tamperedPayload, _ := json.Marshal(m)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedPayload) + "." + parts[2]
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"` + tk.priv.KeyID() + `"}`))
	algNone := noneHeader + "." + parts[1] + "."

	cases := []struct {
		name  string
		token string
		ok    bool
	}{
		{"issued by the service", good, true},
		{"valid claims signed with our key", sign(t, tk, key, valid), true},
		{"alg none", algNone, false},
		{"tampered claims", tampered, false},
		{"expired", sign(t, tk, key, func(b *jwt.Builder) *jwt.Builder { return valid(b).Expiration(now.Add(-time.Minute)) }), false},
		{"no exp", sign(t, tk, key, func(b *jwt.Builder) *jwt.Builder {
			return b.Subject("u1").Issuer("shop").Audience([]string{"shop-api"}).Claim("role", "customer")
		}), false},
		{"wrong iss", sign(t, tk, key, func(b *jwt.Builder) *jwt.Builder { return valid(b).Issuer("evil") }), false},
		{"wrong aud", sign(t, tk, key, func(b *jwt.Builder) *jwt.Builder { return valid(b).Audience([]string{"other"}) }), false},
		{"future nbf", sign(t, tk, key, func(b *jwt.Builder) *jwt.Builder { return valid(b).NotBefore(now.Add(time.Hour)) }), false},
		{"another key", sign(t, tk, other, valid), false},
		{"unknown role", sign(t, tk, key, func(b *jwt.Builder) *jwt.Builder { return valid(b).Claim("role", "root") }), false},
		{"garbage", "not.a.jwt", false},
		{"empty", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := tk.Verify(tc.token)
			if tc.ok {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				if c.UserID != "u1" {
					t.Fatalf("subject = %q", c.UserID)
				}
				return
			}
			if err == nil {
				t.Fatalf("want rejection, got claims %+v", c)
			}
		})
	}
}

func TestJWKSHasNoPrivateParameters(t *testing.T) {
	t.Parallel()
	tk, _ := newTestTokens(t, time.Now())
	b, err := tk.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("keys = %d", len(set.Keys))
	}
	k := set.Keys[0]
	if _, ok := k["d"]; ok {
		t.Fatal("JWKS leaks the private parameter d")
	}
	for _, f := range []string{"kty", "crv", "x", "y", "kid", "alg"} {
		if _, ok := k[f]; !ok {
			t.Errorf("JWKS key lacks %q", f)
		}
	}
}

func TestPassword(t *testing.T) {
	t.Parallel()
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		hash, pw string
		want     bool
	}{
		{h, "correct horse battery", true},
		{h, "correct horse batterY", false},
		{"", "correct horse battery", false},
	} {
		got, err := CheckPassword(context.Background(), tc.hash, tc.pw)
		if err != nil || got != tc.want {
			t.Errorf("CheckPassword(%q) = %v, %v; want %v", tc.pw, got, err, tc.want)
		}
	}
}

// TestVerifyRefusesHeaderAndClaimTypes: tokens correctly signed with the
// service's key, but with a crit header, a non-numeric exp, nbf or iat, or
// a member given twice, are refused. jwx v2.1.7 accepts all of these by
// itself; the controls show the hand-built tokens verify otherwise.
func TestVerifyRefusesHeaderAndClaimTypes(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tk, key := newTestTokens(t, now)
	kid := tk.priv.KeyID()
	iat, exp := now.Unix(), now.Add(time.Hour).Unix()
	header := fmt.Sprintf(`{"alg":"ES256","kid":%q,"typ":"JWT"}`, kid)
	claims := func(dates string) string {
		return `{"sub":"u1","iss":"shop","aud":["shop-api"],"role":"customer",` + dates + `}`
	}
	numeric := fmt.Sprintf(`"iat":%d,"nbf":%d,"exp":%d`, iat, iat, exp)

	cases := []struct {
		name, header, claims string
		ok                   bool
	}{
		{"control: numeric dates", header, claims(numeric), true},
		{"control: fractional exp", header, claims(fmt.Sprintf(`"iat":%d,"exp":%d.5`, iat, exp)), true},
		{"control: no nbf, no iat", header, claims(fmt.Sprintf(`"exp":%d`, exp)), true},

		{"crit naming an unknown parameter", fmt.Sprintf(`{"alg":"ES256","kid":%q,"crit":["urn:example:ext"],"urn:example:ext":true}`, kid), claims(numeric), false},
		{"crit naming exp", fmt.Sprintf(`{"alg":"ES256","kid":%q,"crit":["exp"],"exp":%d}`, kid, exp), claims(numeric), false},
		{"crit empty", fmt.Sprintf(`{"alg":"ES256","kid":%q,"crit":[]}`, kid), claims(numeric), false},
		{"crit escaped in the name", fmt.Sprintf(`{"alg":"ES256","kid":%q,"cr\u0069t":["urn:example:ext"]}`, kid), claims(numeric), false},
		{"exp a numeric string", header, claims(fmt.Sprintf(`"iat":%d,"exp":"%d"`, iat, exp)), false},
		{"exp an RFC 3339 string", header, claims(fmt.Sprintf(`"iat":%d,"exp":%q`, iat, now.Add(time.Hour).Format(time.RFC3339))), false},
		{"exp a boolean", header, claims(fmt.Sprintf(`"iat":%d,"exp":true`, iat)), false},
		{"nbf a string", header, claims(fmt.Sprintf(`"iat":%d,"nbf":"%d","exp":%d`, iat, iat, exp)), false},
		{"iat a string", header, claims(fmt.Sprintf(`"iat":"%d","exp":%d`, iat, exp)), false},
		{"iat null", header, claims(fmt.Sprintf(`"iat":null,"exp":%d`, exp)), false},
		{"exp twice", header, claims(fmt.Sprintf(`"iat":%d,"exp":%d,"exp":%d`, iat, now.Add(-time.Hour).Unix(), exp)), false},
		{"role twice", header, `{"sub":"u1","iss":"shop","aud":["shop-api"],"role":"customer","role":"admin",` + numeric + `}`, false},
		{"kid twice", fmt.Sprintf(`{"alg":"ES256","kid":"other","kid":%q}`, kid), claims(numeric), false},
		{"claims not an object", header, `["u1"]`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			token := shoptest.SignJWT(t, key, tc.header, tc.claims)
			c, err := tk.Verify(token)
			if tc.ok {
				if err != nil || c.UserID != "u1" || c.Role != RoleCustomer {
					t.Fatalf("Verify = %+v, %v; want the customer u1", c, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted %s.%s as %+v", tc.header, tc.claims, c)
			}
		})
	}

	t.Run("JWS JSON serialisation", func(t *testing.T) {
		t.Parallel()
		parts := strings.Split(shoptest.SignJWT(t, key, header, claims(numeric)), ".")
		token := fmt.Sprintf(`{"payload":%q,"protected":%q,"signature":%q}`, parts[1], parts[0], parts[2])
		if c, err := tk.Verify(token); err == nil {
			t.Fatalf("Verify accepted the JSON serialisation as %+v", c)
		}
	})
}

// TestStreamTokens: a stream token verifies as one for StreamTokenTTL, for
// the same user and role, and never as an access token; an access token
// is never a stream token.
func TestStreamTokens(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tk, key := newTestTokens(t, now)
	stream, err := tk.IssueStream("6f1b3c2e-8a4d-4e7b-9c1a-2d3e4f5a6b7c", RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := tk.VerifyStream(stream); err != nil || c.UserID != "6f1b3c2e-8a4d-4e7b-9c1a-2d3e4f5a6b7c" || c.Role != RoleCustomer {
		t.Errorf("VerifyStream: %+v, %v", c, err)
	}
	if _, err := tk.Verify(stream); err != ErrInvalidToken {
		t.Errorf("a stream token verified as an access token: %v", err)
	}
	access, err := tk.Issue("6f1b3c2e-8a4d-4e7b-9c1a-2d3e4f5a6b7c", RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.VerifyStream(access); err != ErrInvalidToken {
		t.Errorf("an access token verified as a stream token: %v", err)
	}
	// The same key a minute and a half later (past the 30 s leeway): expired.
	later, err := NewTokens(TokenConfig{Key: key, Issuer: "shop", Audience: "shop-api",
		Now: func() time.Time { return now.Add(StreamTokenTTL + 31*time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := later.VerifyStream(stream); err != ErrInvalidToken {
		t.Errorf("an expired stream token: %v", err)
	}
}

// TestVerifiedTokensStillExpire: a token that verified is remembered, but
// only as what it is: past its expiry (and the 30 s leeway) it is refused
// as before, a token changed in any byte is verified afresh and refused,
// and an access token remembered is no stream token.
func TestVerifiedTokensStillExpire(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	var now atomic.Int64
	now.Store(start.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := NewTokens(TokenConfig{Key: key, Issuer: "shop", Audience: "shop-api", TTL: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	token, err := tk.Issue("u1", RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if c, err := tk.Verify(token); err != nil || c.UserID != "u1" || c.Role != RoleCustomer {
			t.Fatalf("Verify = %+v, %v", c, err)
		}
	}
	if _, err := tk.VerifyStream(token); err != ErrInvalidToken {
		t.Errorf("a verified access token passed as a stream token: %v", err)
	}
	tampered := token[:len(token)-2] + "AA"
	if tampered == token {
		tampered = token[:len(token)-2] + "BB"
	}
	if _, err := tk.Verify(tampered); err != ErrInvalidToken {
		t.Errorf("a token with another signature verified: %v", err)
	}
	now.Store(start.Add(time.Hour + 10*time.Second).UnixNano()) // expired, within the leeway
	if _, err := tk.Verify(token); err != nil {
		t.Errorf("within the leeway after expiry: %v, want it accepted as before", err)
	}
	now.Store(start.Add(time.Hour + 31*time.Second).UnixNano())
	if c, err := tk.Verify(token); err != ErrInvalidToken {
		t.Errorf("past expiry and leeway: Verify = %+v, %v; want ErrInvalidToken", c, err)
	}
}
