package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// otherKind labels a job whose kind is not in the configured set, so a
// stray row never creates a new series.
const otherKind = "other"

// metrics counts job attempts by kind. It is a worker middleware: it sees
// every attempt's outcome as it happens, on the goroutine that ran it, so
// no event can be dropped by a slow subscriber.
type metrics struct {
	river.MiddlewareDefaults
	kinds   []string
	run     *prometheus.CounterVec
	failed  *prometheus.CounterVec
	retried *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, kinds []string) (*metrics, error) {
	m := &metrics{
		kinds: kinds,
		run: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopd_jobs_run_total",
			Help: "Job attempts finished, by kind (whatever their outcome).",
		}, []string{"kind"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopd_jobs_failed_total",
			Help: "Jobs given up for good, by kind: their last attempt failed, or they were cancelled.",
		}, []string{"kind"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopd_jobs_retried_total",
			Help: "Job attempts that failed and are tried again later, by kind.",
		}, []string{"kind"}),
	}
	// Every series exists from the start, at zero, so a rate() over it
	// works before the first job of a kind runs.
	for _, k := range append(slices.Clone(kinds), otherKind) {
		m.run.WithLabelValues(k)
		m.failed.WithLabelValues(k)
		m.retried.WithLabelValues(k)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.run, m.failed, m.retried} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register job metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Work runs the job and counts its outcome. A snooze is neither a failure
// nor a retry: the job asked to look again later. A panic counts as a
// failed attempt and goes on to River, which records it as one.
func (m *metrics) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	finished := false
	defer func() {
		if !finished {
			m.count(job, errPanicked)
		}
	}()
	err := doInner(ctx)
	finished = true
	m.count(job, err)
	return err
}

var errPanicked = errors.New("job panicked")

func (m *metrics) count(job *rivertype.JobRow, err error) {
	kind := job.Kind
	if !slices.Contains(m.kinds, kind) {
		kind = otherKind
	}
	m.run.WithLabelValues(kind).Inc()
	var snooze *rivertype.JobSnoozeError
	var cancel *rivertype.JobCancelError
	switch {
	case err == nil, errors.As(err, &snooze):
	case errors.As(err, &cancel), job.Attempt >= job.MaxAttempts:
		m.failed.WithLabelValues(kind).Inc()
	default:
		m.retried.WithLabelValues(kind).Inc()
	}
}

var _ rivertype.WorkerMiddleware = (*metrics)(nil)
