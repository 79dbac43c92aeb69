package shoptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// Call sends a request to base+path as a client outside the server would:
// body (when not nil) as JSON, token (when not "") as a bearer token, and
// the extra headers. It decodes a 2xx JSON answer into out (when not nil),
// logs the body of any other answer, and returns the status.
func Call(t testing.TB, base, method, path, token string, header map[string]string, body, out any) int {
	t.Helper()
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
		header = withHeader(header, "Content-Type", "application/json")
	}
	res := Fetch(t, base, method, path, token, header, raw)
	if res.Status >= 300 {
		t.Logf("%s %s: %d %s", method, path, res.Status, res.Body)
		return res.Status
	}
	if out != nil {
		if err := json.Unmarshal(res.Body, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, res.Body, err)
		}
	}
	return res.Status
}

// Response is an answer with its body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Fetch sends a request to base+path with the body as it is (nil: none),
// token (when not "") as a bearer token and the extra headers, and
// returns the whole answer.
func Fetch(t testing.TB, base, method, path, token string, header map[string]string, body []byte) Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	return Response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// withHeader is header with k set to v, unless the caller set k already.
func withHeader(header map[string]string, k, v string) map[string]string {
	if _, ok := header[k]; ok {
		return header
	}
	out := map[string]string{k: v}
	for hk, hv := range header {
		out[hk] = hv
	}
	return out
}

// SignJWT signs exactly the header and claims JSON given (ES256, JWS
// compact), so a test controls every byte a JWT library would otherwise
// write: duplicate members, string dates, crit headers.
func SignJWT(t testing.TB, key *ecdsa.PrivateKey, header, claims string) string {
	t.Helper()
	input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}
