package jobs_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/jobs"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// flakyArgs fails its first attempt and succeeds on the next.
type flakyArgs struct{}

func (flakyArgs) Kind() string { return "flaky" }

type flakyWorker struct {
	river.WorkerDefaults[flakyArgs]
}

func (flakyWorker) Work(_ context.Context, j *river.Job[flakyArgs]) error {
	if j.Attempt == 1 {
		return errors.New("first attempt fails")
	}
	return nil
}

// NextRetry retries at once: the test waits milliseconds, not River's backoff.
func (flakyWorker) NextRetry(*river.Job[flakyArgs]) time.Time { return time.Now() }

// panickyArgs panics on its first attempt and succeeds on the next.
type panickyArgs struct{}

func (panickyArgs) Kind() string { return "panicky" }

type panickyWorker struct {
	river.WorkerDefaults[panickyArgs]
}

func (panickyWorker) Work(_ context.Context, j *river.Job[panickyArgs]) error {
	if j.Attempt == 1 {
		panic("first attempt panics")
	}
	return nil
}

// NextRetry retries at once.
func (panickyWorker) NextRetry(*river.Job[panickyArgs]) time.Time { return time.Now() }

// doomedArgs cancels itself: failed for good on its first attempt.
type doomedArgs struct{}

func (doomedArgs) Kind() string { return "doomed" }

// snoozyArgs snoozes once, then succeeds.
type snoozyArgs struct{}

func (snoozyArgs) Kind() string { return "snoozy" }

// strayArgs is a kind left out of the metrics' label set.
type strayArgs struct{}

func (strayArgs) Kind() string { return "stray" }

// counter reads a job counter's value for kind from reg.
func counter(t *testing.T, reg *prometheus.Registry, name, kind string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{kind=%q}", name, kind)
	return 0
}

// TestMetricsByKind: every finished attempt counts as run; a failure (or a
// panic) that is tried again counts as retried, one given up (cancelled) as failed, a
// snooze as neither; a kind outside the set is counted as "other".
func TestMetricsByKind(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	reg := prometheus.NewRegistry()
	var snoozed atomic.Bool
	workers := river.NewWorkers()
	river.AddWorker(workers, flakyWorker{})
	river.AddWorker(workers, panickyWorker{})
	river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[doomedArgs]) error {
		return river.JobCancel(errors.New("no point trying again"))
	}))
	river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[snoozyArgs]) error {
		if snoozed.CompareAndSwap(false, true) {
			return river.JobSnooze(time.Millisecond)
		}
		return nil
	}))
	river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[strayArgs]) error { return nil }))
	c, err := jobs.New(db.DB, jobs.Config{
		PollInterval: 20 * time.Millisecond, Workers: workers, Registry: reg, TestOnly: true,
		Kinds: []string{"flaky", "panicky", "doomed", "snoozy"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := jobs.Stop(ctx, c); err != nil {
			t.Error(err)
		}
	})
	if got := counter(t, reg, "shopd_jobs_run_total", "flaky"); got != 0 {
		t.Fatalf("flaky runs before any job = %v, want a zero series", got)
	}
	for _, args := range []river.JobArgs{flakyArgs{}, panickyArgs{}, doomedArgs{}, snoozyArgs{}, strayArgs{}} {
		if _, err := c.Insert(ctx, args, nil); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var left int
		if err := db.Get(&left, `SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'cancelled', 'discarded')`); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs still to finish", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := []struct {
		kind                 string
		run, failed, retried float64
	}{
		{"flaky", 2, 0, 1},
		{"panicky", 2, 0, 1},
		{"doomed", 1, 1, 0},
		{"snoozy", 2, 0, 0},
		{"other", 1, 0, 0},
	}
	for _, w := range want {
		run := counter(t, reg, "shopd_jobs_run_total", w.kind)
		failed := counter(t, reg, "shopd_jobs_failed_total", w.kind)
		retried := counter(t, reg, "shopd_jobs_retried_total", w.kind)
		if run != w.run || failed != w.failed || retried != w.retried {
			t.Errorf("%s: run %v failed %v retried %v, want %v %v %v", w.kind, run, failed, retried, w.run, w.failed, w.retried)
		}
	}
}

// TestNewAcceptsAPollFasterThanRiversCooldown: River panics when its fetch
// cooldown (100 ms by default) is longer than the poll interval; New keeps
// the cooldown within a short JOB_POLL_INTERVAL.
func TestNewAcceptsAPollFasterThanRiversCooldown(t *testing.T) {
	t.Parallel()
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[strayArgs]) error { return nil }))
	if _, err := jobs.New(pgtest.NewDB(t).DB, jobs.Config{PollInterval: 5 * time.Millisecond, Workers: workers}); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateConcurrently: instances that start together all run River's
// migrations; under the lock each finds the schema current and none fails.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	// As on a database from before jobs existed: River's schema removed.
	m, err := rivermigrate.New(riverdatabasesql.New(db.DB), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Migrate(context.Background(), rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{TargetVersion: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`SELECT 1 FROM river_job`); err == nil {
		t.Fatal("river_job is still there after migrating down")
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = jobs.Migrate(context.Background(), db.DB)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM river_job`); err != nil {
		t.Fatalf("river_job after migrating: %v", err)
	}
	// River's schema and its migration lines are all there again.
	if err := db.Get(&n, `SELECT count(*) FROM river_migration`); err != nil || n == 0 {
		t.Fatalf("river_migration rows = %d (%v), want River's migrations recorded", n, err)
	}
}
