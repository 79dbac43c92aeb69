// Package inventory holds the stock workflows that tell staff about stock:
// the low-stock alert, written once per crossing of a product's threshold,
// and the daily inventory report on a cron schedule. Crossings are recorded
// by the database in the transaction of the stock change (migration 0007's
// trigger), so checkout's hot path pays one comparison per line and an
// insert only when a line crosses; a job of the elected leader turns the
// recorded crossings into outbox messages shortly after.
package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/riverqueue/river"
	"github.com/robfig/cron/v3"

	"github.com/shopd/shopd/jobs"
	"github.com/shopd/shopd/notify"
)

// Job kinds; they are stored in river_job rows and label the job metrics,
// so they never change.
const (
	KindLowStockAlerts = "low_stock_alerts"
	KindDailyReport    = "daily_inventory_report"
)

// JobKinds lists this package's job kinds.
func JobKinds() []string { return []string{KindLowStockAlerts, KindDailyReport} }

// The templates this package sends.
const (
	TemplateLowStockAlert = notify.TemplateLowStockAlert
	TemplateDailyReport   = notify.TemplateDailyInventoryReport
)

// DefaultReportCron is INVENTORY_REPORT_CRON's default: 09:00 UTC daily.
const DefaultReportCron = "0 9 * * *"

// DefaultAlertEvery is how often the leader turns recorded crossings into
// alerts when Config.AlertEvery is zero.
const DefaultAlertEvery = time.Second

// alertBatch bounds the crossings one run writes; the next run takes the
// rest.
const alertBatch = 100

// Outbox writes a rendered message in the caller's transaction;
// *notify.Outbox is one.
type Outbox interface {
	EnqueueTemplate(ctx context.Context, tx *sql.Tx, name string, data any, m notify.Message) (string, error)
	StorefrontURL() string
}

// Config configures the workflows.
type Config struct {
	DB     *sqlx.DB
	Outbox Outbox
	// Recipient is INVENTORY_EMAIL.
	Recipient string
	// ReportCron is INVENTORY_REPORT_CRON, a 5-field cron in UTC (empty:
	// DefaultReportCron).
	ReportCron string
	// AlertEvery is how often recorded crossings become alerts (0:
	// DefaultAlertEvery).
	AlertEvery time.Duration
}

// Workflows runs the stock jobs.
type Workflows struct {
	db         *sqlx.DB
	outbox     Outbox
	recipient  string
	schedule   cron.Schedule
	alertEvery time.Duration
}

// ParseReportCron checks a 5-field cron expression and returns its
// schedule in UTC.
func ParseReportCron(spec string) (cron.Schedule, error) {
	if strings.HasPrefix(strings.TrimSpace(spec), "TZ=") || strings.HasPrefix(strings.TrimSpace(spec), "CRON_TZ=") {
		return nil, fmt.Errorf("inventory report cron %q: the schedule is in UTC; drop the time zone", spec)
	}
	s, err := cron.ParseStandard("CRON_TZ=UTC " + spec)
	if err != nil {
		return nil, fmt.Errorf("inventory report cron %q: %w", spec, err)
	}
	return s, nil
}

// New builds the workflows; a bad ReportCron is an error.
func New(cfg Config) (*Workflows, error) {
	if cfg.DB == nil || cfg.Outbox == nil || cfg.Recipient == "" {
		return nil, errors.New("inventory workflows: DB, Outbox and Recipient are required")
	}
	spec := cfg.ReportCron
	if spec == "" {
		spec = DefaultReportCron
	}
	sched, err := ParseReportCron(spec)
	if err != nil {
		return nil, err
	}
	every := cfg.AlertEvery
	if every <= 0 {
		every = DefaultAlertEvery
	}
	return &Workflows{db: cfg.DB, outbox: cfg.Outbox, recipient: cfg.Recipient, schedule: sched, alertEvery: every}, nil
}

// AddWorkers registers the workflows' workers on w.
func (wf *Workflows) AddWorkers(w *river.Workers) error {
	return errors.Join(
		river.AddWorkerSafely(w, &alertsWorker{wf: wf}),
		river.AddWorkerSafely(w, &reportWorker{wf: wf}),
	)
}

// PeriodicJobs are the leader's jobs: the alerts of recorded crossings
// every AlertEvery (and at once when a leader starts, so crossings recorded
// while no instance ran are not held back), and the report on ReportCron.
func (wf *Workflows) PeriodicJobs() []*river.PeriodicJob {
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(wf.alertEvery),
			func() (river.JobArgs, *river.InsertOpts) { return AlertsArgs{}, nil },
			&river.PeriodicJobOpts{ID: KindLowStockAlerts, RunOnStart: true}),
		river.NewPeriodicJob(wf.schedule,
			func() (river.JobArgs, *river.InsertOpts) {
				// The run is named by the minute it is due at (cron's
				// granularity): a leader elected mid-minute that enqueues
				// the same run again writes no second report.
				return ReportArgs{RunAt: time.Now().UTC().Truncate(time.Minute)}, nil
			},
			&river.PeriodicJobOpts{ID: KindDailyReport}),
	}
}

// AlertsArgs turns recorded low-stock crossings into alerts.
type AlertsArgs struct{}

// Kind is the job's kind.
func (AlertsArgs) Kind() string { return KindLowStockAlerts }

// InsertOpts keeps one run queued at a time; a completed run does not
// hold back the next.
func (AlertsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: jobs.UniqueWhileQueued}
}

type alertsWorker struct {
	river.WorkerDefaults[AlertsArgs]
	wf *Workflows
}

func (w *alertsWorker) Work(ctx context.Context, _ *river.Job[AlertsArgs]) error {
	_, err := w.wf.WriteAlerts(ctx)
	return err
}

// pendingCrossingsSQL takes the crossings not yet alerted; SKIP LOCKED lets
// a run that overlaps another take the rest instead of waiting.
const pendingCrossingsSQL = `
SELECT c.product_id, c.crossing, c.stock, c.threshold, p.sku, p.name
FROM low_stock_crossings c
JOIN products p ON p.id = c.product_id
WHERE c.alerted_at IS NULL
ORDER BY c.occurred_at, c.product_id, c.crossing
LIMIT $1
FOR UPDATE OF c SKIP LOCKED`

const markAlertedSQL = `
UPDATE low_stock_crossings
SET alerted_at = now()
WHERE product_id = $1
	AND crossing = $2`

type crossing struct {
	ProductID string `db:"product_id"`
	Crossing  int    `db:"crossing"`
	Stock     int    `db:"stock"`
	Threshold int    `db:"threshold"`
	SKU       string `db:"sku"`
	Name      string `db:"name"`
}

// AlertData is what the low-stock-alert template sees.
type AlertData struct {
	SKU, Name        string
	Stock, Threshold int
	ProductURL       string
	StorefrontURL    string
	// OrderNumber is the shared HTML layout's title.
	OrderNumber string
}

// WriteAlerts writes a low-stock-alert for each recorded crossing not yet
// alerted, and marks them, in one transaction. The dedupe key names the
// product and its crossing number, so a crossing is told once however
// often this runs. It returns how many crossings it took.
func (wf *Workflows) WriteAlerts(ctx context.Context) (int, error) {
	tx, err := wf.db.BeginTxx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("write low-stock alerts: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	var cs []crossing
	if err := tx.SelectContext(ctx, &cs, pendingCrossingsSQL, alertBatch); err != nil {
		return 0, fmt.Errorf("write low-stock alerts: read crossings: %w", err)
	}
	base := strings.TrimRight(wf.outbox.StorefrontURL(), "/")
	for _, c := range cs {
		data := AlertData{SKU: c.SKU, Name: c.Name, Stock: c.Stock, Threshold: c.Threshold,
			ProductURL: base + "/products/" + c.ProductID, StorefrontURL: base, OrderNumber: "Low stock: " + c.SKU}
		m := notify.Message{Channel: notify.ChannelEmail, Recipient: wf.recipient,
			DedupeKey: TemplateLowStockAlert + ":" + c.ProductID + ":" + strconv.Itoa(c.Crossing)}
		if _, err := wf.outbox.EnqueueTemplate(ctx, tx.Tx, TemplateLowStockAlert, data, m); err != nil {
			return 0, fmt.Errorf("write low-stock alert %s: %w", c.SKU, err)
		}
		if _, err := tx.ExecContext(ctx, markAlertedSQL, c.ProductID, c.Crossing); err != nil {
			return 0, fmt.Errorf("write low-stock alert %s: mark: %w", c.SKU, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("write low-stock alerts: commit: %w", err)
	}
	return len(cs), nil
}

// ReportArgs writes the inventory report of the run due at RunAt.
type ReportArgs struct {
	RunAt time.Time `json:"run_at"`
}

// Kind is the job's kind.
func (ReportArgs) Kind() string { return KindDailyReport }

// InsertOpts makes the run unique while it is queued; the report's dedupe
// key makes it unique for good.
func (ReportArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

type reportWorker struct {
	river.WorkerDefaults[ReportArgs]
	wf *Workflows
}

func (w *reportWorker) Work(ctx context.Context, j *river.Job[ReportArgs]) error {
	_, err := w.wf.WriteReport(ctx, j.Args.RunAt)
	return err
}

// lowStockSQL lists every active product at or below its threshold.
const lowStockSQL = `
SELECT id, sku, name, stock, low_stock_threshold
FROM products
WHERE is_active
	AND stock <= low_stock_threshold
ORDER BY sku, id`

// ReportLine is one product of the report.
type ReportLine struct {
	ID        string `db:"id"`
	SKU       string `db:"sku"`
	Name      string `db:"name"`
	Stock     int    `db:"stock"`
	Threshold int    `db:"low_stock_threshold"`
}

// ReportData is what the daily-inventory-report template sees.
type ReportData struct {
	Date          string // the run's time, "2006-01-02 15:04 UTC"
	Products      []ReportLine
	StorefrontURL string
	// OrderNumber is the shared HTML layout's title.
	OrderNumber string
}

// WriteReport writes the inventory report of the run due at runAt, listing
// every active product at or below its threshold; with none, it writes
// nothing. The dedupe key is the run's time, so a run is reported once
// however often its job runs. It returns the notification's id, "" when
// nothing was written.
func (wf *Workflows) WriteReport(ctx context.Context, runAt time.Time) (string, error) {
	tx, err := wf.db.BeginTxx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("write inventory report: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	var lines []ReportLine
	if err := tx.SelectContext(ctx, &lines, lowStockSQL); err != nil {
		return "", fmt.Errorf("write inventory report: list: %w", err)
	}
	if len(lines) == 0 {
		return "", nil
	}
	runAt = runAt.UTC()
	date := runAt.Format("2006-01-02 15:04 UTC")
	data := ReportData{Date: date, Products: lines, StorefrontURL: wf.outbox.StorefrontURL(), OrderNumber: "Inventory report " + date}
	m := notify.Message{Channel: notify.ChannelEmail, Recipient: wf.recipient,
		DedupeKey: TemplateDailyReport + ":" + runAt.Format(time.RFC3339)}
	id, err := wf.outbox.EnqueueTemplate(ctx, tx.Tx, TemplateDailyReport, data, m)
	if err != nil {
		return "", fmt.Errorf("write inventory report: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("write inventory report: commit: %w", err)
	}
	return id, nil
}
