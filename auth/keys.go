package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// LoadSigningKey reads a PEM PKCS#8 EC P-256 private key.
func LoadSigningKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	return parseSigningKey(b)
}

// LoadOrCreateSigningKey reads the key at path, or generates one and writes
// it there (mode 0600) when the file does not exist. It is for development:
// a key kept under the data dir survives restarts, so tokens stay valid.
func LoadOrCreateSigningKey(path string) (*ecdsa.PrivateKey, error) {
	key, err := LoadSigningKey(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return key, err
	}
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create key dir: %w", err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	// O_EXCL: two processes starting together must not overwrite each other's key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadSigningKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(pemBytes); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	return key, nil
}

func parseSigningKey(b []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("parse signing key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse signing key: %w", err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("parse signing key: want an EC P-256 key (ES256)")
	}
	return ec, nil
}

// newJWKs wraps the key as a private JWK and its public half, both with the
// RFC 7638 thumbprint as kid.
func newJWKs(key *ecdsa.PrivateKey) (priv, pub jwk.Key, err error) {
	priv, err = jwk.FromRaw(key)
	if err != nil {
		return nil, nil, fmt.Errorf("jwk from key: %w", err)
	}
	pub, err = jwk.PublicKeyOf(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("public jwk: %w", err)
	}
	if err := jwk.AssignKeyID(pub); err != nil {
		return nil, nil, fmt.Errorf("assign kid: %w", err)
	}
	kid := pub.KeyID()
	for _, k := range []jwk.Key{priv, pub} {
		if err := k.Set(jwk.KeyIDKey, kid); err != nil {
			return nil, nil, fmt.Errorf("set jwk kid: %w", err)
		}
		if err := k.Set(jwk.AlgorithmKey, jwa.ES256); err != nil {
			return nil, nil, fmt.Errorf("set jwk alg: %w", err)
		}
	}
	if err := pub.Set(jwk.KeyUsageKey, jwk.ForSignature); err != nil {
		return nil, nil, fmt.Errorf("set jwk use: %w", err)
	}
	return priv, pub, nil
}
