// Package handlers is the HTTP layer: it assembles the Echo server (body
// limit, request id, access log and metrics, the OpenAPI request validator
// with JWT authentication), implements the generated strict interface by
// translating between gen types and store calls, and maps every error to
// problem+json in one place.
package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"regexp"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/catalogcache"
	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/images"
	"github.com/shopd/shopd/live"
	"github.com/shopd/shopd/notify"
	"github.com/shopd/shopd/orders"
	"github.com/shopd/shopd/ratelimit"
	"github.com/shopd/shopd/store"
)

// Config is what the server is built from.
type Config struct {
	Store   *store.Store
	Tokens  *auth.Tokens
	Limiter ratelimit.Limiter
	Log     *slog.Logger
	// LoginFailuresPerMinute per email and client IP; 0 is unlimited.
	LoginFailuresPerMinute int
	// LoginFailuresPerIPPerMinute per client IP across all emails; 0 is unlimited.
	LoginFailuresPerIPPerMinute int
	// RegistrationsPerIPPerHour per client IP; 0 is unlimited.
	RegistrationsPerIPPerHour int
	// PublicURL is the API's base URL, the spec's only server; never taken
	// from a request's Host header.
	PublicURL string
	// MetricsToken, when set, is the bearer token /metrics requires.
	MetricsToken string
	// SearchesPerHour per client IP for ?q= searches; 0 is unlimited.
	SearchesPerHour int
	// Orders is the money path (checkout, cancel, refund, webhooks); nil
	// means one without payments, whose checkout answers 503.
	Orders *orders.Service
	// WebhookSecret verifies Stripe-Signature; empty refuses every webhook.
	WebhookSecret string
	// TrustedProxies are the load balancers whose X-Forwarded-For is
	// believed; without any, the peer address is the client.
	TrustedProxies []*net.IPNet
	// CORSOrigins may call the API from a browser ("*": any). Tokens travel
	// in the Authorization header, never cookies, so no credentials mode.
	CORSOrigins []string
	// Registry receives the metrics; nil means a new one.
	Registry *prometheus.Registry
	// Notifications is the outbox the admins look into; nil means a view
	// on the store's database that queues no sends.
	Notifications Notifications
	// Streams fans events out to the live streams; nil answers them 503.
	Streams *live.Hub
	// StreamHeartbeat is the interval of the streams' comment lines; 0
	// means live.DefaultHeartbeat.
	StreamHeartbeat time.Duration
	// Images stores, signs and serves product images; required.
	Images *images.Service
	// CatalogCache answers public catalog reads from memory; nil is off.
	CatalogCache *catalogcache.Cache
}

// Server implements the generated strict server interface.
type Server struct {
	store         *store.Store
	tokens        *auth.Tokens
	limiter       ratelimit.Limiter
	log           *slog.Logger
	loginLimit    ratelimit.Limit
	loginIPLimit  ratelimit.Limit
	registerLimit ratelimit.Limit
	searchLimit   ratelimit.Limit
	orders        *orders.Service
	webhookSecret string
	notifications Notifications
	authn         *auth.Authenticator
	streams       *live.Hub
	// streamHeartbeat is the streams' comment interval.
	streamHeartbeat time.Duration
	images          *images.Service
}

var _ gen.StrictServerInterface = (*Server)(nil)

// maxBodyBytes: larger bodies get 413 before they are read (an image
// upload has its own limit, maxUploadBodyBytes).
const maxBodyBytes = "1MiB" // not "1M": Echo reads that as 10^6

func init() {
	// kin-openapi checks no string formats unless they are registered.
	openapi3.DefineStringFormatValidator("email", openapi3.NewRegexpFormatValidator(`^[^@\s]+@[^@\s]+\.[^@\s]+$`))
	openapi3.DefineStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562))
}

// New builds the HTTP handler: the same one main serves and tests drive.
func New(cfg Config) (http.Handler, error) {
	if cfg.Images == nil {
		return nil, errors.New("handlers: Config.Images is required")
	}
	cfg = withDefaults(cfg)
	authn := auth.NewAuthenticator(auth.AuthenticatorConfig{Tokens: cfg.Tokens, Accounts: cfg.Store})
	validator, err := requestValidator(authn)
	if err != nil {
		return nil, err
	}
	specs, err := newSpecDocs(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	srv := newServer(cfg)
	srv.authn = authn
	e := newEcho(cfg)
	useMiddleware(e, cfg, validator)
	gen.RegisterHandlers(e, gen.NewStrictHandler(srv, nil))
	routesOutsideSpec(e, cfg, srv, specs)
	return e, nil
}

// withDefaults fills in what a Config may leave out.
func withDefaults(cfg Config) Config {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if cfg.Orders == nil {
		cfg.Orders = &orders.Service{Store: cfg.Store, Log: cfg.Log, Pricing: shopd.DefaultPricing, PaymentWindow: time.Hour}
	}
	if cfg.Notifications == nil {
		// Only errors on registering metrics, and it is given no registry.
		cfg.Notifications, _ = notify.New(notify.Config{DB: cfg.Store.DB(), Log: cfg.Log})
	}
	return cfg
}

func newServer(cfg Config) *Server {
	return &Server{
		store:           cfg.Store,
		tokens:          cfg.Tokens,
		limiter:         cfg.Limiter,
		log:             cfg.Log,
		loginLimit:      ratelimit.PerMinute(cfg.LoginFailuresPerMinute),
		loginIPLimit:    ratelimit.PerMinute(cfg.LoginFailuresPerIPPerMinute),
		registerLimit:   ratelimit.PerHour(cfg.RegistrationsPerIPPerHour),
		searchLimit:     ratelimit.PerHour(cfg.SearchesPerHour),
		orders:          cfg.Orders,
		webhookSecret:   cfg.WebhookSecret,
		notifications:   cfg.Notifications,
		streams:         cfg.Streams,
		streamHeartbeat: cfg.StreamHeartbeat,
		images:          cfg.Images,
	}
}

// newEcho is an Echo without routes: client IPs and error rendering set.
func newEcho(cfg Config) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// Trust no forwarding headers unless configured: the peer address is
	// the client. Echo's own defaults would trust any private address.
	e.IPExtractor = echo.ExtractIPDirect()
	if len(cfg.TrustedProxies) > 0 {
		trust := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range cfg.TrustedProxies {
			trust = append(trust, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(trust...)
	}
	e.HTTPErrorHandler = errorHandler(cfg.Log)
	return e
}

// requestValidator checks every spec operation's request against the spec
// and authenticates it (the JWT's claims go into the request context).
func requestValidator(authn *auth.Authenticator) (echo.MiddlewareFunc, error) {
	spec, err := gen.GetSpec()
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	// The validator must not match on the spec's server host.
	spec.Servers = nil
	v, err := newSpecValidator(spec, openapi3filter.Options{
		MultiError:         true,
		AuthenticationFunc: authn.Authenticate,
	}, validationProblem, outsideSpec)
	if err != nil {
		return nil, err
	}
	return streamedBodies(v.middleware, v.withoutBodies().middleware), nil
}

// useMiddleware sets the chain every request goes through, in order.
func useMiddleware(e *echo.Echo, cfg Config, validator echo.MiddlewareFunc) {
	e.Use(saneRequestID, middleware.RequestID())
	// Outside Recover, so a panic is logged and counted as the 500 it becomes.
	e.Use(observe(cfg.Log, newMetrics(cfg.Registry)))
	e.Use(middleware.Recover())
	// Before anything reads the body.
	e.Use(bodyLimits()...)
	e.Use(credentialBodyLimit)
	if len(cfg.CORSOrigins) > 0 {
		// Before the validator: preflight requests are answered here.
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins:  cfg.CORSOrigins,
			AllowMethods:  []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
			AllowHeaders:  []string{echo.HeaderAuthorization, echo.HeaderContentType, "Idempotency-Key", lastEventIDHeader},
			ExposeHeaders: []string{"Retry-After", echo.HeaderXRequestID},
			MaxAge:        600,
		}))
	}
	// Before the validator, which cannot see NULs or trailing data.
	e.Use(checkText)
	e.Use(validator)
	e.Use(auth.ClaimsMiddleware)
	e.Use(withEchoContext)
	e.Use(catalogCaching(cfg.CatalogCache, cfg.Images.URLsStableUntil))
}

// routesOutsideSpec adds the routes that are not API operations: the
// webhook (raw body), metrics, the spec and its UI.
func routesOutsideSpec(e *echo.Echo, cfg Config, srv *Server, specs specDocs) {
	e.POST(webhookPath, srv.stripeWebhook)
	e.GET(adminEventsRoute, srv.streamAdminEvents)
	e.GET(orderStreamRoute, srv.streamOrder)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})), requireBearer(cfg.MetricsToken))
	if cfg.MetricsToken != "" {
		// Profiles for `go tool pprof` (CPU, heap, goroutines), only behind
		// the metrics token: never open to anyone.
		e.GET("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(profiles)), requireBearer(cfg.MetricsToken))
	}
	e.GET("/openapi.yaml", func(c echo.Context) error { return c.Blob(http.StatusOK, "application/yaml", specs.yaml) })
	e.GET("/openapi.json", func(c echo.Context) error { return c.JSONBlob(http.StatusOK, specs.json) })
	docs := swaggerUI()
	e.GET("/docs", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/docs/") })
	e.GET("/docs/*", echo.WrapHandler(docs))
}

// profiles serves net/http/pprof's pages under /debug/pprof/.
func profiles(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
	case "profile":
		pprof.Profile(w, r)
	case "trace":
		pprof.Trace(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	default:
		pprof.Index(w, r) // the index, and heap, goroutine, allocs ... by name
	}
}

// requestIDPattern is what a client-supplied X-Request-Id may look like
// to be kept (for tracing across services); anything else is replaced, so
// logs and problem bodies never carry arbitrary client text.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

func saneRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header
		if id := h.Get(echo.HeaderXRequestID); id != "" && !requestIDPattern.MatchString(id) {
			h.Del(echo.HeaderXRequestID)
		}
		return next(c)
	}
}

// webhookPath is Stripe's route: a plain Echo route that reads its own
// raw body to verify the signature over it.
const webhookPath = "/v1/webhooks/stripe"

// outsideSpec lists the routes the validator skips: they are not API
// operations (or, for the webhook, read their own raw body; for the
// streams, authenticate themselves and stay open).
func outsideSpec(c echo.Context) bool {
	p := c.Request().URL.Path
	return p == "/metrics" || strings.HasPrefix(p, "/debug/pprof/") || p == "/openapi.yaml" || p == "/openapi.json" ||
		p == "/docs" || strings.HasPrefix(p, "/docs/") || p == webhookPath || isStreamRoute(c)
}

// specDocs is the spec as served, in YAML (as written) and JSON.
type specDocs struct{ yaml, json []byte }

// newSpecDocs renders the spec once, with publicURL as its only server (as
// written when empty): never a request's Host header, which anyone can
// forge to make "Try it out" send tokens elsewhere.
func newSpecDocs(publicURL string) (specDocs, error) {
	spec, err := gen.GetSpec()
	if err != nil {
		return specDocs{}, fmt.Errorf("load spec: %w", err)
	}
	docs := specDocs{yaml: shopd.OpenAPIYAML}
	if publicURL != "" {
		spec.Servers = openapi3.Servers{{URL: publicURL}}
		if docs.yaml, err = withServer(shopd.OpenAPIYAML, publicURL); err != nil {
			return specDocs{}, err
		}
	}
	if docs.json, err = json.Marshal(spec); err != nil {
		return specDocs{}, fmt.Errorf("encode spec: %w", err)
	}
	return docs, nil
}

// withServer replaces the top-level servers of a YAML spec with url alone,
// keeping every other byte (comments, order, layout) as written. A
// top-level entry of a block mapping runs until the next line that starts
// in column 0.
func withServer(doc []byte, url string) ([]byte, error) {
	lines := bytes.SplitAfter(doc, []byte("\n"))
	start, end := -1, len(lines)
	for i, l := range lines {
		if start < 0 {
			if bytes.HasPrefix(l, []byte("servers:")) {
				start = i
			}
			continue
		}
		if len(l) > 0 && l[0] != ' ' && l[0] != '\n' {
			end = i
			break
		}
	}
	if start < 0 {
		return nil, errors.New("set spec server: openapi.yaml has no top-level servers")
	}
	quoted, err := json.Marshal(url) // a JSON string is a YAML double-quoted scalar
	if err != nil {
		return nil, fmt.Errorf("set spec server: %w", err)
	}
	var out bytes.Buffer
	out.Write(bytes.Join(lines[:start], nil))
	fmt.Fprintf(&out, "servers:\n  - url: %s\n", quoted)
	out.Write(bytes.Join(lines[end:], nil))
	return out.Bytes(), nil
}

// claims returns the caller's verified claims. Operations that require a
// token never run without them; the error guards against a spec mistake.
func claims(ctx context.Context) (auth.Claims, error) {
	c, ok := auth.ClaimsFrom(ctx)
	if !ok {
		return auth.Claims{}, shopd.Errorf(shopd.EUnauthorized, "A bearer token is required.")
	}
	return c, nil
}

// clientIP is the caller's address as Echo's IP extractor sees it.
func clientIP(ctx context.Context) string {
	if ec := echoContext(ctx); ec != nil {
		return ec.RealIP()
	}
	return ""
}

type echoCtxKey struct{}

// withEchoContext makes the Echo context reachable from the strict
// handlers, which see only the request's context (for the client IP and
// response headers).
func withEchoContext(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		c.SetRequest(req.WithContext(context.WithValue(req.Context(), echoCtxKey{}, c)))
		return next(c)
	}
}

// echoContext returns the Echo context a strict handler runs in.
func echoContext(ctx context.Context) echo.Context {
	ec, _ := ctx.Value(echoCtxKey{}).(echo.Context)
	return ec
}
