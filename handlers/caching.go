package handlers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// catalogReadRoutes are the catalog reads the HTTP cache headers apply to,
// as Echo names their routes.
var catalogReadRoutes = map[string]bool{
	"/v1/products":            true,
	"/v1/products/:productId": true,
}

// Cache-Control of catalog reads. A shared cache (CDN) may keep an
// anonymous read for 30 s and serve it for 30 s more while it revalidates,
// so a product's page can show a price or stock up to a minute old. That is
// safe because nothing downstream trusts it: the cart prices every line at
// the current catalog price, and checkout reserves stock with a conditional
// UPDATE (stock >= quantity) in its own transaction, so a stale "in stock"
// ends at worst in a 409 at checkout, never in an oversold or mispriced
// order. A signed-in read is never stored by anyone but the client: an
// admin's carries cost prices and archived products.
const (
	publicCatalogCacheControl  = "public, max-age=30, stale-while-revalidate=30"
	privateCatalogCacheControl = "private, no-store"
)

// Products carry signed image URLs that expire; the ETag, a hash of the
// body, changes with them. images.Service.URL rounds the expiry up to a
// twelfth of the TTL, so the file store's URLs (and the ETag) hold still
// for minutes and a revalidation gets its 304; every URL stays valid far
// longer than the 60 s a shared cache may keep the body.

// catalogCaching gives the catalog reads a strong ETag (a SHA-256 of the
// body), answers If-None-Match with the current one by 304 and no body, and
// sets Cache-Control and Vary. Vary: Authorization is on every answer, public
// or not, so a shared cache keys on the header and never gives an
// anonymous caller a response made for a token. Other routes and methods,
// and every answer but a 200, pass through untouched.
func catalogCaching(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.Method != http.MethodGet || !catalogReadRoutes[c.Path()] {
			return next(c)
		}
		res := c.Response()
		original := res.Writer
		buf := &bufferedWriter{header: original.Header()}
		res.Writer = buf
		err := next(c)
		res.Writer = original
		if err != nil || buf.status != http.StatusOK {
			// Not a cacheable answer: send it as it was written, if it was.
			if buf.status != 0 {
				original.WriteHeader(buf.status)
				_, _ = original.Write(buf.body.Bytes())
			}
			return err
		}
		sum := sha256.Sum256(buf.body.Bytes())
		etag := `"` + hex.EncodeToString(sum[:]) + `"`
		h := original.Header()
		h.Set("ETag", etag)
		h.Add(echo.HeaderVary, echo.HeaderAuthorization)
		if req.Header.Get(echo.HeaderAuthorization) != "" {
			h.Set(echo.HeaderCacheControl, privateCatalogCacheControl)
		} else {
			h.Set(echo.HeaderCacheControl, publicCatalogCacheControl)
		}
		if etagMatches(req.Header.Get("If-None-Match"), etag) {
			h.Del(echo.HeaderContentType)
			h.Del(echo.HeaderContentLength)
			res.Status = http.StatusNotModified // for the access log and metrics
			original.WriteHeader(http.StatusNotModified)
			return nil
		}
		original.WriteHeader(http.StatusOK)
		if _, err := original.Write(buf.body.Bytes()); err != nil {
			return nil // the client went away; nothing left to tell it
		}
		return nil
	}
}

// etagMatches reports whether an If-None-Match value names etag: "*" or a
// list of entity tags, compared weakly as RFC 9110 13.1.2 requires (a
// client may echo our tag with W/ after a proxy weakened it).
func etagMatches(ifNoneMatch, etag string) bool {
	if ifNoneMatch == "" {
		return false
	}
	for tag := range strings.SplitSeq(ifNoneMatch, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}

// bufferedWriter holds a response back until its ETag is known.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferedWriter) Header() http.Header { return w.header }

func (w *bufferedWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *bufferedWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}
