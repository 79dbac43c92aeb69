package server

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/images"
	"github.com/shopd/shopd/internal/pgtest"
)

// TestImagesAcrossInstances: an image uploaded through one instance gets
// its thumbnail from the job (on whichever instance fetches it), its URLs
// are built from PUBLIC_URL and served by either instance, and a delete
// through the other instance stops them serving.
func TestImagesAcrossInstances(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DATABASE_URL":             pgtest.NewURL(t),
		"HTTP_ADDR":                "127.0.0.1:0",
		"DATA_DIR":                 t.TempDir(), // shared: one file store
		"JOB_POLL_INTERVAL":        "20ms",
		"PUBLIC_URL":               "https://shop.example",
		"IMAGE_URL_SECRET":         "one secret for every instance, 32+ bytes",
		"BOOTSTRAP_ADMIN_EMAIL":    "boss@example.com",
		"BOOTSTRAP_ADMIN_PASSWORD": "bootstrap-password",
	}
	a := start(t, env)
	b := start(t, env)

	var tok gen.TokenResponse
	if a.call(t, http.MethodPost, "/v1/auth/login", "", map[string]string{"email": "boss@example.com", "password": "bootstrap-password"}, &tok) != http.StatusOK {
		t.Fatal("admin login failed")
	}
	var p gen.Product
	if a.call(t, http.MethodPost, "/v1/products", tok.AccessToken, map[string]any{"sku": "PIC-1", "name": "Pictured", "priceCents": 1000, "stock": 3}, &p) != http.StatusCreated {
		t.Fatal("create product failed")
	}

	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	part, _ := w.CreateFormFile("file", "big.png")
	src := image.NewRGBA(image.Rect(0, 0, 1000, 800))
	for y := range 800 {
		for x := range 1000 {
			src.Set(x, y, color.RGBA{uint8(x), uint8(y), 90, 255})
		}
	}
	if err := png.Encode(part, src); err != nil {
		t.Fatal(err)
	}
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, a.base+"/v1/products/"+p.Id+"/images", &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Host = "attacker.example" // never used for URLs
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var img gen.ProductImage
	err = json.NewDecoder(res.Body).Decode(&img)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || err != nil {
		t.Fatalf("upload: %d %v", res.StatusCode, err)
	}
	if !strings.HasPrefix(img.Url, "https://shop.example/v1/images?") {
		t.Errorf("url %s is not built from PUBLIC_URL", img.Url)
	}

	// The job makes the thumbnail; the product read through b shows it.
	var thumbURL string
	for deadline := time.Now().Add(30 * time.Second); ; {
		var got gen.Product
		b.call(t, http.MethodGet, "/v1/products/"+p.Id, "", nil, &got)
		if len(got.Images) == 1 && got.Images[0].ThumbnailUrl.IsSpecified() && !got.Images[0].ThumbnailUrl.IsNull() {
			thumbURL = got.Images[0].ThumbnailUrl.MustGet()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no thumbnail after 30s: %+v", got.Images)
		}
		time.Sleep(20 * time.Millisecond)
	}
	get := func(s *server, signed string) (*http.Response, []byte) {
		t.Helper()
		res, err := http.Get(strings.Replace(signed, "https://shop.example", s.base, 1))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		data, _ := io.ReadAll(res.Body)
		return res, data
	}
	for _, s := range []*server{a, b} {
		res, data := get(s, thumbURL)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != images.PNG {
			t.Fatalf("thumbnail: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
		}
		th, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if bb := th.Bounds(); bb.Dx() != 400 || bb.Dy() != 320 {
			t.Errorf("thumbnail is %dx%d, want 400x320", bb.Dx(), bb.Dy())
		}
	}

	if b.call(t, http.MethodDelete, "/v1/products/"+p.Id+"/images/"+img.Id, tok.AccessToken, nil, nil) != http.StatusNoContent {
		t.Fatal("delete failed")
	}
	for _, u := range []string{img.Url, thumbURL} {
		if res, _ := get(a, u); res.StatusCode != http.StatusNotFound {
			t.Errorf("a deleted image's URL answered %d, want 404", res.StatusCode)
		}
	}
}

func TestImageConfig(t *testing.T) {
	t.Parallel()
	c, err := LoadConfig(func(k string) string { return map[string]string{"DATA_DIR": "/srv/shop"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.BlobURL != "file:///srv/shop/blobs" || c.ImageURLTTL != time.Hour || c.ImageURLSecret != "" {
		t.Errorf("defaults: BLOB_URL %q, IMAGE_URL_TTL %v, IMAGE_URL_SECRET %q", c.BlobURL, c.ImageURLTTL, c.ImageURLSecret)
	}
	env := map[string]string{"BLOB_URL": "s3://shop-images?region=eu-west-1&endpoint=http://minio:9000&use_path_style=true", "IMAGE_URL_TTL": "15m"}
	if c, err = LoadConfig(func(k string) string { return env[k] }); err != nil || c.BlobURL != env["BLOB_URL"] || c.ImageURLTTL != 15*time.Minute {
		t.Errorf("overrides: %v, %q, %v", err, c.BlobURL, c.ImageURLTTL)
	}
	for k, v := range map[string]string{"BLOB_URL": "gs://bucket", "IMAGE_URL_TTL": "720h", "IMAGE_URL_SECRET": "short"} {
		if _, err := LoadConfig(func(key string) string { return map[string]string{k: v}[key] }); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: error %v, want one naming it", k, v, err)
		}
	}
}
