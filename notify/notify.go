// Package notify is the transactional outbox of customer and staff
// messages: a notification row is written in the transaction of the change
// that causes it, with the River job that sends it, so nothing is sent
// before commit and nothing committed is lost. Messages are rendered from
// embedded templates when the row is written; senders (SMTP email, a
// Twilio-compatible SMS API, or the log) deliver them from the job, with
// retries and exponential backoff, so a slow or failing provider never
// delays an API request or a webhook.
package notify

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Channels.
const (
	ChannelEmail = "email"
	ChannelSMS   = "sms"
)

// Statuses of a notification.
const (
	StatusPending = "pending"
	StatusSent    = "sent"
	StatusFailed  = "failed"
)

// DefaultMaxAttempts is how many send attempts a notification gets when
// Config.MaxAttempts is zero (NOTIFY_MAX_ATTEMPTS).
const DefaultMaxAttempts = 8

// DefaultRetryBase is the first retry's delay when Config.RetryBase is
// zero; each further retry waits twice as long, up to maxRetryDelay.
const DefaultRetryBase = 10 * time.Second

// maxRetryDelay caps the backoff, so a provider back after an outage is
// used within hours, not days.
const maxRetryDelay = 6 * time.Hour

// sendTimeout bounds one send attempt.
const sendTimeout = 30 * time.Second

// JobInserter enqueues a job in the caller's transaction; jobs.Client is one.
type JobInserter interface {
	InsertTx(ctx context.Context, tx *sql.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// Sender delivers one rendered notification. An error means it was not
// delivered and may be tried again.
type Sender interface {
	Send(ctx context.Context, n Notification) error
}

// Config configures an Outbox.
type Config struct {
	// DB is the database the outbox lives in (the store's pool).
	DB *sqlx.DB
	// Jobs enqueues the send jobs; nil writes rows that nothing sends
	// (tools).
	Jobs JobInserter
	// Email and SMS deliver the messages of their channel; nil logs them
	// (Log) and marks them sent.
	Email, SMS Sender
	// StorefrontURL is the shop's web address, the base of links in
	// messages.
	StorefrontURL string
	// WarehouseEmail receives the staff's order messages (the fulfilment
	// reminder); "" is warehouse@localhost.
	WarehouseEmail string
	// MaxAttempts is how many send attempts a notification gets before it
	// is failed (0: DefaultMaxAttempts).
	MaxAttempts int
	// RetryBase is the delay before the first retry, doubled for each
	// further one (0: DefaultRetryBase).
	RetryBase time.Duration
	// Registry receives the notification metrics; nil registers none.
	Registry prometheus.Registerer
	Log      *slog.Logger
}

// Outbox writes notifications in their cause's transaction and sends them
// from jobs.
type Outbox struct {
	db          *sqlx.DB
	jobs        JobInserter
	email, sms  Sender
	storefront  string
	warehouse   string
	maxAttempts int
	retryBase   time.Duration
	metrics     *metrics
	log         *slog.Logger
}

// New builds an Outbox.
func New(cfg Config) (*Outbox, error) {
	o := &Outbox{
		db:          cfg.DB,
		jobs:        cfg.Jobs,
		storefront:  cfg.StorefrontURL,
		warehouse:   cmp.Or(cfg.WarehouseEmail, "warehouse@localhost"),
		maxAttempts: cfg.MaxAttempts,
		retryBase:   cfg.RetryBase,
		log:         cfg.Log,
	}
	if o.maxAttempts <= 0 {
		o.maxAttempts = DefaultMaxAttempts
	}
	if o.retryBase <= 0 {
		o.retryBase = DefaultRetryBase
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	o.email, o.sms = cfg.Email, cfg.SMS
	if o.email == nil {
		o.email = LogSender{Log: o.log}
	}
	if o.sms == nil {
		o.sms = LogSender{Log: o.log}
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	o.metrics = m
	return o, nil
}

// SetJobs gives the outbox its job inserter, which is built after it (the
// job client needs the outbox's worker first).
func (o *Outbox) SetJobs(j JobInserter) { o.jobs = j }

// Notification is one message of the outbox.
type Notification struct {
	ID         string     `db:"id"`
	Channel    string     `db:"channel"`
	Template   string     `db:"template"`
	Recipient  string     `db:"recipient"`
	Subject    string     `db:"subject"`
	BodyText   string     `db:"body_text"`
	BodyHTML   string     `db:"body_html"`
	Status     string     `db:"status"`
	Attempts   int        `db:"attempts"`
	LastError  *string    `db:"last_error"`
	OrderID    *string    `db:"order_id"`
	CustomerID *string    `db:"customer_id"`
	DedupeKey  string     `db:"dedupe_key"`
	CreatedAt  time.Time  `db:"created_at"`
	SentAt     *time.Time `db:"sent_at"`
}

// Message is a notification to write: rendered, addressed, with the key of
// its cause.
type Message struct {
	Channel    string
	Template   string
	Recipient  string
	Subject    string
	BodyText   string
	BodyHTML   string
	OrderID    string
	CustomerID string
	// DedupeKey names the template and the cause; a second message with
	// the same key is not written.
	DedupeKey string
}

const insertNotificationSQL = `
INSERT INTO notifications (channel, template, recipient, subject, body_text, body_html, order_id, customer_id, dedupe_key)
VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, '')::uuid, NULLIF($8, '')::uuid, $9)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id`

// Enqueue writes m in tx with the job that sends it. A message whose
// dedupe key was written before is dropped: it reports "" and no error.
func (o *Outbox) Enqueue(ctx context.Context, tx *sql.Tx, m Message) (string, error) {
	var id string
	err := tx.QueryRowContext(ctx, insertNotificationSQL, m.Channel, m.Template, m.Recipient, m.Subject,
		m.BodyText, m.BodyHTML, m.OrderID, m.CustomerID, m.DedupeKey).Scan(&id)
	if err == sql.ErrNoRows {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("enqueue notification %s: %w", m.DedupeKey, err)
	}
	if err := o.insertJob(ctx, tx, SendArgs{NotificationID: id}); err != nil {
		return "", err
	}
	return id, nil
}

func (o *Outbox) insertJob(ctx context.Context, tx *sql.Tx, args SendArgs) error {
	if o.jobs == nil {
		return nil
	}
	if _, err := o.jobs.InsertTx(ctx, tx, args, &river.InsertOpts{MaxAttempts: o.maxAttempts}); err != nil {
		return fmt.Errorf("enqueue send of notification %s: %w", args.NotificationID, err)
	}
	return nil
}
