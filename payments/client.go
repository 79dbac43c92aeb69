// Package payments is the shop's side of Stripe: PaymentIntents, customers,
// refunds and webhook verification, on stripe-go v76 (API version
// 2023-10-16). Callers never import stripe-go; every failure comes back as a
// *shopd.Error (unavailable, payment refused) or as an internal error.
package payments

import (
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// Config configures a Client.
type Config struct {
	// SecretKey is the Stripe secret (or restricted) key.
	SecretKey string
	// APIBase is the API's base URL; "" means Stripe's own. Tests and local
	// runs point it at stripe-mock or the stripefake double.
	APIBase string
	// HTTPClient carries the requests; nil means one with a 15 s timeout
	// that keeps up to maxIdleConns connections to Stripe open.
	HTTPClient *http.Client
	// MaxNetworkRetries is how often stripe-go retries a request that failed
	// in a way it knows to be safe to retry (network errors, 409, 503);
	// 0 means stripe-go's default (2), a negative number means none.
	MaxNetworkRetries int64
}

// Client calls Stripe. It is safe for concurrent use, and any number of
// clients with different keys and bases can coexist in one process.
type Client struct {
	api *client.API
}

// defaultTimeout bounds one HTTP attempt when Config.HTTPClient is nil;
// stripe-go's own default client waits 80 s, far longer than any checkout
// request should hang.
const defaultTimeout = 15 * time.Second

// maxIdleConns is how many idle connections to Stripe the default client
// keeps. Checkouts wait on Stripe concurrently, one request each, and hold
// no database connection meanwhile, so hundreds can be in flight: with
// net/http's default of 2 idle connections per host, almost every request
// would open (and, against Stripe, TLS-handshake) a new one.
const maxIdleConns = 512

// New returns a Client for cfg. It touches none of stripe-go's package-level
// state (stripe.Key, stripe.SetBackend), which is process-wide.
func New(cfg Config) *Client {
	httpClient := cfg.HTTPClient
	if httpClient == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxIdleConns = maxIdleConns
		transport.MaxIdleConnsPerHost = maxIdleConns
		httpClient = &http.Client{Timeout: defaultTimeout, Transport: transport}
	}
	httpClient = withGatewayErrors(httpClient)

	backendCfg := &stripe.BackendConfig{
		HTTPClient: httpClient,
		// stripe-go's default logger prints every failed request to stderr,
		// outside our structured logs; callers log the errors we return.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if cfg.APIBase != "" {
		backendCfg.URL = stripe.String(cfg.APIBase)
	}
	switch {
	case cfg.MaxNetworkRetries > 0:
		backendCfg.MaxNetworkRetries = stripe.Int64(cfg.MaxNetworkRetries)
	case cfg.MaxNetworkRetries < 0:
		backendCfg.MaxNetworkRetries = stripe.Int64(0)
	}
	backends := stripe.NewBackends(httpClient)
	backends.API = stripe.GetBackendWithConfig(stripe.APIBackend, backendCfg)
	return &Client{api: client.New(cfg.SecretKey, backends)}
}
