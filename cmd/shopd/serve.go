package main

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/handlers"
	"github.com/shopd/shopd/internal/pgcluster"
	"github.com/shopd/shopd/internal/stripemock"
	"github.com/shopd/shopd/orders"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/ratelimit"
	"github.com/shopd/shopd/store"
)

// app is what serve and the maintenance commands share: the config, the
// store and whatever local services were started for them.
type app struct {
	cfg   config
	log   *slog.Logger
	store *store.Store
	stops []func() error
}

func (a *app) close() {
	if a.store != nil {
		a.store.Close()
	}
	for i := len(a.stops) - 1; i >= 0; i-- {
		if err := a.stops[i](); err != nil {
			a.log.Error("stop local service", "err", err)
		}
	}
}

// open reads the config and connects to the database, first starting the
// private cluster under DATA_DIR when DATABASE_URL is unset.
func open(ctx context.Context, getenv func(string) string, stderr io.Writer) (*app, error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	a := &app{cfg: cfg, log: slog.New(slog.NewJSONHandler(stderr, nil))}
	dbURL := cfg.DatabaseURL
	if cfg.Local {
		cl, err := pgcluster.Start(ctx, pgcluster.Options{
			Dir: filepath.Join(cfg.DataDir, "postgres"), Database: "shop", Durable: true, Log: stderr,
		})
		if err != nil {
			return nil, fmt.Errorf("start local postgres: %w", err)
		}
		a.stops = append(a.stops, cl.Stop)
		a.log.Info("local postgres started", "url", cl.URL, "startup_ms", cl.Startup.Milliseconds())
		dbURL = cl.URL
	}
	a.store, err = store.Open(ctx, dbURL)
	if err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

// maintain runs the one-shot commands.
func maintain(ctx context.Context, cmd string, getenv func(string) string, stdout, stderr io.Writer) error {
	a, err := open(ctx, getenv, stderr) // open migrates
	if err != nil {
		return err
	}
	defer a.close()
	switch cmd {
	case "seed":
		n, err := seedCatalog(ctx, a.store)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "seeded %d products\n", n)
	default:
		fmt.Fprintln(stdout, "migrations applied")
	}
	return nil
}

func serve(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	started := time.Now()
	a, err := open(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	cfg, log := a.cfg, a.log

	if !cfg.Local && cfg.JWTPrivateKeyFile == "" {
		log.Warn("JWT_PRIVATE_KEY_FILE is not set: this instance signs with its own key under DATA_DIR; instances behind one load balancer must share a key")
	}
	key, err := signingKey(cfg)
	if err != nil {
		return err
	}
	tokens, err := auth.NewTokens(auth.TokenConfig{Key: key, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, TTL: cfg.JWTTTL})
	if err != nil {
		return err
	}
	if cfg.BootstrapAdminEmail != "" {
		if err := bootstrapAdmin(ctx, a.store, cfg.BootstrapAdminEmail, cfg.BootstrapAdminPassword, log); err != nil {
			return err
		}
	}
	if cfg.Local {
		n, err := seedCatalog(ctx, a.store)
		if err != nil {
			return err
		}
		if n > 0 {
			log.Info("seeded demo catalog", "products", n)
		}
	}

	pay, err := a.payments(ctx, stderr)
	if err != nil {
		return err
	}
	if cfg.StripeWebhookSecret == "" {
		log.Warn("STRIPE_WEBHOOK_SECRET is not set: every webhook will be refused")
	}
	var limiter ratelimit.Limiter = ratelimit.NewMemory(nil)
	if cfg.RedisURL != "" {
		rl, closeRedis, err := ratelimit.NewRedis(ctx, cfg.RedisURL)
		if err != nil {
			return err
		}
		defer closeRedis()
		limiter = rl
	}
	svc := &orders.Service{
		Store: a.store,
		Pricing: shopd.Pricing{
			TaxRateBPS: cfg.TaxRateBPS, ShippingFlatCents: cfg.ShippingFlatCents, FreeShippingOverCents: cfg.FreeShippingOverCents,
		},
		PaymentWindow: cfg.PaymentWindow,
		Limiter:       limiter,
		CheckoutLimit: ratelimit.PerHour(cfg.CheckoutsPerHour),
		Log:           log,
	}
	if pay != nil {
		svc.Payments = pay
	}
	h, err := handlers.New(handlers.Config{
		Store:                       a.store,
		Tokens:                      tokens,
		Limiter:                     limiter,
		Log:                         log,
		LoginFailuresPerMinute:      cfg.LoginFailuresPerMinute,
		LoginFailuresPerIPPerMinute: cfg.LoginFailuresPerIPPerMinute,
		RegistrationsPerIPPerHour:   cfg.RegistrationsPerIPPerHour,
		PublicURL:                   cfg.PublicURL,
		MetricsToken:                cfg.MetricsToken,
		SearchesPerHour:             cfg.SearchesPerHour,
		Orders:                      svc,
		WebhookSecret:               cfg.StripeWebhookSecret,
		TrustedProxies:              cfg.TrustedProxies,
		CORSOrigins:                 cfg.CORSOrigins,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	// The reconciler must be done before the deferred store close.
	reconcileCtx, stopReconciler := context.WithCancel(ctx)
	reconcilerDone := make(chan struct{})
	go func() {
		defer close(reconcilerDone)
		svc.RunReconciler(reconcileCtx, cfg.ReconcileEvery)
	}()
	defer func() {
		stopReconciler()
		<-reconcilerDone
	}()
	base := "http://" + ln.Addr().String()
	log.Info("serving", "addr", ln.Addr().String(), "startup_ms", time.Since(started).Milliseconds())
	printBanner(stdout, cfg, base, time.Since(started))

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// payments returns the Stripe client: Stripe itself or STRIPE_API_BASE, a
// stripe-mock started here in local mode, or nil when nothing is configured.
func (a *app) payments(ctx context.Context, stderr io.Writer) (*payments.Client, error) {
	cfg := a.cfg
	if cfg.Local && cfg.StripeAPIBase == "" {
		sm, err := stripemock.Start(ctx, stderr)
		if err != nil {
			return nil, fmt.Errorf("start stripe-mock: %w", err)
		}
		a.stops = append(a.stops, sm.Stop)
		a.log.Info("stripe-mock started", "url", sm.URL)
		cfg.StripeAPIBase, cfg.StripeSecretKey = sm.URL, "sk_test_local"
	}
	if cfg.StripeSecretKey == "" {
		a.log.Warn("STRIPE_SECRET_KEY is not set: checkout answers 503 until it is")
		return nil, nil
	}
	return payments.New(payments.Config{SecretKey: cfg.StripeSecretKey, APIBase: cfg.StripeAPIBase}), nil
}

// signingKey loads JWT_PRIVATE_KEY_FILE, or keeps a generated key under the
// data dir so tokens survive restarts in development.
func signingKey(cfg config) (*ecdsa.PrivateKey, error) {
	if cfg.JWTPrivateKeyFile != "" {
		return auth.LoadSigningKey(cfg.JWTPrivateKeyFile)
	}
	return auth.LoadOrCreateSigningKey(filepath.Join(cfg.DataDir, "jwt-es256.pem"))
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

func printBanner(w io.Writer, cfg config, base string, took time.Duration) {
	fmt.Fprintf(w, "\nshopd is up (%s)\n", took.Round(time.Millisecond))
	fmt.Fprintf(w, "  API          %s/v1\n", base)
	fmt.Fprintf(w, "  Swagger UI   %s/docs\n", base)
	fmt.Fprintf(w, "  OpenAPI      %s/openapi.yaml\n", base)
	fmt.Fprintf(w, "  Health       %s/healthz  %s/readyz  %s/metrics\n", base, base, base)
	if cfg.Local && cfg.BootstrapAdminEmail != "" {
		fmt.Fprintf(w, "  Admin login  %s / %s\n", cfg.BootstrapAdminEmail, cfg.BootstrapAdminPassword)
	}
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
}
