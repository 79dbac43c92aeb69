// Package jobs runs background work on River (github.com/riverqueue/river),
// a job queue in the same PostgreSQL as everything else: jobs are inserted
// in the transaction of the change that causes them, unique jobs make each
// effect happen once across any number of instances, and periodic jobs are
// enqueued by the elected leader only. Workers live beside their domain
// (orders/jobs.go); this package holds the client, its configuration, the
// schema migration and the job metrics.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
)

// Client is the River client on the store's database/sql pool; its
// transactions are *sql.Tx (store.Tx.SQL()).
type Client = river.Client[*sql.Tx]

// DefaultPollInterval is how often an idle client looks for due jobs when
// Config.PollInterval is zero.
const DefaultPollInterval = time.Second

// defaultCooldown is River's own minimum time between two fetches.
const defaultCooldown = 100 * time.Millisecond

// jobTimeout bounds one attempt of a job; every job here is a few
// database statements and at most two Stripe calls with their own 20 s
// deadlines.
const jobTimeout = time.Minute

// rescueAfter is when a job still marked running is presumed lost with its
// instance and run again. River's default, an hour, would also hold off
// the sweep for that long (a running job blocks a unique insert). Jobs
// honour their context, so one past jobTimeout has stopped.
const rescueAfter = 5 * time.Minute

// defaultStopTimeout bounds how long Stop lets running jobs finish when
// Config.StopTimeout is zero.
const defaultStopTimeout = 10 * time.Second

// Config configures a Client.
type Config struct {
	// PollInterval is how often an idle client looks for due jobs
	// (JOB_POLL_INTERVAL): the driver has no LISTEN, so a job is picked up
	// at most this long after it is due. 0 means DefaultPollInterval.
	PollInterval time.Duration
	// MaxWorkers is how many jobs this client runs at once (0: 10).
	MaxWorkers int
	// Workers are the registered job workers; every kind inserted must have one.
	Workers *river.Workers
	// Periodic are the periodic jobs, enqueued by the leader only.
	Periodic []*river.PeriodicJob
	// Kinds are the job kinds, the fixed label set of the metrics; a job of
	// another kind is counted as "other".
	Kinds []string
	// Registry receives the job metrics; nil registers none.
	Registry prometheus.Registerer
	// Log receives River's own logs (warnings and errors).
	Log *slog.Logger
	// StopTimeout is how long a stop waits for running jobs before it
	// cancels them (0: 10 s).
	StopTimeout time.Duration
	// TestOnly skips River's start-up jitter; tests only.
	TestOnly bool
}

// New builds a River client on db that works the default queue in poll
// mode. It does not start it: call Start after the migrations (Migrate).
func New(db *sql.DB, cfg Config) (*Client, error) {
	poll := cfg.PollInterval
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	workers := cfg.MaxWorkers
	if workers <= 0 {
		workers = 10
	}
	stop := cfg.StopTimeout
	if stop <= 0 {
		stop = defaultStopTimeout
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registry, cfg.Kinds)
	if err != nil {
		return nil, err
	}
	c, err := river.NewClient(riverdatabasesql.New(db), &river.Config{
		// River panics when the cooldown is longer than the poll interval.
		FetchCooldown:        min(defaultCooldown, poll),
		FetchPollInterval:    poll,
		PollOnly:             true,
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}},
		Workers:              cfg.Workers,
		PeriodicJobs:         cfg.Periodic,
		Middleware:           []rivertype.Middleware{m},
		Logger:               log,
		SoftStopTimeout:      stop,
		JobTimeout:           jobTimeout,
		RescueStuckJobsAfter: rescueAfter,
		TestOnly:             cfg.TestOnly,
	})
	if err != nil {
		return nil, fmt.Errorf("job client: %w", err)
	}
	return c, nil
}

// Stop stops c gracefully: no new jobs are fetched and running jobs
// finish; after the client's StopTimeout their contexts are cancelled.
// Should ctx end first, what still runs is cancelled at once and given a
// second to return. Call it before the database closes. A client that
// never started stops at once.
func Stop(ctx context.Context, c *Client) error {
	err := c.Stop(ctx)
	if err == nil {
		return nil
	}
	hard, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	return fmt.Errorf("stop job client: %w", errors.Join(err, c.StopAndCancel(hard)))
}

// riverLockKey serialises River's migrations across instances starting at
// once, as golang-migrate's lock does for ours (an arbitrary constant).
const (
	riverLockSQL   = `SELECT pg_advisory_lock(7401892331)`
	riverUnlockSQL = `SELECT pg_advisory_unlock(7401892331)`
)

// Migrate brings River's tables (river_job, river_leader, ...) up to date
// under a session advisory lock, so instances that start together do not
// race. Each River migration commits on its own: a later one uses an enum
// value an earlier one adds, which PostgreSQL refuses in one transaction.
// Run it at start-up after the application's own migrations.
func Migrate(ctx context.Context, db *sql.DB) error {
	m, err := rivermigrate.New(riverdatabasesql.New(db), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("job migrations: %w", err)
	}
	lock, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("job migrations: connection: %w", err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(ctx, riverLockSQL); err != nil {
		return fmt.Errorf("job migrations: lock: %w", err)
	}
	// Unlocked even when ctx has ended; closing the connection would too.
	defer lock.ExecContext(context.WithoutCancel(ctx), riverUnlockSQL) //nolint:errcheck
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("apply job migrations: %w", err)
	}
	return nil
}

// SchemaVersion names River's schema (its newest migration), so a test
// template built with another River is not reused.
func SchemaVersion() (string, error) {
	m, err := rivermigrate.New(riverdatabasesql.New(nil), nil)
	if err != nil {
		return "", fmt.Errorf("job migrations: %w", err)
	}
	all := m.AllVersions()
	if len(all) == 0 {
		return "river-none", nil
	}
	last := all[len(all)-1]
	return fmt.Sprintf("river-%d-%s", last.Version, last.Name), nil
}

// UniqueWhileQueued makes a job unique among the jobs of its kind and args
// that are still to run: two instances (or a redelivered cause) inserting
// the same job get one. Finished jobs are left out on purpose: every job
// re-reads the state it acts on, so a later cause may enqueue it again,
// and a stale repeat does nothing.
var UniqueWhileQueued = river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled,
}}
