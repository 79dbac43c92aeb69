package handlers_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/s3blob"
	_ "golang.org/x/image/webp"

	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/handlers"
	"github.com/shopd/shopd/images"
	"github.com/shopd/shopd/internal/shoptest"
)

func init() {
	// The spec's image responses are binary; kin-openapi checks their
	// headers and status and takes the bytes as they are.
	for _, ct := range []string{images.JPEG, images.PNG, images.WebP} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
}

// imageStores are the blob stores every image test runs against: the
// default file store (URLs served by the API) and S3 (gofakes3 in-process,
// the real S3 protocol; URLs presigned by the bucket).
var imageStores = []struct {
	name string
	opts func(t *testing.T) []func(*handlers.Config)
}{
	{"file", func(*testing.T) []func(*handlers.Config) { return nil }},
	{"s3", func(t *testing.T) []func(*handlers.Config) { return []func(*handlers.Config){withS3Images(t)} }},
}

// withS3Images gives the server an image service on a bucket of a fresh
// in-process S3 server.
func withS3Images(t *testing.T) func(*handlers.Config) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("shop-images"); err != nil {
		t.Fatal(err)
	}
	s3srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(s3srv.Close)
	client := s3.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret-test-key", ""),
	}, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s3srv.URL)
		o.UsePathStyle = true
	})
	bucket, err := s3blob.OpenBucket(t.Context(), client, "shop-images", nil)
	if err != nil {
		t.Fatal(err)
	}
	return func(cfg *handlers.Config) {
		svc, err := images.Open(t.Context(), images.Config{Bucket: bucket, PublicURL: "http://unused.invalid",
			Secret: []byte(testImageSecret), Store: cfg.Store})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Close() })
		cfg.Images = svc
	}
}

// gradient is a w x h image with a colour ramp (so encoders cannot make
// it trivially small).
func gradient(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x + y) % 256), 255})
		}
	}
	return img
}

func pngImage(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, gradient(w, h)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegImage(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, gradient(w, h), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// webpImage is a real 640x480 WebP made by cwebp (see testdata/README).
func webpImage(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/gradient-640x480.webp")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pixelBomb is a valid PNG of one pixel whose header claims w x h.
func pixelBomb(t *testing.T, w, h uint32) []byte {
	t.Helper()
	b := pngImage(t, 1, 1)
	// Signature (8), IHDR length (4) and type (4), then width and height.
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

// uploadForm is a multipart form with a file part (named filename, with
// the declared type partType) and, when alt is not nil, an alt part.
func uploadForm(t *testing.T, filename, partType string, data []byte, alt *string) (body []byte, contentType string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	if alt != nil {
		if err := w.WriteField("alt", *alt); err != nil {
			t.Fatal(err)
		}
	}
	h := make(map[string][]string)
	h["Content-Disposition"] = []string{fmt.Sprintf(`form-data; name="file"; filename=%q`, filename)}
	h["Content-Type"] = []string{partType}
	part, err := w.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := part.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), w.FormDataContentType()
}

// upload posts data as a product image.
func (a *api) upload(t *testing.T, token, productID, filename string, data []byte, alt *string) *resp {
	t.Helper()
	body, ct := uploadForm(t, filename, "application/octet-stream", data, alt)
	req := a.request(t, http.MethodPost, "/v1/products/"+productID+"/images", token, body)
	req.Header.Set("Content-Type", ct)
	return a.send(t, req)
}

// fetched is what a signed URL answered.
type fetched struct {
	status int
	header http.Header
	body   []byte
}

// fetch GETs a signed image URL: through the API (validated against the
// spec) when it points there, from S3 otherwise.
func (a *api) fetch(t *testing.T, rawURL string) fetched {
	t.Helper()
	if strings.HasPrefix(rawURL, a.URL+"/") {
		req, err := http.NewRequest(http.MethodGet, rawURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := a.send(t, req)
		return fetched{r.status, r.header, r.body}
	}
	res, err := http.Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fetched{res.StatusCode, res.Header, body}
}

// decodeFetched fetches a URL and decodes it as an image of contentType.
func (a *api) decodeFetched(t *testing.T, rawURL, contentType string) image.Image {
	t.Helper()
	f := a.fetch(t, rawURL)
	if f.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", rawURL, f.status, f.body)
	}
	if got := f.header.Get("Content-Type"); got != contentType {
		t.Errorf("GET %s: Content-Type %q, want %q", rawURL, got, contentType)
	}
	img, _, err := image.Decode(bytes.NewReader(f.body))
	if err != nil {
		t.Fatalf("GET %s: the bytes do not decode: %v", rawURL, err)
	}
	return img
}

func (a *api) productImages(t *testing.T, token, productID string) []gen.ProductImage {
	t.Helper()
	var p gen.Product
	a.do(t, http.MethodGet, "/v1/products/"+productID, token, nil).want(t, http.StatusOK).decode(t, &p)
	return p.Images
}

// TestProductImages runs the whole life of product images against each
// store: uploads of real PNG, JPEG and WebP files, ordering, signed URLs
// serving the bytes, thumbnails, the cart's imageUrl, reordering, deleting
// and archiving.
func TestProductImages(t *testing.T) {
	t.Parallel()
	for _, bs := range imageStores {
		t.Run(bs.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t, bs.opts(t)...)
			ctx := t.Context()
			admin := a.admin(t)
			p := shoptest.Product(ctx, t, a.Store, nil)

			pngData, jpegData, webpData := pngImage(t, 900, 600), jpegImage(t, 300, 500), webpImage(t)
			alt := "Front, in daylight"
			var up [3]gen.ProductImage
			// The name says nothing: the type comes from the bytes.
			a.upload(t, admin, p.ID, "front.png", pngData, &alt).want(t, http.StatusCreated).decode(t, &up[0])
			a.upload(t, admin, p.ID, "x.png", jpegData, nil).want(t, http.StatusCreated).decode(t, &up[1])
			a.upload(t, admin, p.ID, "photo.jpg", webpData, nil).want(t, http.StatusCreated).decode(t, &up[2])
			want := []struct {
				ct   string
				w, h int32
				data []byte
			}{{images.PNG, 900, 600, pngData}, {images.JPEG, 300, 500, jpegData}, {images.WebP, 640, 480, webpData}}
			for i, w := range want {
				got := up[i]
				if string(got.ContentType) != w.ct || got.Width != w.w || got.Height != w.h || got.Position != int32(i) {
					t.Errorf("upload %d = %s %dx%d at %d, want %s %dx%d at %d", i, got.ContentType, got.Width, got.Height,
						got.Position, w.ct, w.w, w.h, i)
				}
				if !got.ThumbnailUrl.IsNull() {
					t.Errorf("upload %d: thumbnailUrl %v before the job ran, want null", i, got.ThumbnailUrl)
				}
				f := a.fetch(t, got.Url)
				if f.status != http.StatusOK || !bytes.Equal(f.body, w.data) || f.header.Get("Content-Type") != w.ct {
					t.Errorf("upload %d: its url answered %d, %s, %d bytes; want the %d bytes uploaded as %s",
						i, f.status, f.header.Get("Content-Type"), len(f.body), len(w.data), w.ct)
				}
			}
			if up[0].Alt != alt || up[1].Alt != "" {
				t.Errorf("alt = %q, %q; want %q and empty", up[0].Alt, up[1].Alt, alt)
			}

			got := a.productImages(t, "", p.ID)
			if len(got) != 3 || got[0].Id != up[0].Id || got[1].Id != up[1].Id || got[2].Id != up[2].Id {
				t.Fatalf("product images = %+v, want the three uploads in order", got)
			}

			// The thumbnail job (run here as its worker runs it).
			for _, u := range up {
				if err := a.Images.MakeThumbnail(ctx, u.Id); err != nil {
					t.Fatalf("thumbnail %s: %v", u.Id, err)
				}
			}
			got = a.productImages(t, "", p.ID)
			thumbTypes := []string{images.PNG, images.JPEG, images.JPEG}
			for i, g := range got {
				tu, err := g.ThumbnailUrl.Get()
				if err != nil {
					t.Fatalf("image %d: thumbnailUrl still null after the job", i)
				}
				th := a.decodeFetched(t, tu, thumbTypes[i])
				b := th.Bounds()
				if max(b.Dx(), b.Dy()) > images.ThumbnailSize || b.Dx() == 0 {
					t.Errorf("image %d: thumbnail is %dx%d, want at most %d px on its longer side", i, b.Dx(), b.Dy(), images.ThumbnailSize)
				}
				// The aspect ratio is kept (within rounding).
				if d := float64(b.Dx())/float64(b.Dy()) - float64(g.Width)/float64(g.Height); d > 0.02 || d < -0.02 {
					t.Errorf("image %d: thumbnail %dx%d for %dx%d changes the aspect ratio", i, b.Dx(), b.Dy(), g.Width, g.Height)
				}
			}

			// The cart line shows the first image's thumbnail.
			customer, _ := a.customer(t)
			var cart gen.Cart
			a.do(t, http.MethodPost, "/v1/cart/items", customer, map[string]any{"productId": p.ID, "quantity": 1}).
				want(t, http.StatusCreated).decode(t, &cart)
			imageURL, err := cart.Items[0].ImageUrl.Get()
			if err != nil {
				t.Fatal("cart line imageUrl is null for a product with images")
			}
			if b := a.decodeFetched(t, imageURL, images.PNG).Bounds(); b.Dx() != 400 || b.Dy() != 266 {
				t.Errorf("cart imageUrl serves %dx%d, want the 900x600 PNG's 400x266 thumbnail", b.Dx(), b.Dy())
			}

			// Reorder: the WebP to the front; the others shift, no duplicates.
			var moved gen.ProductImage
			a.do(t, http.MethodPatch, "/v1/products/"+p.ID+"/images/"+up[2].Id, admin, map[string]any{"position": 0, "alt": "Side"}).
				want(t, http.StatusOK).decode(t, &moved)
			if moved.Position != 0 || moved.Alt != "Side" {
				t.Errorf("patched image = position %d alt %q, want 0 and Side", moved.Position, moved.Alt)
			}
			assertOrder(t, a.productImages(t, "", p.ID), up[2].Id, up[0].Id, up[1].Id)
			a.do(t, http.MethodPatch, "/v1/products/"+p.ID+"/images/"+up[2].Id, admin, map[string]any{"position": 2}).
				want(t, http.StatusOK)
			assertOrder(t, a.productImages(t, "", p.ID), up[0].Id, up[1].Id, up[2].Id)
			a.do(t, http.MethodPatch, "/v1/products/"+p.ID+"/images/"+up[0].Id, admin, map[string]any{"position": 3}).
				want(t, http.StatusBadRequest)
			assertOrder(t, a.productImages(t, "", p.ID), up[0].Id, up[1].Id, up[2].Id)

			// Delete the PNG: its bytes and thumbnail go; the rest move up.
			before := a.productImages(t, "", p.ID)[0]
			a.do(t, http.MethodDelete, "/v1/products/"+p.ID+"/images/"+up[0].Id, admin, nil).want(t, http.StatusNoContent)
			assertOrder(t, a.productImages(t, "", p.ID), up[1].Id, up[2].Id)
			for _, u := range []string{before.Url, before.ThumbnailUrl.MustGet()} {
				if f := a.fetch(t, u); f.status != http.StatusNotFound {
					t.Errorf("a deleted image's URL answered %d, want 404", f.status)
				}
			}
			a.do(t, http.MethodDelete, "/v1/products/"+p.ID+"/images/"+up[0].Id, admin, nil).want(t, http.StatusNotFound)
			// The cart now shows the new first image.
			a.do(t, http.MethodGet, "/v1/cart", customer, nil).want(t, http.StatusOK).decode(t, &cart)
			if u, err := cart.Items[0].ImageUrl.Get(); err != nil || a.fetch(t, u).status != http.StatusOK {
				t.Errorf("cart imageUrl after the delete = %v, want the JPEG's thumbnail", cart.Items[0].ImageUrl)
			}

			// Archiving keeps the images.
			a.do(t, http.MethodDelete, "/v1/products/"+p.ID, admin, nil).want(t, http.StatusOK)
			assertOrder(t, a.productImages(t, admin, p.ID), up[1].Id, up[2].Id)
		})
	}
}

func assertOrder(t *testing.T, got []gen.ProductImage, ids ...string) {
	t.Helper()
	if len(got) != len(ids) {
		t.Fatalf("%d images, want %d", len(got), len(ids))
	}
	for i, g := range got {
		if g.Id != ids[i] || g.Position != int32(i) {
			t.Errorf("image %d = %s at position %d, want %s at %d", i, g.Id, g.Position, ids[i], i)
		}
	}
}

// TestImageUploadRefusals: what is not a small JPEG, PNG or WebP image is
// refused with a clear problem, and nothing is stored.
func TestImageUploadRefusals(t *testing.T) {
	t.Parallel()
	for _, bs := range imageStores {
		t.Run(bs.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t, bs.opts(t)...)
			admin := a.admin(t)
			p := shoptest.Product(t.Context(), t, a.Store, nil)
			path := "/v1/products/" + p.ID + "/images"
			problem := func(r *resp, status int, typ string) {
				t.Helper()
				r.want(t, status)
				var pb struct{ Type, Detail string }
				r.decode(t, &pb)
				if pb.Type != "https://shopd.dev/problems/"+typ || pb.Detail == "" {
					t.Errorf("problem = %+v, want type %s with a detail", pb, typ)
				}
			}

			problem(a.upload(t, admin, p.ID, "x.png", []byte("just some text, not a picture\n"), nil), http.StatusUnsupportedMediaType, "unsupported_media_type")
			problem(a.upload(t, admin, p.ID, "x.png", []byte{}, nil), http.StatusBadRequest, "invalid")
			bomb := a.upload(t, admin, p.ID, "bomb.png", pixelBomb(t, 50000, 50000), nil)
			problem(bomb, http.StatusBadRequest, "invalid")
			if !strings.Contains(string(bomb.body), "50000 x 50000") {
				t.Errorf("pixel bomb detail does not say why: %s", bomb.body)
			}
			truncated := pngImage(t, 64, 64)
			problem(a.upload(t, admin, p.ID, "cut.png", truncated[:len(truncated)/2], nil), http.StatusBadRequest, "invalid")
			// Over 5 MiB (declared by Content-Length): refused before reading.
			big := make([]byte, 6<<20)
			copy(big, pngImage(t, 8, 8))
			problem(a.upload(t, admin, p.ID, "big.png", big, nil), http.StatusRequestEntityTooLarge, "payload_too_large")
			// Not multipart at all.
			req := a.request(t, http.MethodPost, path, admin, pngImage(t, 8, 8))
			req.Header.Set("Content-Type", "image/png")
			problem(a.send(t, req), http.StatusUnsupportedMediaType, "unsupported_media_type")
			// An unknown part, a missing file, an alt text too long.
			body, ct := uploadForm(t, "a.png", "image/png", pngImage(t, 8, 8), nil)
			req = a.request(t, http.MethodPost, path, admin, bytes.Replace(body, []byte(`name="file"`), []byte(`name="picture"`), 1))
			req.Header.Set("Content-Type", ct)
			problem(a.send(t, req), http.StatusBadRequest, "invalid")
			long := strings.Repeat("a", 501)
			problem(a.upload(t, admin, p.ID, "a.png", pngImage(t, 8, 8), &long), http.StatusBadRequest, "invalid")
			// Only admins.
			customer, _ := a.customer(t)
			problem(a.upload(t, customer, p.ID, "a.png", pngImage(t, 8, 8), nil), http.StatusForbidden, "forbidden")
			problem(a.upload(t, "", p.ID, "a.png", pngImage(t, 8, 8), nil), http.StatusUnauthorized, "unauthorized")
			problem(a.upload(t, admin, "9b2f4c1e-3d5a-4f6b-8c7d-0e1f2a3b4c5d", "a.png", pngImage(t, 8, 8), nil), http.StatusNotFound, "not_found")

			if got := a.productImages(t, "", p.ID); len(got) != 0 {
				t.Fatalf("refused uploads left %d images", len(got))
			}
			// Just under the limit is fine: random pixels do not compress.
			noise := image.NewNRGBA(image.Rect(0, 0, 1100, 1100))
			_, _ = rand.Read(noise.Pix)
			var near bytes.Buffer
			if err := png.Encode(&near, noise); err != nil {
				t.Fatal(err)
			}
			if near.Len() > images.MaxBytes || near.Len() < images.MaxBytes-(512<<10) {
				t.Fatalf("the near-limit PNG is %d bytes", near.Len())
			}
			a.upload(t, admin, p.ID, "near.png", near.Bytes(), nil).want(t, http.StatusCreated)
			// Ten images, then a 409.
			for i := range 9 {
				a.upload(t, admin, p.ID, "a.png", pngImage(t, 8+i, 8), nil).want(t, http.StatusCreated)
			}
			problem(a.upload(t, admin, p.ID, "a.png", pngImage(t, 8, 8), nil), http.StatusConflict, "conflict")
			if got := a.productImages(t, "", p.ID); len(got) != 10 {
				t.Fatalf("%d images after an 11th upload, want 10", len(got))
			}
		})
	}
}

// countingReader yields n bytes of a PNG-looking stream and counts what
// was taken from it.
type countingReader struct {
	left, read atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	left := r.left.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), left)
	r.left.Add(-n)
	r.read.Add(n)
	return int(n), nil
}

// TestImageUploadRefusedWhileReading: a body of unknown length (chunked)
// that would be 100 MiB gets 413 once it passes the limit; the server
// stops reading there (counted on its connections). The request goes over
// a raw connection, so the answer is read whatever happens to the rest of
// the body.
func TestImageUploadRefusedWhileReading(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	p := shoptest.Product(t.Context(), t, a.Store, nil)
	head, ct := uploadForm(t, "huge.png", "image/png", pngImage(t, 8, 8), nil)
	// The form without its closing boundary, then endless bytes.
	head = head[:bytes.LastIndex(head, []byte("\r\n--"))]
	src := &countingReader{}
	const total = 100 << 20
	src.left.Store(total)
	u, err := url.Parse(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := a.request(t, http.MethodPost, "/v1/products/"+p.ID+"/images", admin, nil)
	req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(head), src))
	req.ContentLength = -1 // chunked: the server cannot refuse by the header
	req.Header.Set("Content-Type", ct)
	go func() { _ = req.Write(conn) }() // stops when the server closes
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413: %s", res.StatusCode, body)
	}
	if !strings.Contains(string(body), "payload_too_large") {
		t.Errorf("body %s, want a payload_too_large problem", body)
	}
	conn.Close()
	// What the server read: the limit, what Go's server drains after an
	// unread body (256 KiB) and this test's other small requests; the
	// client's count adds what the kernel's socket buffers took.
	read, sent := a.ServerRead.Load(), src.read.Load()
	t.Logf("the server read %.2f MiB (the client had written %.2f MiB of the 100) when the 413 came",
		float64(read)/(1<<20), float64(sent)/(1<<20))
	if read > images.MaxBytes+1<<20 {
		t.Errorf("the server read %d bytes, past the %d-byte limit", read, images.MaxBytes)
	}
	if got := a.productImages(t, "", p.ID); len(got) != 0 {
		t.Errorf("a refused upload left %d images", len(got))
	}
}

// TestConcurrentImageUploads: uploads racing for the last places never
// pass ten images nor share a position.
func TestConcurrentImageUploads(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	p := shoptest.Product(t.Context(), t, a.Store, nil)
	const n = 14
	statuses := make([]int, n)
	data := pngImage(t, 16, 16)
	shoptest.Concurrently(t, n, 30*time.Second, func(i int) {
		body, ct := uploadForm(t, "a.png", "image/png", data, nil)
		req := a.request(t, http.MethodPost, "/v1/products/"+p.ID+"/images", admin, body)
		req.Header.Set("Content-Type", ct)
		r, err := a.roundTrip(t, req)
		if err != nil {
			t.Error(err)
			return
		}
		statuses[i] = r.status
	})
	created, conflicts := 0, 0
	for _, s := range statuses {
		switch s {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
			conflicts++
		}
	}
	if created != 10 || conflicts != n-10 {
		t.Errorf("%d created and %d conflicts (statuses %v), want 10 and %d", created, conflicts, statuses, n-10)
	}
	got := a.productImages(t, "", p.ID)
	seen := map[int32]bool{}
	for _, g := range got {
		if seen[g.Position] || g.Position < 0 || g.Position >= 10 {
			t.Errorf("position %d repeated or out of range", g.Position)
		}
		seen[g.Position] = true
	}
	if len(got) != 10 {
		t.Errorf("%d images, want 10", len(got))
	}
}

// TestImageURLSignatures: the file store's URLs serve with the right
// headers, and a tampered, foreign or expired signature is a 403.
func TestImageURLSignatures(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	p := shoptest.Product(t.Context(), t, a.Store, nil)
	data := jpegImage(t, 40, 30)
	var img gen.ProductImage
	a.upload(t, admin, p.ID, "a.jpg", data, nil).want(t, http.StatusCreated).decode(t, &img)
	if !strings.HasPrefix(img.Url, a.URL+"/v1/images?") {
		t.Fatalf("url %s is not on the API's own image route", img.Url)
	}
	f := a.fetch(t, img.Url)
	if f.status != http.StatusOK || !bytes.Equal(f.body, data) {
		t.Fatalf("signed URL answered %d with %d bytes", f.status, len(f.body))
	}
	maxAge, err := strconv.Atoi(strings.TrimPrefix(f.header.Get("Cache-Control"), "private, max-age="))
	if err != nil || maxAge <= 0 || maxAge > int((images.DefaultTTL+images.DefaultTTL/12)/time.Second) {
		t.Errorf("Cache-Control %q, want private with the URL's seconds left", f.header.Get("Cache-Control"))
	}
	if etag := f.header.Get("ETag"); len(etag) != 34 {
		t.Errorf("ETag %q, want a quoted MD5", etag)
	}

	u, err := url.Parse(img.Url)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	signed := func(secret string, expiry time.Duration) string {
		s := fileblob.NewURLSignerHMAC(&url.URL{Scheme: "http", Host: u.Host, Path: "/v1/images"}, []byte(secret))
		su, err := s.URLFromKey(context.Background(), q.Get("obj"), &driver.SignedURLOptions{Expiry: expiry, Method: http.MethodGet})
		if err != nil {
			t.Fatal(err)
		}
		return su.String()
	}
	if f := a.fetch(t, signed(testImageSecret, time.Minute)); f.status != http.StatusOK {
		t.Fatalf("a URL signed with the server's secret answered %d", f.status)
	}
	tamper := func(key, value string) string {
		v := u.Query()
		v.Set(key, value)
		return a.URL + "/v1/images?" + v.Encode()
	}
	other := "products/" + p.ID + "/00000000-0000-4000-8000-000000000000"
	for name, bad := range map[string]string{
		"tampered signature": tamper("signature", flipFirst(q.Get("signature"))),
		"another object":     tamper("obj", other),
		"a later expiry":     tamper("expiry", strconv.FormatInt(time.Now().Add(48*time.Hour).Unix(), 10)),
		"foreign secret":     signed("some other server's secret, 32 bytes", time.Minute),
		"expired":            signed(testImageSecret, -time.Second),
	} {
		f := a.fetch(t, bad)
		if f.status != http.StatusForbidden || !strings.Contains(string(f.body), "/problems/forbidden") ||
			f.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s %s, want a 403 forbidden problem", name, f.status, f.header.Get("Content-Type"), f.body)
		}
	}
}

// flipFirst changes a base64url string's first character.
func flipFirst(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

// TestProductETagWithImages: the catalog's ETag changes with the images
// and stays put between reads (the signed URLs' expiry is rounded), so a
// revalidation still gets its 304.
func TestProductETagWithImages(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	p := shoptest.Product(t.Context(), t, a.Store, nil)
	etag := func() string {
		t.Helper()
		return a.do(t, http.MethodGet, "/v1/products/"+p.ID, "", nil).want(t, http.StatusOK).header.Get("ETag")
	}
	before := etag()
	a.upload(t, admin, p.ID, "a.png", pngImage(t, 20, 20), nil).want(t, http.StatusCreated)
	after := etag()
	if after == before {
		t.Fatal("the ETag did not change with a new image")
	}
	if again := etag(); again != after {
		t.Errorf("two reads of an unchanged product: ETags %s and %s", after, again)
	}
	req := a.request(t, http.MethodGet, "/v1/products/"+p.ID, "", nil)
	req.Header.Set("If-None-Match", after)
	a.send(t, req).want(t, http.StatusNotModified)
}

// TestThumbnailOfDeletedImage: the job copes with an image deleted before
// it runs: no error (so no retries) and no thumbnail left behind.
func TestThumbnailOfDeletedImage(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	p := shoptest.Product(t.Context(), t, a.Store, nil)
	var img gen.ProductImage
	a.upload(t, admin, p.ID, "a.png", pngImage(t, 500, 500), nil).want(t, http.StatusCreated).decode(t, &img)
	a.do(t, http.MethodDelete, "/v1/products/"+p.ID+"/images/"+img.Id, admin, nil).want(t, http.StatusNoContent)
	if err := a.Images.MakeThumbnail(t.Context(), img.Id); err != nil {
		t.Fatalf("thumbnail of a deleted image: %v, want nil", err)
	}
	u, err := a.Images.URL(t.Context(), "products/"+p.ID+"/"+img.Id+".thumb")
	if err != nil {
		t.Fatal(err)
	}
	if f := a.fetch(t, u); f.status != http.StatusNotFound {
		t.Errorf("a thumbnail was stored for a deleted image: %d", f.status)
	}
}
