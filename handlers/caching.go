package handlers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/shopd/shopd/catalogcache"
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
//
// With a cache (nil: off), the public reads of a product or a page of
// products are answered from it when it has them (catalogcache says how
// fresh that is), and a write through this server drops what it may have
// changed before its answer goes out: whoever made a change reads it back
// from this instance at once.
func catalogCaching(cache *catalogcache.Cache, stableUntil func(time.Time) time.Time) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.Method != http.MethodGet {
				if cache != nil {
					invalidateOnAnswer(c, cache)
				}
				return next(c)
			}
			if !catalogReadRoutes[c.Path()] {
				return next(c)
			}
			var key catalogcache.Key
			cacheable := false
			if cache != nil {
				key, cacheable = cacheKey(c)
			}
			now := time.Now()
			if cacheable {
				if e, ok := cache.Get(key, now); ok {
					return answerCatalogRead(c, e.Body, e.ETag, e.ContentType)
				}
			}
			var ticket catalogcache.Ticket
			if cacheable {
				ticket = cache.Begin(key) // before the handler reads the database
			}
			res := c.Response()
			original := res.Writer
			buf := &bufferedWriter{header: original.Header()}
			res.Writer = buf
			// Deferred as well: a panic must leave the connection's writer
			// for Recover's 500 (it went into the buffer: an empty 200).
			defer func() { res.Writer = original }()
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
			contentType := original.Header().Get(echo.HeaderContentType)
			if cacheable {
				// The image URLs in it were signed after now: they hold
				// still at least until stableUntil(now).
				// A copy of its own size: the buffer may have grown past it,
				// and the memory bound counts the body's length.
				version, _ := c.Get(productVersionKey).(int64)
				cache.Put(ticket, catalogcache.Entry{Body: bytes.Clone(buf.body.Bytes()), ETag: etag, ContentType: contentType,
					ExpiresAt: stableUntil(now), Version: version})
			}
			return answerCatalogRead(c, buf.body.Bytes(), etag, contentType)
		}
	}
}

// answerCatalogRead sends a catalog read's 200 (or 304 for a matching
// If-None-Match) with its caching headers, straight to the connection's
// writer: the handler that made the body may have marked Echo's response
// written already.
func answerCatalogRead(c echo.Context, body []byte, etag, contentType string) error {
	req, res := c.Request(), c.Response()
	w := res.Writer
	h := w.Header()
	h.Set("ETag", etag)
	h.Add(echo.HeaderVary, echo.HeaderAuthorization)
	if req.Header.Get(echo.HeaderAuthorization) != "" {
		h.Set(echo.HeaderCacheControl, privateCatalogCacheControl)
	} else {
		h.Set(echo.HeaderCacheControl, publicCatalogCacheControl)
	}
	res.Committed = true
	if etagMatches(req.Header.Get("If-None-Match"), etag) {
		h.Del(echo.HeaderContentType)
		h.Del(echo.HeaderContentLength)
		res.Status = http.StatusNotModified // for the access log and metrics
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set(echo.HeaderContentType, contentType)
	res.Status = http.StatusOK
	w.WriteHeader(http.StatusOK)
	n, _ := w.Write(body) // a client that went away has nothing left to be told
	res.Size = int64(n)
	return nil
}

// cacheKey names a catalog read in the cache, if it may be kept there:
// not an admin's (it shows cost prices and archived products), not a
// search (each counts against the caller's quota), and a product by its
// canonical id only, the id change notifications carry. Any other caller
// reads the same answer, signed in or not.
func cacheKey(c echo.Context) (catalogcache.Key, bool) {
	if isAdmin(c.Request().Context()) {
		return catalogcache.Key{}, false
	}
	u := c.Request().URL
	if c.Path() == "/v1/products/:productId" {
		id := c.Param("productId")
		if u.RawQuery != "" || canonicalID(id) != id {
			return catalogcache.Key{}, false
		}
		return catalogcache.Key{Product: id}, true
	}
	if u.Query().Has("q") {
		return catalogcache.Key{}, false
	}
	return catalogcache.Key{List: u.RequestURI()}, true
}

// canonicalID is id as PostgreSQL writes a uuid, or "" if it is none.
func canonicalID(id string) string {
	u, err := uuid.Parse(id)
	if err != nil {
		return ""
	}
	return u.String()
}

// catalogNeutralWrites are the writes that change no product, stock or
// image, by method and Echo route: they leave the catalog cache alone.
// Every other write drops from it what it may have changed.
var catalogNeutralWrites = map[string]bool{
	"POST /v1/auth/login":                                true,
	"POST /v1/auth/register":                             true,
	"POST /v1/auth/stream-token":                         true,
	"POST /v1/cart/items":                                true,
	"PUT /v1/cart/items/:productId":                      true,
	"DELETE /v1/cart/items/:productId":                   true,
	"DELETE /v1/cart":                                    true,
	"PATCH /v1/me":                                       true,
	"POST /v1/me/addresses":                              true,
	"PATCH /v1/me/addresses/:addressId":                  true,
	"DELETE /v1/me/addresses/:addressId":                 true,
	"POST /v1/admin/notifications/:notificationId/retry": true,
}

// productVersionKey carries (in the Echo context) the version of the
// product a read answered, which the catalog cache orders reads by.
const productVersionKey = "shopd.productVersion"

// webhookVerifiedKey marks (in the Echo context) a webhook whose
// signature verified: the only ones that may change the catalog.
const webhookVerifiedKey = "shopd.webhookVerified"

// invalidateOnAnswer drops from the cache what the write may change, as
// its answer is about to be written (after its transaction committed):
// one product (and every list) for a product's routes, everything for the
// rest (checkout, cancellations, refunds, webhooks move stock of products
// the route does not name), but nothing for a webhook that did not verify.
// The change's notification drops it again, here and on every other
// instance.
func invalidateOnAnswer(c echo.Context, cache *catalogcache.Cache) {
	if catalogNeutralWrites[c.Request().Method+" "+c.Path()] {
		return
	}
	drop := cache.InvalidateAll
	if c.Path() == webhookPath {
		drop = func() {
			// Anyone can post here: only an event that verified may have
			// moved stock (an unsigned request emptied the cache at will).
			if verified, _ := c.Get(webhookVerifiedKey).(bool); verified {
				cache.InvalidateAll()
			}
		}
	}
	if strings.HasPrefix(c.Path(), "/v1/products") {
		drop = func() {
			if id := canonicalID(c.Param("productId")); id != "" {
				cache.Invalidate(id)
			} else {
				cache.InvalidateLists() // a new product
			}
		}
	}
	c.Response().Before(func() {
		if !refusedWrites[c.Response().Status] {
			drop()
		}
	})
}

// refusedWrites are the answers of a write refused before it did
// anything (no such thing, not allowed, too large, rate limited): they
// leave the cache alone, or any customer could empty it with a request per
// read (a cancel of an order that does not exist). Conflicts and failures
// are not among them: a checkout may have committed stock before its
// payment failed.
var refusedWrites = map[int]bool{
	http.StatusUnauthorized:          true,
	http.StatusForbidden:             true,
	http.StatusNotFound:              true,
	http.StatusMethodNotAllowed:      true,
	http.StatusRequestEntityTooLarge: true,
	http.StatusUnsupportedMediaType:  true,
	http.StatusTooManyRequests:       true,
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
