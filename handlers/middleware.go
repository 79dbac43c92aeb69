package handlers

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/jsoncheck"
)

// metrics are the server's Prometheus instruments.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "HTTP request latency by method, route and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route", "status"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// observe logs one structured line per request and records its metrics. It
// runs inside the request-id middleware and outside Recover, so it sees the
// final status of errors and panics too.
func observe(log *slog.Logger, m *metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				// Write the problem now so the status below is the real one.
				c.Error(err)
			}
			res := c.Response()
			method, route := methodLabel(c.Request().Method), routeLabel(c)
			status := strconv.Itoa(res.Status)
			elapsed := time.Since(start)
			m.requests.WithLabelValues(method, route, status).Inc()
			m.latency.WithLabelValues(method, route, status).Observe(elapsed.Seconds())
			log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
				slog.String("request_id", res.Header().Get(echo.HeaderXRequestID)),
				slog.String("method", method),
				slog.String("route", route),
				// The path, never the query: a stream's ?streamToken= is a
				// credential and must not reach a log line.
				slog.String("path", c.Request().URL.Path),
				slog.Int("status", res.Status),
				slog.Int64("bytes", res.Size),
				slog.Float64("latency_ms", float64(elapsed.Microseconds())/1000),
				slog.String("ip", c.RealIP()),
			)
			return nil
		}
	}
}

// knownMethods label metrics as themselves. A client may send any token
// as a method; each would otherwise be a new series, kept for good.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
	http.MethodConnect: true, http.MethodTrace: true,
}

// methodLabel is the method's metrics label: itself when known, else OTHER.
func methodLabel(method string) string {
	if knownMethods[method] {
		return method
	}
	return "OTHER"
}

// routeLabel is the route's metrics label: the template of the route the
// router matched (a fixed set: Echo sets no other path), or one value for
// every path it did not.
func routeLabel(c echo.Context) string {
	if r := c.Path(); r != "" {
		return r
	}
	return "unmatched"
}

// requireBearer guards a route with a fixed bearer token; an empty token
// leaves it open. Both sides are hashed first so that the comparison takes
// the same time whatever the length of the guess.
func requireBearer(token string) echo.MiddlewareFunc {
	want := sha256.Sum256([]byte(token))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if token == "" {
			return next
		}
		return func(c echo.Context) error {
			scheme, cred, _ := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
			got := sha256.Sum256([]byte(cred))
			if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				return shopd.Errorf(shopd.EUnauthorized, "This endpoint requires its bearer token.")
			}
			return next(c)
		}
	}
}

// maxFieldErrors caps the fields one problem names (the spec's maxItems).
const maxFieldErrors = 100

// checkText refuses what the validator cannot see and would reach the
// handlers: a NUL character in a query or path parameter or in any string
// of a JSON body (PostgreSQL refuses NUL in text: a 500 otherwise), and
// data after a JSON body's one value (the decoders ignore it). It runs
// before the validator, as the one place these are checked for every
// route. A request without a body and without an escaped NUL in its URL
// costs two substring scans. The webhook's body is checked after its
// signature (payments.ParseWebhook).
func checkText(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		var fields []fieldError
		if strings.Contains(req.URL.RawQuery, "%00") {
			fields = append(fields, nulQueryParams(c)...)
		}
		if strings.IndexByte(req.URL.Path, 0) >= 0 {
			fields = append(fields, nulPathParams(c)...)
		}
		if len(fields) == 0 && hasJSONBody(req) && c.Path() != webhookPath {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				return err // the body limit's 413, or a broken connection
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			if jsoncheck.TrailingData(body) {
				fields = append(fields, fieldError{Field: "body", Message: jsoncheck.TrailingMessage})
			}
			for _, f := range jsoncheck.NULFields(body) {
				if f == "" {
					f = "body"
				}
				fields = append(fields, fieldError{Field: f, Message: jsoncheck.NULMessage})
			}
		}
		if len(fields) == 0 {
			return next(c)
		}
		return &echo.HTTPError{Code: http.StatusBadRequest, Internal: &validationError{fields: fields[:min(len(fields), maxFieldErrors)]}}
	}
}

// nulQueryParams names the query parameters with a NUL in a value, sorted.
func nulQueryParams(c echo.Context) []fieldError {
	var out []fieldError
	for name, values := range c.QueryParams() {
		if slices.ContainsFunc(values, hasNUL) {
			out = append(out, fieldError{Field: name, Message: jsoncheck.NULMessage})
		}
	}
	slices.SortFunc(out, func(a, b fieldError) int { return strings.Compare(a.Field, b.Field) })
	return out
}

// nulPathParams names the path parameters with a NUL. Echo's values are
// raw when the path needed its escaped form; the generated server
// unescapes them, so they are checked unescaped.
func nulPathParams(c echo.Context) []fieldError {
	var out []fieldError
	values := c.ParamValues()
	for i, name := range c.ParamNames() {
		if i >= len(values) {
			break
		}
		v := values[i]
		if u, err := url.PathUnescape(v); err == nil {
			v = u
		}
		if hasNUL(v) {
			out = append(out, fieldError{Field: name, Message: jsoncheck.NULMessage})
		}
	}
	return out
}

func hasNUL(s string) bool { return strings.IndexByte(s, 0) >= 0 }

// hasJSONBody reports whether req declares a JSON body (application/json
// or any +json type); the validator refuses bodies of other types.
func hasJSONBody(req *http.Request) bool {
	if req.ContentLength == 0 || req.Body == nil || req.Body == http.NoBody {
		return false
	}
	mt, _, _ := strings.Cut(req.Header.Get(echo.HeaderContentType), ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == echo.MIMEApplicationJSON || strings.HasSuffix(mt, "+json")
}
