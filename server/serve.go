package server

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/cartrecovery"
	"github.com/shopd/shopd/catalogcache"
	"github.com/shopd/shopd/handlers"
	"github.com/shopd/shopd/images"
	"github.com/shopd/shopd/inventory"
	"github.com/shopd/shopd/jobs"
	"github.com/shopd/shopd/live"
	"github.com/shopd/shopd/notify"
	"github.com/shopd/shopd/orders"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/ratelimit"
	"github.com/shopd/shopd/store"
)

// shutdownTimeout bounds how long requests in flight may finish after the
// context ends.
const shutdownTimeout = 10 * time.Second

// serve runs the API on cfg.HTTPAddr until ctx ends, then shuts down
// gracefully and returns nil.
func (p Program) serve(ctx context.Context, cfg Config, log *slog.Logger, stdout io.Writer) error {
	started := time.Now()
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	st.DB().SetMaxOpenConns(cfg.DBMaxConns)
	st.DB().SetMaxIdleConns(cfg.DBMaxConns)
	// River's tables with ours, before anything can insert a job.
	if err := jobs.Migrate(ctx, st.DB().DB); err != nil {
		return err
	}
	a, err := assemble(ctx, cfg, st, log)
	if err != nil {
		return err
	}
	defer a.close(log)
	// Start-up leaves tens of MiB of garbage (the spec parsed and rendered,
	// migrations read) that GOGC=400 would keep around until the heap is
	// five times what is live: collect it now and give it back.
	debug.FreeOSMemory()

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	// Streams never end by themselves: Shutdown ends them (their clients
	// reconnect elsewhere with Last-Event-ID) instead of waiting for them.
	srv.RegisterOnShutdown(a.streams.Shutdown)
	// Started without ctx's cancellation: jobs keep running while the
	// requests in flight finish, and stop (below) only after them.
	if err := a.jobs.Start(context.WithoutCancel(ctx)); err != nil {
		ln.Close()
		return fmt.Errorf("start jobs: %w", err)
	}
	// Deferred after the store's close, so it runs first: jobs in flight
	// finish (bounded) before the store goes; on an early return too.
	defer stopJobs(a.jobs, log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	base := baseURL(ln.Addr())
	log.Info("serving", "addr", ln.Addr().String(), "startup_ms", time.Since(started).Milliseconds())
	printBanner(stdout, base, time.Since(started))
	if p.Serving != nil {
		p.Serving(base)
	}
	return shutdownWhenDone(ctx, srv, errc)
}

// stopJobs stops the job client after the HTTP server: running jobs
// finish, for at most shutdownTimeout; a job cut short is run again by
// whichever instance fetches it next.
func stopJobs(c *jobs.Client, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout+2*time.Second)
	defer cancel()
	if err := jobs.Stop(ctx, c); err != nil {
		log.Warn("jobs cut short; another run finishes them", "err", err)
	}
}

// app is what serve builds from the configuration and tears down after.
type app struct {
	handler http.Handler
	orders  *orders.Service
	outbox  *notify.Outbox
	jobs    *jobs.Client
	streams *live.Hub
	closers []func() error
}

func (a *app) close(log *slog.Logger) {
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			log.Error("close", "err", err)
		}
	}
}

// assemble wires the server's parts on an open store: tokens, the first
// admin, rate limits, payments, the order service and the HTTP handler.
func assemble(ctx context.Context, cfg Config, st *store.Store, log *slog.Logger) (*app, error) {
	key, err := cfg.SigningKey()
	if err != nil {
		return nil, err
	}
	tokens, err := newTokens(cfg, key, log)
	if err != nil {
		return nil, err
	}
	if cfg.BootstrapAdminEmail != "" {
		if err := bootstrapAdmin(ctx, st, cfg.BootstrapAdminEmail, cfg.BootstrapAdminPassword, log); err != nil {
			return nil, err
		}
	}
	a := &app{}
	limiter, err := a.newLimiter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.orders = newOrders(cfg, st, limiter, log)
	registry := prometheus.NewRegistry()
	// The pool's go_sql_* series (in use, idle, waits): whether the pool
	// ever ran out of connections.
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewDBStatsCollector(st.DB().DB, "shopd"))
	if a.outbox, err = newOutbox(cfg, st, registry, log); err != nil {
		a.close(log)
		return nil, err
	}
	a.orders.Notify = a.outbox
	stock, err := inventory.New(inventory.Config{
		DB: st.DB(), Outbox: a.outbox, Recipient: cfg.InventoryEmail,
		ReportCron: cfg.InventoryReportCron, AlertEvery: cfg.JobPollInterval,
	})
	if err != nil {
		a.close(log)
		return nil, err
	}
	carts := cartrecovery.New(st.DB(), a.outbox, cfg.AbandonedCartAfter)
	st.WatchCarts(carts)
	pictures, err := a.newImages(ctx, cfg, key, st, log)
	if err != nil {
		a.close(log)
		return nil, err
	}
	if a.jobs, err = newJobs(cfg, st, a.orders, a.outbox, stockJobs{stock, carts, pictures}, registry, log); err != nil {
		a.close(log)
		return nil, err
	}
	a.streams, err = live.Start(ctx, live.Config{
		DB: st.DB(), DatabaseURL: cfg.DatabaseURL, MaxStreams: cfg.StreamMax, Registry: registry, Log: log,
	})
	if err != nil {
		a.close(log)
		return nil, err
	}
	a.closers = append(a.closers, a.streams.Close)
	var catalog *catalogcache.Cache
	if cfg.CatalogCacheMB > 0 {
		catalog, err = catalogcache.Start(ctx, catalogcache.Config{
			DatabaseURL: cfg.DatabaseURL, MaxBytes: int64(cfg.CatalogCacheMB) << 20, Registry: registry, Log: log,
		})
		if err != nil {
			a.close(log)
			return nil, err
		}
		a.closers = append(a.closers, catalog.Close)
	}
	if cfg.StripeWebhookSecret == "" {
		log.Warn("STRIPE_WEBHOOK_SECRET is not set: every webhook will be refused")
	}
	a.handler, err = handlers.New(handlers.Config{
		Store:                       st,
		Tokens:                      tokens,
		Limiter:                     limiter,
		Log:                         log,
		LoginFailuresPerMinute:      cfg.LoginFailuresPerMinute,
		LoginFailuresPerIPPerMinute: cfg.LoginFailuresPerIPPerMinute,
		RegistrationsPerIPPerHour:   cfg.RegistrationsPerIPPerHour,
		PublicURL:                   cfg.PublicURL,
		MetricsToken:                cfg.MetricsToken,
		SearchesPerHour:             cfg.SearchesPerHour,
		Orders:                      a.orders,
		WebhookSecret:               cfg.StripeWebhookSecret,
		TrustedProxies:              cfg.TrustedProxies,
		CORSOrigins:                 cfg.CORSOrigins,
		Registry:                    registry,
		Notifications:               a.outbox,
		Streams:                     a.streams,
		StreamHeartbeat:             cfg.StreamHeartbeat,
		Images:                      pictures,
		CatalogCache:                catalog,
	})
	if err != nil {
		a.close(log)
		return nil, err
	}
	return a, nil
}

// newTokens issues and verifies JWTs with the configured signing key.
func newTokens(cfg Config, key *ecdsa.PrivateKey, log *slog.Logger) (*auth.Tokens, error) {
	if cfg.JWTPrivateKeyFile == "" {
		log.Warn("JWT_PRIVATE_KEY_FILE is not set: this instance signs with its own key under DATA_DIR; instances behind one load balancer must share a key")
	}
	return auth.NewTokens(auth.TokenConfig{Key: key, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, TTL: cfg.JWTTTL})
}

// newLimiter keeps rate-limit state in Redis when REDIS_URL is set, so
// instances share it, and in this process otherwise.
func (a *app) newLimiter(ctx context.Context, cfg Config) (ratelimit.Limiter, error) {
	if cfg.RedisURL == "" {
		return ratelimit.NewMemory(nil), nil
	}
	rl, closeRedis, err := ratelimit.NewRedis(ctx, cfg.RedisURL)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() error { closeRedis(); return nil })
	return rl, nil
}

// newOrders is the money path: checkout, cancel, refunds and Stripe
// events; newJobs gives it its job client.
func newOrders(cfg Config, st *store.Store, limiter ratelimit.Limiter, log *slog.Logger) *orders.Service {
	svc := &orders.Service{
		Store: st,
		Pricing: shopd.Pricing{
			TaxRateBPS: cfg.TaxRateBPS, ShippingFlatCents: cfg.ShippingFlatCents, FreeShippingOverCents: cfg.FreeShippingOverCents,
		},
		PaymentWindow: cfg.PaymentWindow,
		LeaseTTL:      cfg.CheckoutLease,
		Limiter:       limiter,
		CheckoutLimit: ratelimit.PerHour(cfg.CheckoutsPerHour),
		Log:           log,
		FollowUps: orders.FollowUps{
			FulfillmentReminderAfter: cfg.FulfillmentReminderAfter,
			ReviewRequestAfter:       cfg.ReviewRequestAfter,
			DeliveryFollowUpAfter:    cfg.DeliveryFollowUpAfter,
		},
	}
	// Assigned only when configured: a nil *payments.Client in the
	// interface field would not compare equal to nil.
	if cfg.StripeSecretKey != "" {
		svc.Payments = payments.New(payments.Config{SecretKey: cfg.StripeSecretKey, APIBase: cfg.StripeAPIBase})
	} else {
		log.Warn("STRIPE_SECRET_KEY is not set: checkout answers 503 until it is")
	}
	return svc
}

// stockJobs are the stock, cart and image workflows' job owners.
type stockJobs struct {
	inventory *inventory.Workflows
	carts     *cartrecovery.Recovery
	images    *images.Service
}

// newJobs builds the job client on the store's pool with the money path's
// workers and periodic jobs, and gives the order service the client to
// enqueue with. It does not start it.
func newJobs(cfg Config, st *store.Store, svc *orders.Service, outbox *notify.Outbox, sj stockJobs, reg *prometheus.Registry, log *slog.Logger) (*jobs.Client, error) {
	workers := river.NewWorkers()
	if err := errors.Join(orders.AddWorkers(workers, svc), outbox.AddWorkers(workers),
		sj.inventory.AddWorkers(workers), sj.carts.AddWorkers(workers), sj.images.AddWorkers(workers)); err != nil {
		return nil, fmt.Errorf("job workers: %w", err)
	}
	kinds := append(orders.JobKinds(), notify.JobKinds()...)
	kinds = append(kinds, inventory.JobKinds()...)
	kinds = append(kinds, cartrecovery.JobKinds()...)
	kinds = append(kinds, images.JobKinds()...)
	c, err := jobs.New(st.DB().DB, jobs.Config{
		PollInterval: cfg.JobPollInterval,
		Workers:      workers,
		Periodic:     append(orders.PeriodicJobs(0), sj.inventory.PeriodicJobs()...),
		Kinds:        kinds,
		Registry:     reg,
		Log:          log,
		StopTimeout:  shutdownTimeout,
	})
	if err != nil {
		return nil, err
	}
	svc.Jobs = c
	outbox.SetJobs(c)
	sj.carts.SetJobs(c)
	sj.images.SetJobs(c)
	return c, nil
}

// newImages opens the product images' bucket (BLOB_URL), closed with the
// app; the file store's URLs point at PUBLIC_URL.
func (a *app) newImages(ctx context.Context, cfg Config, key *ecdsa.PrivateKey, st *store.Store, log *slog.Logger) (*images.Service, error) {
	secret, err := cfg.ImageSecret(key)
	if err != nil {
		return nil, err
	}
	svc, err := images.Open(ctx, images.Config{
		BlobURL: cfg.BlobURL, PublicURL: cfg.PublicURL, Secret: secret, TTL: cfg.ImageURLTTL, Store: st, Log: log,
	})
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, svc.Close)
	return svc, nil
}

// newOutbox is the notification outbox with its senders: SMTP when
// SMTP_URL is set and SMS when SMS_API_URL is, the log otherwise.
func newOutbox(cfg Config, st *store.Store, reg *prometheus.Registry, log *slog.Logger) (*notify.Outbox, error) {
	nc := notify.Config{
		DB:             st.DB(),
		StorefrontURL:  cfg.StorefrontURL,
		WarehouseEmail: cfg.WarehouseEmail,
		MaxAttempts:    cfg.NotifyMaxAttempts,
		RetryBase:      cfg.NotifyRetryBase,
		Registry:       reg,
		Log:            log,
	}
	if cfg.SMTPURL != "" {
		smtp, err := notify.NewSMTPSender(cfg.SMTPURL, cfg.MailFrom)
		if err != nil {
			return nil, err
		}
		nc.Email = smtp
	} else {
		log.Warn("SMTP_URL is not set: emails are written to the log, not sent")
	}
	if cfg.SMSAPIURL != "" {
		nc.SMS = &notify.SMSSender{APIURL: cfg.SMSAPIURL, AccountSID: cfg.SMSAccountSID, AuthToken: cfg.SMSAuthToken, From: cfg.SMSFrom}
	}
	return notify.New(nc)
}

// shutdownWhenDone waits for ctx to end, then lets requests in flight
// finish. A server that stops by itself is an error.
func shutdownWhenDone(ctx context.Context, srv *http.Server, errc <-chan error) error {
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// baseURL is where clients on this machine reach a listener: an address
// on all interfaces (":8080") is reached over loopback.
func baseURL(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "http://" + addr.String()
	}
	ip := tcp.IP
	switch {
	case ip.IsUnspecified() && ip.To4() != nil:
		ip = net.IPv4(127, 0, 0, 1)
	case ip.IsUnspecified():
		ip = net.IPv6loopback
	}
	return "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
}

// bootstrapAdmin creates the first admin once; later starts change nothing.
func bootstrapAdmin(ctx context.Context, st *store.Store, email, password string, log *slog.Logger) error {
	if u, err := st.UserByEmail(ctx, email); err == nil {
		if u.Role != auth.RoleAdmin {
			log.Warn("BOOTSTRAP_ADMIN_EMAIL belongs to a customer account: no admin was created", "email", u.Email)
		}
		return nil
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return err
	}
	created, err := st.EnsureUser(ctx, store.NewUser{
		Email: email, PasswordHash: hash, Role: auth.RoleAdmin, FirstName: "Admin", LastName: "User",
	})
	if err != nil {
		return fmt.Errorf("bootstrap admin: %w", err)
	}
	if created {
		log.Info("bootstrap admin created", "email", store.NormalizeEmail(email))
	}
	return nil
}

func printBanner(w io.Writer, base string, took time.Duration) {
	fmt.Fprintf(w, "\nshopd is up (%s)\n", took.Round(time.Millisecond))
	fmt.Fprintf(w, "  API          %s/v1\n", base)
	fmt.Fprintf(w, "  Swagger UI   %s/docs\n", base)
	fmt.Fprintf(w, "  OpenAPI      %s/openapi.yaml\n", base)
	fmt.Fprintf(w, "  Health       %s/healthz  %s/readyz  %s/metrics\n", base, base, base)
}
