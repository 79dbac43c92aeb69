package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/server"
)

const usage = `usage: shopdev [serve|seed|pay ORDER_ID]

  serve  start PostgreSQL and stripe-mock, seed the demo, serve (the default)
  seed   add the demo catalog to an empty database and exit
  pay    mark an order paid on the running server (shopdev pay --help)`

// run is the whole program, callable from tests: it returns when ctx is
// cancelled (after a graceful shutdown, with nil) or on a fatal error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	dc, err := loadDevConfig(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	switch cmd {
	case "serve", "seed":
		if len(args) > 0 {
			return fmt.Errorf("%s: unexpected arguments %q", cmd, args)
		}
		if cmd == "seed" {
			return seed(ctx, dc, log, stdout, stderr)
		}
		return serve(ctx, dc, getenv, log, stdout, stderr)
	case "pay":
		return pay(ctx, args, dc, getenv, stdout)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q (want serve, seed or pay)", cmd)
	}
}

// Development defaults: webhooks signed by `shopdev pay` and the demo admin.
const (
	devWebhookSecret = "whsec_local_development_only"
	devAdminEmail    = "admin@example.com"
	devAdminPassword = "admin-demo-password"
)

// devConfig is what shopdev reads from the environment, once; the server
// reads the rest itself (server.LoadConfig).
type devConfig struct {
	// DataDir is DATA_DIR made absolute: the server's and shopdev's state.
	DataDir string
	// DatabaseURL, when set, is used instead of a private cluster.
	DatabaseURL string
	// StripeAPIBase, when set, is used instead of stripe-mock.
	StripeAPIBase string
	// defaults are the server settings shopdev fills in when unset.
	defaults map[string]string
	// ownKey is true when the signing key is shopdev's, under DataDir.
	ownKey bool
}

func loadDevConfig(getenv func(string) string) (devConfig, error) {
	dataDir := getenv("DATA_DIR")
	if dataDir == "" {
		dataDir = ".data"
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return devConfig{}, fmt.Errorf("DATA_DIR: %w", err)
	}
	dc := devConfig{
		DataDir:       abs,
		DatabaseURL:   getenv("DATABASE_URL"),
		StripeAPIBase: getenv("STRIPE_API_BASE"),
		defaults: map[string]string{
			"DATA_DIR":              abs,
			"STRIPE_WEBHOOK_SECRET": devWebhookSecret,
			// The file the server falls back to under DATA_DIR, named so
			// that it does not warn about instances sharing a key.
			"JWT_PRIVATE_KEY_FILE": filepath.Join(abs, "jwt-es256.pem"),
		},
		ownKey: getenv("JWT_PRIVATE_KEY_FILE") == "",
	}
	// One of the pair alone is the server's to refuse.
	if getenv("BOOTSTRAP_ADMIN_EMAIL") == "" && getenv("BOOTSTRAP_ADMIN_PASSWORD") == "" {
		dc.defaults["BOOTSTRAP_ADMIN_EMAIL"] = devAdminEmail
		dc.defaults["BOOTSTRAP_ADMIN_PASSWORD"] = devAdminPassword
	}
	return dc, nil
}

// serverEnv is the environment the server runs with: the caller's, with
// shopdev's defaults for what is unset, and started overriding both (the
// services shopdev started).
func (dc devConfig) serverEnv(getenv func(string) string, started map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := started[k]; ok {
			return v
		}
		if v := getenv(k); v != "" {
			return v
		}
		return dc.defaults[k]
	}
}

// urlFile records the running server's base URL, for `shopdev pay`.
func (dc devConfig) urlFile() string { return filepath.Join(dc.DataDir, "server-url") }

// serve starts the local services and runs the server on them until ctx
// ends, then stops everything it started.
func serve(ctx context.Context, dc devConfig, getenv func(string) string, log *slog.Logger, stdout, stderr io.Writer) error {
	if err := os.MkdirAll(dc.DataDir, 0o755); err != nil {
		return fmt.Errorf("create DATA_DIR: %w", err)
	}
	if dc.ownKey {
		if _, err := auth.LoadOrCreateSigningKey(dc.defaults["JWT_PRIVATE_KEY_FILE"]); err != nil {
			return err
		}
	}
	svc, err := startServices(ctx, dc, log, stderr)
	if err != nil {
		return err
	}
	defer svc.stop(log)
	env := dc.serverEnv(getenv, svc.env())
	var recorded string
	defer func() { forgetURL(dc.urlFile(), recorded) }()
	p := server.Program{Serving: func(base string) {
		if err := recordURL(dc.urlFile(), base); err != nil {
			log.Warn("record the server's URL for shopdev pay", "err", err)
		} else {
			recorded = base
		}
		printBanner(stdout, dc, svc, env, base)
	}}
	return p.Run(ctx, nil, env, stdout, stderr)
}

// seed adds the demo catalog to DATABASE_URL, or to the private cluster,
// which it starts and stops.
func seed(ctx context.Context, dc devConfig, log *slog.Logger, stdout, stderr io.Writer) error {
	svc := &services{databaseURL: dc.DatabaseURL}
	if dc.DatabaseURL == "" {
		if err := svc.startDatabase(ctx, dc, log, stderr); err != nil {
			return err
		}
		defer svc.stop(log)
	}
	n, err := seedDemo(ctx, svc.databaseURL, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %d products\n", n)
	return nil
}

// recordURL writes base to path in one step, so a reader never sees half.
func recordURL(path, base string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(base+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// forgetURL removes the record unless another server has replaced it.
func forgetURL(path, base string) {
	if base == "" {
		return
	}
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == base {
		os.Remove(path)
	}
}

// recordedURL is the base URL a running shopdev recorded, or "".
func recordedURL(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the server's URL: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func printBanner(w io.Writer, dc devConfig, svc *services, env func(string) string, base string) {
	fmt.Fprintln(w, "Local development (cmd/shopdev):")
	if email, password := env("BOOTSTRAP_ADMIN_EMAIL"), env("BOOTSTRAP_ADMIN_PASSWORD"); email != "" && password != "" {
		fmt.Fprintf(w, "  Admin login  %s / %s\n", email, password)
	}
	if svc.db != nil {
		fmt.Fprintf(w, "  PostgreSQL   %s\n", svc.db.URL)
		fmt.Fprintf(w, "               data in %s\n", svc.db.Dir)
	} else {
		fmt.Fprintln(w, "  PostgreSQL   DATABASE_URL (not started here)")
	}
	if svc.stripe != nil {
		fmt.Fprintf(w, "  stripe-mock  %s, log in %s\n", svc.stripe.URL, svc.stripeLog.Name())
	} else {
		fmt.Fprintf(w, "  Stripe       %s (STRIPE_API_BASE, not started here)\n", dc.StripeAPIBase)
	}
	fmt.Fprintf(w, "  Pay          make pay ORDER=<order id>  (finds %s through %s)\n", base, dc.urlFile())
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
}
