// Package images keeps product images. It checks an upload (its type from
// the bytes, its size while it is read, its pixel count from the header
// before any pixel is decoded, then a full decode), stores the bytes in a
// gocloud.dev blob bucket (a local folder or S3), signs expiring URLs for
// them, serves the file store's signed URLs, and makes thumbnails in a
// background job inserted in the upload's own transaction.
package images

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	// The formats an upload may have, registered with image.Decode.
	_ "image/jpeg"
	_ "image/png"

	"github.com/gabriel-vasile/mimetype"
	"github.com/google/uuid"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/gcerrors"
	_ "golang.org/x/image/webp"

	// BLOB_URL=s3://... opens through blob.OpenBucket.
	_ "gocloud.dev/blob/s3blob"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/store"
)

// MaxBytes is the largest image accepted, in bytes.
const MaxBytes = 5 << 20

// MaxPixels is the most pixels an image may declare: a few hundred bytes
// can claim 50,000 x 50,000 pixels, which would take 10 GB to decode. A
// 40-megapixel photo decodes in about 60 MB (JPEG's YCbCr).
const MaxPixels = 40_000_000

// Path is the API's route that serves the file store's signed URLs.
const Path = "/v1/images"

// DefaultTTL is how long a signed URL stays valid by default.
const DefaultTTL = time.Hour

// The accepted types, as recognised from the bytes.
const (
	JPEG = "image/jpeg"
	PNG  = "image/png"
	WebP = "image/webp"
)

// Config is what a Service is built from.
type Config struct {
	// BlobURL is the bucket: file:///absolute/dir (created when missing)
	// or s3://bucket?region=...&endpoint=...&use_path_style=true.
	BlobURL string
	// Bucket, when set, is used instead of opening BlobURL; it is closed
	// with the Service.
	Bucket *blob.Bucket
	// PublicURL is the API's public base URL: the file store's signed URLs
	// point at PublicURL + Path. Never a request's Host header.
	PublicURL string
	// Secret signs the file store's URLs; every instance needs the same.
	Secret []byte
	// TTL is how long a signed URL is valid (0: DefaultTTL).
	TTL   time.Duration
	Store *store.Store
	Log   *slog.Logger
}

// Service stores, signs, serves and thumbnails product images.
type Service struct {
	bucket *blob.Bucket
	// signer signs and checks the URLs of GET /v1/images. With an S3
	// bucket the bucket presigns instead, and signer only checks.
	signer *fileblob.URLSignerHMAC
	ttl    time.Duration
	store  *store.Store
	jobs   JobInserter
	log    *slog.Logger
}

// Open opens the bucket of cfg. Close the Service when done.
func Open(ctx context.Context, cfg Config) (*Service, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("images: a URL signing secret is required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	base, err := url.Parse(strings.TrimRight(cfg.PublicURL, "/") + Path)
	if err != nil {
		return nil, fmt.Errorf("images: public URL: %w", err)
	}
	signer := fileblob.NewURLSignerHMAC(base, cfg.Secret)
	s := &Service{signer: signer, ttl: cfg.TTL, store: cfg.Store, log: cfg.Log, bucket: cfg.Bucket}
	if s.bucket != nil {
		return s, nil
	}
	u, err := url.Parse(cfg.BlobURL)
	if err != nil {
		return nil, fmt.Errorf("images: BLOB_URL: %w", err)
	}
	switch u.Scheme {
	case "file":
		// Temporary files beside the blobs: os.TempDir may be another
		// mount (a container's volume), where the final rename fails.
		s.bucket, err = fileblob.OpenBucket(u.Path, &fileblob.Options{
			URLSigner: signer, CreateDir: true, DirFileMode: 0o750, NoTempDir: true,
		})
	case "s3":
		s.bucket, err = blob.OpenBucket(ctx, cfg.BlobURL)
	default:
		return nil, fmt.Errorf("images: BLOB_URL %q: want file:///dir or s3://bucket", cfg.BlobURL)
	}
	if err != nil {
		return nil, fmt.Errorf("images: open bucket: %w", err)
	}
	return s, nil
}

// OpenFileStore is a Service on a local folder, as BLOB_URL=file://dir.
func OpenFileStore(ctx context.Context, dir string, cfg Config) (*Service, error) {
	cfg.BlobURL = (&url.URL{Scheme: "file", Path: dir}).String()
	return Open(ctx, cfg)
}

// Close closes the bucket.
func (s *Service) Close() error { return s.bucket.Close() }

// DeriveSecret is the default URL signing secret: an HMAC of a fixed label
// keyed with the JWT signing key, so instances that share the key (as they
// must) share the secret, and nothing new needs configuring.
func DeriveSecret(key *ecdsa.PrivateKey) ([]byte, error) {
	b, err := key.Bytes()
	if err != nil {
		return nil, fmt.Errorf("derive image URL secret: %w", err)
	}
	m := hmac.New(sha256.New, b)
	m.Write([]byte("shopd image URL signing key v1"))
	return m.Sum(nil), nil
}

// checked is what an upload turned out to be.
type checked struct {
	contentType   string
	width, height int
	img           image.Image
}

// check recognises data's type from its bytes and decodes it: EUnsupportedMedia
// for anything but JPEG, PNG and WebP, EInvalid for an image over MaxPixels
// (judged from its header, before decoding) or one that does not decode.
func check(data []byte) (checked, error) {
	ct := mimetype.Detect(data).String()
	switch ct {
	case JPEG, PNG, WebP:
	default:
		return checked{}, &shopd.Error{Code: shopd.EUnsupportedMedia, Field: "file",
			Message: fmt.Sprintf("The file is %s; only JPEG, PNG and WebP images are accepted.", strings.SplitN(ct, ";", 2)[0])}
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return checked{}, shopd.FieldError("file", "The file looks like %s but its header does not decode.", ct)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return checked{}, shopd.FieldError("file", "The image declares %d x %d pixels; at most %d megapixels are accepted.",
			cfg.Width, cfg.Height, MaxPixels/1_000_000)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return checked{}, shopd.FieldError("file", "The file looks like %s but does not decode.", ct)
	}
	return checked{contentType: ct, width: cfg.Width, height: cfg.Height, img: img}, nil
}

// ReadFile reads an uploaded file to its end, or fails with
// EPayloadTooLarge as soon as it passes MaxBytes: nothing past the limit is
// read, and what is read is held once.
func ReadFile(r io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return nil, err
	}
	if n > MaxBytes {
		return nil, shopd.Errorf(shopd.EPayloadTooLarge, "The image is over %d MiB.", MaxBytes>>20)
	}
	return buf.Bytes(), nil
}

// Upload checks an uploaded file (read with ReadFile): EUnsupportedMedia
// unless its bytes are a JPEG, PNG or WebP image, EInvalid when it
// declares over MaxPixels or does not decode. It stores the bytes and
// appends the image to the product's images with its thumbnail job, in one
// transaction: ENotFound for an unknown product, EConflict when it has
// store.MaxProductImages already.
func (s *Service) Upload(ctx context.Context, productID string, data []byte, alt string) (store.ProductImage, error) {
	if len(data) == 0 {
		return store.ProductImage{}, shopd.FieldError("file", "The file is empty.")
	}
	c, err := check(data)
	if err != nil {
		return store.ProductImage{}, err
	}
	id := uuid.NewString()
	key := "products/" + productID + "/" + id
	if err := s.bucket.WriteAll(ctx, key, data, &blob.WriterOptions{ContentType: c.contentType}); err != nil {
		return store.ProductImage{}, fmt.Errorf("store image: %w", err)
	}
	img, err := s.store.AddProductImage(ctx, store.NewProductImage{
		ID: id, ProductID: productID, BlobKey: key, ContentType: c.contentType,
		Width: c.width, Height: c.height, ByteSize: len(data), Alt: alt,
	}, s.scheduleThumbnail(ctx, id))
	if err != nil {
		s.remove(context.WithoutCancel(ctx), key)
		return store.ProductImage{}, err
	}
	return img, nil
}

// Delete deletes an image with its bytes and its thumbnail. ENotFound for
// an unknown product or image.
func (s *Service) Delete(ctx context.Context, productID, imageID string) error {
	img, err := s.store.DeleteProductImage(ctx, productID, imageID)
	if err != nil {
		return err
	}
	// The row is gone, so no URL is signed for these keys any more; the
	// bytes go now, so the URLs already out stop serving.
	ctx = context.WithoutCancel(ctx)
	s.remove(ctx, img.BlobKey)
	if img.ThumbnailKey != nil {
		s.remove(ctx, *img.ThumbnailKey)
	}
	return nil
}

// remove deletes a blob; one already gone is no error. A failure is
// logged: the row that pointed at it is gone, so nothing serves it.
func (s *Service) remove(ctx context.Context, key string) {
	if err := s.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		s.log.Error("delete image blob", "key", key, "err", err)
	}
}

// URL is a signed URL for key that stays valid for at least the TTL. The
// expiry is rounded up to a twelfth of the TTL, so the file store's URLs
// (and the catalog's ETags, which hash them) stay the same for minutes at a
// time instead of changing every second.
func (s *Service) URL(ctx context.Context, key string) (string, error) {
	now := time.Now()
	expiry := s.urlExpiry(now)
	u, err := s.bucket.SignedURL(ctx, key, &blob.SignedURLOptions{Expiry: expiry.Sub(now), Method: "GET"})
	if err != nil {
		return "", fmt.Errorf("sign image URL: %w", err)
	}
	return u, nil
}

// urlExpiry is the expiry of the URLs made at now: now + TTL, rounded up
// to a twelfth of the TTL.
func (s *Service) urlExpiry(now time.Time) time.Time {
	step := max(s.ttl/12, time.Second)
	return now.Add(s.ttl).Truncate(step).Add(step)
}

// URLsStableUntil is when URL, called at now or later, starts giving a
// later expiry than it gives at now: until then a product's answer (and
// its ETag) stays the same for the file store's URLs, and every URL made
// from now on is valid at least until then plus the TTL less a twelfth.
func (s *Service) URLsStableUntil(now time.Time) time.Time {
	return s.urlExpiry(now).Add(-s.ttl)
}

// Object is an image's bytes as the file store serves them.
type Object struct {
	io.ReadCloser
	ContentType string
	Size        int64
	// ETag is a strong validator of the bytes, quoted.
	ETag string
	// Expires is when the URL that asked for it expires.
	Expires time.Time
}

// errForbidden is the answer to any URL that is not one of ours, unexpired.
var errForbidden = shopd.Errorf(shopd.EForbidden, "The image URL is invalid or has expired; fetch the product again for a fresh one.")

// OpenSigned opens the object a signed URL's query names: EForbidden when
// the signature is not ours or has expired, ENotFound when the image has
// been deleted. Close the Object.
func (s *Service) OpenSigned(ctx context.Context, query url.Values) (*Object, error) {
	key, err := s.signer.KeyFromURL(ctx, &url.URL{RawQuery: query.Encode()})
	if err != nil {
		return nil, errForbidden
	}
	// KeyFromURL has parsed it already.
	sec, _ := strconv.ParseInt(query.Get("expiry"), 10, 64)
	attrs, err := s.bucket.Attributes(ctx, key)
	if err != nil {
		return nil, notFoundOr(err)
	}
	r, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		return nil, notFoundOr(err)
	}
	return &Object{ReadCloser: r, ContentType: r.ContentType(), Size: r.Size(),
		ETag: fmt.Sprintf(`"%x"`, attrs.MD5), Expires: time.Unix(sec, 0)}, nil
}

func notFoundOr(err error) error {
	if gcerrors.Code(err) == gcerrors.NotFound {
		return shopd.Errorf(shopd.ENotFound, "The image no longer exists.")
	}
	return fmt.Errorf("open image: %w", err)
}
