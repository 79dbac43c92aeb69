package server

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/cartrecovery"
	"github.com/shopd/shopd/images"
	"github.com/shopd/shopd/inventory"
	"github.com/shopd/shopd/jobs"
	"github.com/shopd/shopd/live"
	"github.com/shopd/shopd/notify"
	"github.com/shopd/shopd/orders"
	"github.com/shopd/shopd/store"
)

// Config is everything the server reads from its environment, read once by
// LoadConfig.
type Config struct {
	HTTPAddr               string
	DatabaseURL            string
	StripeSecretKey        string
	StripeAPIBase          string
	StripeWebhookSecret    string
	JWTPrivateKeyFile      string
	JWTIssuer              string
	JWTAudience            string
	JWTTTL                 time.Duration
	BootstrapAdminEmail    string
	BootstrapAdminPassword string
	DataDir                string
	PaymentWindow          time.Duration
	// CheckoutLease is how long a checkout's lease on its Idempotency-Key
	// lasts unless renewed: after an instance dies mid-checkout, a retry
	// takes over at most this much later (API.md: within 30 s).
	CheckoutLease          time.Duration
	RedisURL               string
	CheckoutsPerHour       int
	SearchesPerHour        int
	LoginFailuresPerMinute int
	// LoginFailuresPerIPPerMinute counts failed logins per client IP, any email.
	LoginFailuresPerIPPerMinute int
	RegistrationsPerIPPerHour   int
	// PublicURL is the API's public base URL (the spec's servers, links).
	PublicURL string
	// MetricsToken, when set, is the bearer token /metrics requires.
	MetricsToken          string
	TaxRateBPS            int64
	ShippingFlatCents     int64
	FreeShippingOverCents int64
	// TrustedProxies are CIDRs whose X-Forwarded-For is believed.
	TrustedProxies []*net.IPNet
	// CORSOrigins may call the API from browsers.
	CORSOrigins []string
	// JobPollInterval is how often an idle instance looks for due jobs
	// (payment-window expiry, refunds, stuck checkouts, key purge).
	JobPollInterval time.Duration
	// StorefrontURL is the shop's web address, for links in messages.
	StorefrontURL string
	// SMTPURL is smtp://user:pass@host:port or smtps://...; empty logs
	// emails instead of sending them.
	SMTPURL  string
	MailFrom string
	// SMSAPIURL is a Twilio-compatible API; empty logs SMS instead.
	SMSAPIURL, SMSAccountSID, SMSAuthToken, SMSFrom string
	// WarehouseEmail and InventoryEmail receive the staff messages.
	WarehouseEmail, InventoryEmail string
	// NotifyMaxAttempts is how many send attempts a notification gets.
	NotifyMaxAttempts int
	// NotifyRetryBase is the delay before a failed send's first retry,
	// doubled for each further one.
	NotifyRetryBase time.Duration
	// AbandonedCartAfter is how long a cart with items stays unchanged
	// before its owner (if opted in) is reminded of it.
	AbandonedCartAfter time.Duration
	// InventoryReportCron is the daily inventory report's schedule, a
	// 5-field cron in UTC (checked here, parsed again where it is used).
	InventoryReportCron string
	// FulfillmentReminderAfter, ReviewRequestAfter and
	// DeliveryFollowUpAfter are the delays of the order follow-ups: after
	// payment, after payment, after shipping.
	FulfillmentReminderAfter, ReviewRequestAfter, DeliveryFollowUpAfter time.Duration
	// StreamHeartbeat is the interval of the live streams' comment lines.
	StreamHeartbeat time.Duration
	// StreamMax bounds the live streams open at once on this instance.
	StreamMax int
	// CatalogCacheMB bounds the catalog read cache, in MiB; 0 turns it off.
	CatalogCacheMB int
	// DBMaxConns is the database pool's size.
	DBMaxConns int
	// BlobURL is where product images are kept: file:///dir (the default,
	// DATA_DIR/blobs) or s3://bucket?region=...&endpoint=...&use_path_style=true.
	BlobURL string
	// ImageURLSecret signs the file store's image URLs; empty derives one
	// from the JWT signing key (ImageSecret).
	ImageURLSecret string
	// ImageURLTTL is how long a signed image URL stays valid.
	ImageURLTTL time.Duration
}

// LoadConfig reads the configuration from getenv, applying defaults. It
// reports every bad value at once. An unset DATABASE_URL is not an error
// here (tools that only talk to a running server read the config too); Run
// refuses to start without it.
func LoadConfig(getenv func(string) string) (Config, error) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	var errs []error
	integer := func(k string, def int64) int64 {
		v := getenv(k)
		if v == "" {
			return def
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%s: want a non-negative integer, got %q", k, v))
		}
		return n
	}
	duration := func(k string, def time.Duration) time.Duration {
		v := getenv(k)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: want a positive duration like 1h or 30m, got %q", k, v))
		}
		return d
	}
	c := Config{
		HTTPAddr:                    env("HTTP_ADDR", "127.0.0.1:8080"),
		DatabaseURL:                 getenv("DATABASE_URL"),
		StripeSecretKey:             getenv("STRIPE_SECRET_KEY"),
		StripeAPIBase:               getenv("STRIPE_API_BASE"),
		StripeWebhookSecret:         getenv("STRIPE_WEBHOOK_SECRET"),
		JWTPrivateKeyFile:           getenv("JWT_PRIVATE_KEY_FILE"),
		JWTIssuer:                   env("JWT_ISSUER", "shop"),
		JWTAudience:                 env("JWT_AUDIENCE", "shop-api"),
		JWTTTL:                      duration("JWT_TTL", time.Hour),
		BootstrapAdminEmail:         getenv("BOOTSTRAP_ADMIN_EMAIL"),
		BootstrapAdminPassword:      getenv("BOOTSTRAP_ADMIN_PASSWORD"),
		DataDir:                     env("DATA_DIR", ".data"),
		PaymentWindow:               duration("PAYMENT_WINDOW", time.Hour),
		CheckoutLease:               duration("CHECKOUT_LEASE", orders.DefaultLeaseTTL),
		RedisURL:                    getenv("REDIS_URL"),
		CheckoutsPerHour:            int(integer("QUOTA_CHECKOUTS_PER_HOUR", 100)),
		SearchesPerHour:             int(integer("QUOTA_SEARCHES_PER_HOUR", 1000)),
		LoginFailuresPerMinute:      int(integer("LOGIN_FAILURES_PER_MINUTE", 10)),
		LoginFailuresPerIPPerMinute: int(integer("LOGIN_FAILURES_PER_IP_PER_MINUTE", 60)),
		RegistrationsPerIPPerHour:   int(integer("REGISTRATIONS_PER_IP_PER_HOUR", 20)),
		MetricsToken:                getenv("METRICS_TOKEN"),
		TaxRateBPS:                  integer("TAX_RATE_BPS", 1000),
		ShippingFlatCents:           integer("SHIPPING_FLAT_CENTS", 1000),
		FreeShippingOverCents:       integer("FREE_SHIPPING_OVER_CENTS", 10000),
		JobPollInterval:             duration("JOB_POLL_INTERVAL", jobs.DefaultPollInterval),
		SMTPURL:                     getenv("SMTP_URL"),
		MailFrom:                    env("MAIL_FROM", "shop@localhost"),
		SMSAPIURL:                   getenv("SMS_API_URL"),
		SMSAccountSID:               getenv("SMS_ACCOUNT_SID"),
		SMSAuthToken:                getenv("SMS_AUTH_TOKEN"),
		SMSFrom:                     getenv("SMS_FROM"),
		WarehouseEmail:              env("WAREHOUSE_EMAIL", "warehouse@localhost"),
		InventoryEmail:              env("INVENTORY_EMAIL", "inventory@localhost"),
		NotifyMaxAttempts:           int(integer("NOTIFY_MAX_ATTEMPTS", notify.DefaultMaxAttempts)),
		NotifyRetryBase:             duration("NOTIFY_RETRY_BASE", notify.DefaultRetryBase),
		AbandonedCartAfter:          duration("ABANDONED_CART_AFTER", cartrecovery.DefaultAfter),
		InventoryReportCron:         env("INVENTORY_REPORT_CRON", inventory.DefaultReportCron),
		FulfillmentReminderAfter:    duration("FULFILLMENT_REMINDER_AFTER", orders.DefaultFulfillmentReminderAfter),
		ReviewRequestAfter:          duration("REVIEW_REQUEST_AFTER", orders.DefaultReviewRequestAfter),
		DeliveryFollowUpAfter:       duration("DELIVERY_FOLLOWUP_AFTER", orders.DefaultDeliveryFollowUpAfter),
		StreamHeartbeat:             duration("STREAM_HEARTBEAT", live.DefaultHeartbeat),
		StreamMax:                   int(integer("STREAM_MAX", live.DefaultMaxStreams)),
		CatalogCacheMB:              int(integer("CATALOG_CACHE_MB", DefaultCatalogCacheMB)),
		DBMaxConns:                  int(integer("DB_MAX_CONNS", store.DefaultMaxConns)),
		BlobURL:                     getenv("BLOB_URL"),
		ImageURLSecret:              getenv("IMAGE_URL_SECRET"),
		ImageURLTTL:                 duration("IMAGE_URL_TTL", images.DefaultTTL),
	}
	for _, cidr := range splitList(getenv("TRUSTED_PROXIES")) {
		if !strings.Contains(cidr, "/") {
			if strings.Contains(cidr, ":") {
				cidr += "/128"
			} else {
				cidr += "/32"
			}
		}
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %q is not an IP or CIDR", cidr))
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, n)
	}
	c.CORSOrigins = splitList(env("CORS_ALLOWED_ORIGINS", "*"))
	c.PublicURL = strings.TrimRight(env("PUBLIC_URL", "http://"+c.HTTPAddr), "/")
	c.StorefrontURL = strings.TrimRight(env("STOREFRONT_URL", c.PublicURL), "/")
	if c.StreamMax < 1 && getenv("STREAM_MAX") != "" {
		errs = append(errs, fmt.Errorf("STREAM_MAX: at least 1, got %d", c.StreamMax))
	}
	if c.DBMaxConns < 2 || c.DBMaxConns > 1000 {
		errs = append(errs, fmt.Errorf("DB_MAX_CONNS: between 2 and 1000, got %d", c.DBMaxConns))
	}
	if c.CatalogCacheMB < 0 || c.CatalogCacheMB > 4096 {
		errs = append(errs, fmt.Errorf("CATALOG_CACHE_MB: between 0 (off) and 4096, got %d", c.CatalogCacheMB))
	}
	if c.NotifyMaxAttempts < 1 && getenv("NOTIFY_MAX_ATTEMPTS") != "" {
		errs = append(errs, fmt.Errorf("NOTIFY_MAX_ATTEMPTS: at least 1, got %d", c.NotifyMaxAttempts))
	}
	if c.SMTPURL != "" {
		if _, err := notify.NewSMTPSender(c.SMTPURL, c.MailFrom); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := inventory.ParseReportCron(c.InventoryReportCron); err != nil {
		errs = append(errs, fmt.Errorf("INVENTORY_REPORT_CRON: %w", err))
	}
	if c.SMSAPIURL != "" && (c.SMSAccountSID == "" || c.SMSAuthToken == "" || c.SMSFrom == "") {
		errs = append(errs, errors.New("SMS_API_URL needs SMS_ACCOUNT_SID, SMS_AUTH_TOKEN and SMS_FROM"))
	}
	if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	if c.BlobURL == "" {
		c.BlobURL = (&url.URL{Scheme: "file", Path: filepath.Join(c.DataDir, "blobs")}).String()
	}
	if u, err := url.Parse(c.BlobURL); err != nil || (u.Scheme != "file" && u.Scheme != "s3") || (u.Scheme == "file" && u.Path == "") {
		errs = append(errs, fmt.Errorf("BLOB_URL: want file:///absolute/dir or s3://bucket?region=..., got %q", c.BlobURL))
	}
	if c.ImageURLSecret != "" && len(c.ImageURLSecret) < 32 {
		errs = append(errs, errors.New("IMAGE_URL_SECRET: at least 32 characters"))
	}
	if c.ImageURLTTL > maxImageURLTTL {
		errs = append(errs, fmt.Errorf("IMAGE_URL_TTL: at most %s (S3's longest presigned URL), got %s", maxImageURLTTL, c.ImageURLTTL))
	}
	if c.StripeSecretKey == "" && c.StripeAPIBase != "" {
		c.StripeSecretKey = "sk_test_local"
	}
	if (c.BootstrapAdminEmail == "") != (c.BootstrapAdminPassword == "") {
		errs = append(errs, errors.New("BOOTSTRAP_ADMIN_EMAIL and BOOTSTRAP_ADMIN_PASSWORD go together"))
	}
	if c.CheckoutLease < 30*time.Millisecond || c.CheckoutLease > 30*time.Second {
		errs = append(errs, fmt.Errorf("CHECKOUT_LEASE: between 30ms and 30s (a dead instance's checkout must resume within 30 s), got %s", c.CheckoutLease))
	}
	if c.TaxRateBPS > 10000 {
		errs = append(errs, fmt.Errorf("TAX_RATE_BPS: at most 10000 (100%%), got %d", c.TaxRateBPS))
	}
	return c, errors.Join(errs...)
}

// SigningKey loads JWT_PRIVATE_KEY_FILE, or keeps a generated key under
// DATA_DIR so tokens survive restarts of a single instance.
func (c Config) SigningKey() (*ecdsa.PrivateKey, error) {
	if c.JWTPrivateKeyFile != "" {
		return auth.LoadSigningKey(c.JWTPrivateKeyFile)
	}
	return auth.LoadOrCreateSigningKey(filepath.Join(c.DataDir, "jwt-es256.pem"))
}

// DefaultCatalogCacheMB is CATALOG_CACHE_MB's default: room for some
// thousands of products and pages, a small share of the memory an instance
// runs in (its default GOMEMLIMIT is 64 MiB).
const DefaultCatalogCacheMB = 8

// maxImageURLTTL is the longest an S3 presigned URL may live.
const maxImageURLTTL = 7 * 24 * time.Hour

// ImageSecret is IMAGE_URL_SECRET, or one derived from the JWT signing key
// key, which every instance shares already.
func (c Config) ImageSecret(key *ecdsa.PrivateKey) ([]byte, error) {
	if c.ImageURLSecret != "" {
		return []byte(c.ImageURLSecret), nil
	}
	return images.DeriveSecret(key)
}

// splitList reads a comma-separated list, ignoring blanks.
func splitList(v string) []string {
	var out []string
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
