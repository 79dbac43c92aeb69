package images

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/shopd/shopd"
)

func encoded(t *testing.T, enc func(io.Writer, image.Image) error) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := enc(&b, image.NewRGBA(image.Rect(0, 0, 30, 20))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestCheck(t *testing.T) {
	t.Parallel()
	pngData := encoded(t, png.Encode)
	bomb := bytes.Clone(pngData)
	binary.BigEndian.PutUint32(bomb[16:], 50000)
	binary.BigEndian.PutUint32(bomb[20:], 50000)
	binary.BigEndian.PutUint32(bomb[29:], crc32.ChecksumIEEE(bomb[12:29]))
	webp, err := os.ReadFile("../handlers/testdata/gradient-640x480.webp")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		data     []byte
		wantType string
		wantCode string
	}{
		{"png", pngData, PNG, ""},
		{"jpeg", encoded(t, func(w io.Writer, m image.Image) error { return jpeg.Encode(w, m, nil) }), JPEG, ""},
		{"webp", webp, WebP, ""},
		{"gif", encoded(t, func(w io.Writer, m image.Image) error { return gif.Encode(w, m, nil) }), "", shopd.EUnsupportedMedia},
		{"text", []byte("hello, I am not an image"), "", shopd.EUnsupportedMedia},
		{"pixel bomb", bomb, "", shopd.EInvalid},
		{"truncated", pngData[:40], "", shopd.EInvalid},
	}
	for _, tc := range cases {
		c, err := check(tc.data)
		if code := shopd.ErrorCode(err); code != tc.wantCode || c.contentType != tc.wantType {
			t.Errorf("%s: %q, %v; want %q, code %q", tc.name, c.contentType, err, tc.wantType, tc.wantCode)
		}
	}
}

// countedReader counts what is read from it.
type countedReader struct {
	r io.Reader
	n int
}

func (c *countedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReadFileStopsAtTheLimit(t *testing.T) {
	t.Parallel()
	if b, err := ReadFile(bytes.NewReader(make([]byte, MaxBytes))); err != nil || len(b) != MaxBytes {
		t.Fatalf("exactly MaxBytes: %d bytes, %v", len(b), err)
	}
	src := &countedReader{r: io.LimitReader(zeros{}, 50<<20)}
	_, err := ReadFile(src)
	if shopd.ErrorCode(err) != shopd.EPayloadTooLarge {
		t.Fatalf("50 MiB: %v, want payload_too_large", err)
	}
	if src.n > MaxBytes+1 {
		t.Errorf("read %d bytes, want at most MaxBytes+1", src.n)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestOpenS3ByURL opens BLOB_URL=s3://... against an in-process S3
// server: objects go there, and URLs are its presigned, path-style ones.
// Not parallel: the AWS SDK reads its credentials from the environment.
func TestOpenS3ByURL(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("shop-images"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-test-key")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	s, err := Open(t.Context(), Config{
		BlobURL: "s3://shop-images?region=us-east-1&use_path_style=true&endpoint=" + url.QueryEscape(srv.URL),
		Secret:  []byte("secret"), PublicURL: "https://shop.example",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.bucket.WriteAll(t.Context(), "products/p/i", []byte("bytes"), nil); err != nil {
		t.Fatal(err)
	}
	u, err := s.URL(t.Context(), "products/p/i")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, srv.URL+"/shop-images/products/p/i?") || !strings.Contains(u, "X-Amz-Signature=") {
		t.Errorf("URL %s is not a path-style presigned URL of the bucket", u)
	}
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(body) != "bytes" {
		t.Errorf("GET presigned URL: %d %q", res.StatusCode, body)
	}
}
