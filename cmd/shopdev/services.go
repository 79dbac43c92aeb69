package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/shopd/shopd/internal/demo"
	"github.com/shopd/shopd/internal/pgcluster"
	"github.com/shopd/shopd/internal/stripemock"
	"github.com/shopd/shopd/store"
)

// services are what shopdev started for the server.
type services struct {
	// databaseURL is the private cluster's, or DATABASE_URL.
	databaseURL string
	db          *pgcluster.Cluster // nil when DATABASE_URL was given
	stripe      *stripemock.Server // nil when STRIPE_API_BASE was given
	// stripeLog is stripe-mock's plain-text request log, kept out of the
	// server's JSON log on stderr.
	stripeLog *os.File
}

// startServices starts the private cluster (unless DATABASE_URL is set) and
// seeds it while stripe-mock (unless STRIPE_API_BASE is set) starts.
func startServices(ctx context.Context, dc devConfig, log *slog.Logger, stderr io.Writer) (*services, error) {
	svc := &services{databaseURL: dc.DatabaseURL}
	stripeStarted := make(chan error, 1)
	if dc.StripeAPIBase == "" {
		go func() { stripeStarted <- svc.startStripeMock(ctx, dc, log) }()
	} else {
		stripeStarted <- nil
	}
	var dbErr error
	if dc.DatabaseURL == "" {
		dbErr = svc.startDatabase(ctx, dc, log, stderr)
	}
	if dbErr == nil {
		_, dbErr = seedDemo(ctx, svc.databaseURL, log)
	}
	if err := errors.Join(dbErr, <-stripeStarted); err != nil {
		svc.stop(log)
		return nil, err
	}
	return svc, nil
}

// startDatabase starts the private cluster for DATA_DIR/postgres, durable,
// so a restart keeps the data.
func (svc *services) startDatabase(ctx context.Context, dc devConfig, log *slog.Logger, stderr io.Writer) error {
	cl, err := pgcluster.Start(ctx, pgcluster.Options{
		Dir: filepath.Join(dc.DataDir, "postgres"), Database: "shop", Durable: true, Log: stderr,
	})
	if err != nil {
		return fmt.Errorf("start local postgres: %w", err)
	}
	svc.db, svc.databaseURL = cl, cl.URL
	log.Info("local postgres started", "url", cl.URL, "dir", cl.Dir, "startup_ms", cl.Startup.Milliseconds())
	return nil
}

// startStripeMock starts stripe-mock with its log in DATA_DIR.
func (svc *services) startStripeMock(ctx context.Context, dc devConfig, log *slog.Logger) error {
	f, err := os.OpenFile(filepath.Join(dc.DataDir, "stripe-mock.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open stripe-mock log: %w", err)
	}
	svc.stripeLog = f
	// The first run builds stripe-mock, which takes a while.
	log.Info("starting stripe-mock", "log", f.Name())
	sm, err := stripemock.Start(ctx, f)
	if err != nil {
		return fmt.Errorf("start stripe-mock (see %s): %w", f.Name(), err)
	}
	svc.stripe = sm
	log.Info("stripe-mock started", "url", sm.URL)
	return nil
}

// env is the server configuration that points at the started services.
func (svc *services) env() map[string]string {
	env := map[string]string{"DATABASE_URL": svc.databaseURL}
	if svc.stripe != nil {
		env["STRIPE_API_BASE"] = svc.stripe.URL
		env["STRIPE_SECRET_KEY"] = "sk_test_local"
	}
	return env
}

// stop stops what was started, stripe-mock first.
func (svc *services) stop(log *slog.Logger) {
	if svc.stripe != nil {
		if err := svc.stripe.Stop(); err != nil {
			log.Error("stop stripe-mock", "err", err)
		}
	}
	if svc.stripeLog != nil {
		svc.stripeLog.Close()
	}
	if svc.db != nil {
		if err := svc.db.Stop(); err != nil {
			log.Error("stop local postgres", "err", err)
		}
	}
}

// seedDemo migrates the database (opening the store does) and adds the demo
// catalog when the catalog is empty. It returns how many products it added.
func seedDemo(ctx context.Context, databaseURL string, log *slog.Logger) (int, error) {
	st, err := store.Open(ctx, databaseURL)
	if err != nil {
		return 0, fmt.Errorf("seed demo catalog: %w", err)
	}
	defer st.Close()
	n, err := demo.SeedCatalog(ctx, st)
	if err != nil {
		return 0, fmt.Errorf("seed demo catalog: %w", err)
	}
	log.Info("demo catalog", "products_added", n)
	return n, nil
}
