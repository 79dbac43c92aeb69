package handlers

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/oapi-codegen/nullable"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/images"
	"github.com/shopd/shopd/internal/jsoncheck"
	"github.com/shopd/shopd/store"
)

// uploadRoute is the image upload, as Echo names its route: its body is
// streamed (a multipart form of up to 5 MiB), not read by the validator.
const uploadRoute = "/v1/products/:productId/images"

// maxAltLength is the most characters an image's alt text has (the spec's).
const maxAltLength = 500

// maxUploadBodyBytes bounds an upload's whole body: the image, its alt
// text and the multipart framing. The image itself is held to
// images.MaxBytes while it is read.
const maxUploadBodyBytes = images.MaxBytes + 64<<10

func isUpload(c echo.Context) bool {
	return c.Request().Method == http.MethodPost && c.Path() == uploadRoute
}

// bodyLimits answers 413 to a body over its route's limit before it is
// read, and stops one that turns out longer while it is read: 1 MiB, an
// image upload 5 MiB and a little.
func bodyLimits() []echo.MiddlewareFunc {
	return []echo.MiddlewareFunc{
		middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: maxBodyBytes, Skipper: isUpload}),
		middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{
			Limit:   strconv.Itoa(maxUploadBodyBytes) + "B",
			Skipper: func(c echo.Context) bool { return !isUpload(c) },
		}),
	}
}

// streamedBodies sends the upload through the validator that checks its
// token and parameters but leaves its body alone (kin-openapi would read it
// all into memory, and decode every part, before the handler saw a byte),
// after checking that it is a multipart form; everything else goes through
// the full validator.
func streamedBodies(full, bodyless echo.MiddlewareFunc) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		withBody, withoutBody := full(next), bodyless(func(c echo.Context) error {
			mt, params, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
			if err != nil || mt != echo.MIMEMultipartForm {
				return shopd.Errorf(shopd.EUnsupportedMedia, "Upload the image as multipart/form-data with a part named file.")
			}
			if params["boundary"] == "" {
				return shopd.FieldError("body", "The multipart/form-data Content-Type has no boundary.")
			}
			return next(c)
		})
		return func(c echo.Context) error {
			if isUpload(c) {
				return withoutBody(c)
			}
			return withBody(c)
		}
	}
}

// UploadProductImage reads the form's parts as they arrive: the file is
// read once, into memory, up to images.MaxBytes; then it is checked,
// stored and appended to the product's images.
func (s *Server) UploadProductImage(ctx context.Context, req gen.UploadProductImageRequestObject) (gen.UploadProductImageResponseObject, error) {
	var data []byte
	var alt string
	seen := map[string]bool{}
	for {
		part, err := req.Body.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, uploadReadError(err)
		}
		name := part.FormName()
		if seen[name] {
			return nil, shopd.FieldError(name, "Send this part once.")
		}
		seen[name] = true
		switch name {
		case "file":
			if data, err = images.ReadFile(part); err != nil {
				return nil, uploadReadError(err)
			}
		case "alt":
			if alt, err = readAlt(part); err != nil {
				return nil, uploadReadError(err)
			}
		default:
			return nil, shopd.FieldError(name, "Unknown part: the form has a part file and an optional part alt.")
		}
	}
	if !seen["file"] {
		return nil, shopd.FieldError("file", "The form has no part named file.")
	}
	img, err := s.images.Upload(ctx, req.ProductId, data, alt)
	if err != nil {
		return nil, err
	}
	out, err := s.toAPIProductImage(ctx, img)
	if err != nil {
		return nil, err
	}
	return gen.UploadProductImage201JSONResponse(out), nil
}

// readAlt reads an alt text part: at most maxAltLength characters of
// UTF-8 without NUL.
func readAlt(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxAltLength*utf8.UTFMax+1))
	if err != nil {
		return "", err
	}
	switch {
	case !utf8.Valid(b):
		return "", shopd.FieldError("alt", "Must be UTF-8 text.")
	case utf8.RuneCount(b) > maxAltLength:
		return "", shopd.FieldError("alt", "At most %d characters.", maxAltLength)
	case strings.IndexByte(string(b), 0) >= 0:
		return "", shopd.FieldError("alt", jsoncheck.NULMessage)
	}
	return string(b), nil
}

// uploadReadError keeps what a client can act on (the body limit's 413,
// our own errors) and calls anything else a malformed form.
func uploadReadError(err error) error {
	var he *echo.HTTPError
	var de *shopd.Error
	if errors.As(err, &he) || errors.As(err, &de) {
		return err
	}
	return shopd.FieldError("body", "The multipart/form-data body is malformed.")
}

// UpdateProductImage changes an image's alt text or position.
func (s *Server) UpdateProductImage(ctx context.Context, req gen.UpdateProductImageRequestObject) (gen.UpdateProductImageResponseObject, error) {
	patch := store.ProductImagePatch{Alt: req.Body.Alt}
	if req.Body.Position != nil {
		p := int(*req.Body.Position)
		patch.Position = &p
	}
	img, err := s.store.UpdateProductImage(ctx, req.ProductId, req.ImageId, patch)
	if err != nil {
		return nil, err
	}
	out, err := s.toAPIProductImage(ctx, img)
	if err != nil {
		return nil, err
	}
	return gen.UpdateProductImage200JSONResponse(out), nil
}

// DeleteProductImage deletes an image with its bytes and thumbnail.
func (s *Server) DeleteProductImage(ctx context.Context, req gen.DeleteProductImageRequestObject) (gen.DeleteProductImageResponseObject, error) {
	if err := s.images.Delete(ctx, req.ProductId, req.ImageId); err != nil {
		return nil, err
	}
	return gen.DeleteProductImage204Response{}, nil
}

// GetImage serves the file store's signed URLs; the signature is the
// permission, so it needs no token.
func (s *Server) GetImage(ctx context.Context, req gen.GetImageRequestObject) (gen.GetImageResponseObject, error) {
	p := req.Params
	q := url.Values{}
	q.Set("obj", p.Obj)
	q.Set("expiry", strconv.FormatInt(p.Expiry, 10))
	q.Set("method", string(p.Method))
	q.Set("signature", p.Signature)
	obj, err := s.images.OpenSigned(ctx, q)
	if err != nil {
		return nil, err
	}
	if ec := echoContext(ctx); ec != nil {
		h := ec.Response().Header()
		h.Set("ETag", obj.ETag)
		left := max(time.Until(obj.Expires)/time.Second, 0)
		h.Set(echo.HeaderCacheControl, "private, max-age="+strconv.FormatInt(int64(left), 10))
		h.Set(echo.HeaderXContentTypeOptions, "nosniff")
	}
	switch obj.ContentType {
	case images.JPEG:
		return gen.GetImage200ImagejpegResponse{Body: obj, ContentLength: obj.Size}, nil
	case images.PNG:
		return gen.GetImage200ImagepngResponse{Body: obj, ContentLength: obj.Size}, nil
	case images.WebP:
		return gen.GetImage200ImagewebpResponse{Body: obj, ContentLength: obj.Size}, nil
	}
	obj.Close()
	return nil, errors.New("get image: stored with content type " + obj.ContentType)
}

// toAPIProductImage signs an image's URLs.
func (s *Server) toAPIProductImage(ctx context.Context, img store.ProductImage) (gen.ProductImage, error) {
	u, err := s.images.URL(ctx, img.BlobKey)
	if err != nil {
		return gen.ProductImage{}, err
	}
	thumb := nullable.NewNullNullable[string]()
	if img.ThumbnailKey != nil {
		t, err := s.images.URL(ctx, *img.ThumbnailKey)
		if err != nil {
			return gen.ProductImage{}, err
		}
		thumb.Set(t)
	}
	return gen.ProductImage{
		Id:           img.ID,
		Url:          u,
		ThumbnailUrl: thumb,
		Alt:          img.Alt,
		Width:        int32(img.Width),
		Height:       int32(img.Height),
		ContentType:  gen.ProductImageContentType(img.ContentType),
		Position:     int32(img.Position),
	}, nil
}

// toAPIProducts renders products with their images (one query for all),
// cost prices for admins only.
func (s *Server) toAPIProducts(ctx context.Context, ps []store.Product, admin bool) ([]gen.Product, error) {
	// One query for the images of the products read without them.
	var ids []string
	for _, p := range ps {
		if !p.Images.Loaded {
			ids = append(ids, p.ID)
		}
	}
	imgs := map[string][]store.ProductImage{}
	if len(ids) > 0 {
		var err error
		if imgs, err = s.store.ProductImages(ctx, ids...); err != nil {
			return nil, err
		}
	}
	out := make([]gen.Product, len(ps))
	for i, p := range ps {
		list := imgs[p.ID]
		if p.Images.Loaded {
			list = p.Images.Items
		}
		api := make([]gen.ProductImage, len(list))
		for j, img := range list {
			var err error
			if api[j], err = s.toAPIProductImage(ctx, img); err != nil {
				return nil, err
			}
		}
		out[i] = toAPIProduct(p, admin, api)
	}
	return out, nil
}

// toAPIProductWithImages renders one product with its images.
func (s *Server) toAPIProductWithImages(ctx context.Context, p store.Product, admin bool) (gen.Product, error) {
	out, err := s.toAPIProducts(ctx, []store.Product{p}, admin)
	if err != nil {
		return gen.Product{}, err
	}
	return out[0], nil
}

// cartImageURL is a cart line's imageUrl: the first image's thumbnail, or
// the image itself while it has none.
func (s *Server) cartImageURL(ctx context.Context, l store.CartLine) (nullable.Nullable[string], error) {
	key := l.ImageThumbnailKey
	if key == nil {
		key = l.ImageKey
	}
	if key == nil {
		return nullable.NewNullNullable[string](), nil
	}
	u, err := s.images.URL(ctx, *key)
	if err != nil {
		return nil, err
	}
	return nullable.NewNullableWithValue(u), nil
}
