// Package server is the shopd program: it reads the configuration once,
// opens the store, wires tokens, payments, orders and handlers together and
// serves until its context ends. cmd/shopd is a thin main around Run;
// cmd/shopdev starts local services and then runs the same Program.
//
// Nothing here starts databases, mocks or installs anything: the server
// needs a PostgreSQL at DATABASE_URL.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/shopd/shopd/jobs"
	"github.com/shopd/shopd/store"
)

const usage = `usage: shopd [serve|migrate]

  serve    serve the API (the default)
  migrate  apply the database migrations and exit

Configuration comes from the environment; DATABASE_URL is required.`

// errNoDatabase explains the one setting the server cannot default.
var errNoDatabase = errors.New("DATABASE_URL is not set: shopd serves an existing PostgreSQL " +
	"(DATABASE_URL=postgres://user:password@host:5432/shop). For local development run `make run`, " +
	"which starts shopd with its own PostgreSQL, stripe-mock and a demo catalog")

// Run is the whole shopd program, callable from tests: it returns when ctx
// is cancelled (after a graceful shutdown, with nil) or on a fatal error.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return Program{}.Run(ctx, args, getenv, stdout, stderr)
}

// defaultMemoryLimit is the Go runtime's soft memory limit unless
// GOMEMLIMIT sets one.
const defaultMemoryLimit = 56 << 20

// Program is shopd with the hooks a launcher that embeds it needs. The zero
// Program is what Run runs.
type Program struct {
	// Serving, when set, is called once the server accepts connections,
	// with the base URL it answers on (http://host:port, a loopback host
	// when it listens on all interfaces).
	Serving func(baseURL string)
}

// Run runs the command in args (serve when empty) with the configuration
// from getenv. See the package Run.
func (p Program) Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if getenv("GOGC") == "" {
		// The live heap is a few MiB and requests allocate a lot of short-
		// lived rows and JSON: collecting at 5x the live heap instead of 2x
		// costs some MiB and saves about a quarter of a request's CPU.
		debug.SetGCPercent(400)
	}
	if getenv("GOMEMLIMIT") == "" {
		// GOGC=400 lets the heap reach 5x what is live; a login flood keeps
		// two 7 MiB argon2id blocks live and leaves one of garbage per
		// attempt. A soft limit makes the collector run (and return memory
		// to the system) before the process passes it. Serving keeps well
		// under it (about 15 MiB live, the catalog cache's CATALOG_CACHE_MB
		// on top), so it costs only garbage collected sooner. The limit
		// counts the Go runtime's memory only; the binary's own mapped pages
		// (about 33 MiB) come on top in RSS: 56 MiB keeps the whole bench,
		// set-up logins included, under 100 MiB of RSS with room to spare
		// (64 MiB reached 99 MiB; 128 MiB, 145).
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve", "migrate":
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q (want serve or migrate)", cmd)
	}
	if len(args) > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", cmd, args)
	}
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if cfg.DatabaseURL == "" {
		return errNoDatabase
	}
	if cmd == "migrate" {
		return migrate(ctx, cfg, stdout)
	}
	logs := newLogWriter(stderr, logBufferSize, logFlushEvery)
	defer logs.Close()
	return p.serve(ctx, cfg, slog.New(slog.NewJSONHandler(logs, nil)), stdout)
}

// migrate applies the migrations, ours (opening the store does) and the
// job queue's, and exits.
func migrate(ctx context.Context, cfg Config, stdout io.Writer) error {
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := jobs.Migrate(ctx, st.DB().DB); err != nil {
		st.Close()
		return fmt.Errorf("migrate: %w", err)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("migrate: close database: %w", err)
	}
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}
