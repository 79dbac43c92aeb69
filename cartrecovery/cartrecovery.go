// Package cartrecovery reminds customers of the carts they left: an
// abandoned-cart email to a customer who opted in to marketing, when a cart
// with items has not changed for a while. Each change of a cart schedules,
// in its own transaction, a job for the version it made; the job re-reads
// the cart and writes the message only if the cart is still at that
// version and still holds items, so a later change, a checkout (which
// empties the cart) or an emptied cart sends nothing.
package cartrecovery

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
	"github.com/riverqueue/river/rivertype"

	"github.com/shopd/shopd/notify"
	"github.com/shopd/shopd/store"
)

// KindAbandonedCart is the job kind; it is stored in river_job rows and
// labels the job metrics, so it never changes.
const KindAbandonedCart = "abandoned_cart"

// JobKinds lists this package's job kinds.
func JobKinds() []string { return []string{KindAbandonedCart} }

// TemplateAbandonedCart is the message's template.
const TemplateAbandonedCart = notify.TemplateAbandonedCart

// DefaultAfter is ABANDONED_CART_AFTER's default.
const DefaultAfter = 24 * time.Hour

// Outbox writes a rendered message in the caller's transaction;
// *notify.Outbox is one.
type Outbox interface {
	EnqueueTemplate(ctx context.Context, tx *sql.Tx, name string, data any, m notify.Message) (string, error)
	StorefrontURL() string
}

// JobInserter enqueues a job in the caller's transaction; jobs.Client is
// one.
type JobInserter interface {
	InsertTx(ctx context.Context, tx *sql.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// Recovery schedules and writes abandoned-cart messages. It is the store's
// store.CartWatcher.
type Recovery struct {
	db     *sqlx.DB
	outbox Outbox
	jobs   JobInserter
	after  time.Duration
}

var _ store.CartWatcher = (*Recovery)(nil)

// New builds a Recovery that mails after a cart has not changed for after
// (0: DefaultAfter). Its job inserter comes later (SetJobs): the job
// client needs its worker first.
func New(db *sqlx.DB, outbox Outbox, after time.Duration) *Recovery {
	if after <= 0 {
		after = DefaultAfter
	}
	return &Recovery{db: db, outbox: outbox, after: after}
}

// SetJobs gives the recovery its job inserter.
func (r *Recovery) SetJobs(j JobInserter) { r.jobs = j }

// AddWorkers registers the abandoned-cart worker on w.
func (r *Recovery) AddWorkers(w *river.Workers) error {
	return river.AddWorkerSafely(w, &worker{r: r})
}

// Args checks the cart of UserID at Version (its updated_at in
// microseconds since the epoch, the database's precision).
type Args struct {
	UserID  string `json:"user_id"`
	Version int64  `json:"version"`
}

// Kind is the job's kind.
func (Args) Kind() string { return KindAbandonedCart }

// InsertOpts makes the job unique per cart version.
func (Args) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// CartChanged schedules, in tx, the check of the cart's new version after
// the delay. A cart that changes again schedules another; the earlier job
// then finds its version gone and does nothing.
func (r *Recovery) CartChanged(ctx context.Context, tx *sql.Tx, userID string, version time.Time) error {
	if r.jobs == nil {
		return nil
	}
	args := Args{UserID: userID, Version: version.UnixMicro()}
	if _, err := r.jobs.InsertTx(ctx, tx, args, &river.InsertOpts{ScheduledAt: version.Add(r.after)}); err != nil {
		return fmt.Errorf("schedule abandoned-cart check: %w", err)
	}
	return nil
}

type worker struct {
	river.WorkerDefaults[Args]
	r *Recovery
}

func (w *worker) Work(ctx context.Context, j *river.Job[Args]) error {
	_, err := w.r.Remind(ctx, j.Args.UserID, j.Args.Version)
	return err
}

// cartOwnerSQL locks the cart, so a change racing the reminder waits for
// it (or the reminder sees the change), and reads what the message needs
// of its owner.
const cartOwnerSQL = `
SELECT c.updated_at, u.email, u.first_name, u.marketing_opt_in
FROM carts c
JOIN users u ON u.id = c.user_id
WHERE c.user_id = $1
FOR UPDATE OF c`

const cartItemsSQL = `
SELECT p.name, i.quantity
FROM cart_items i
JOIN products p ON p.id = i.product_id
WHERE i.user_id = $1
ORDER BY i.added_at, i.product_id`

type owner struct {
	UpdatedAt      time.Time `db:"updated_at"`
	Email          string    `db:"email"`
	FirstName      string    `db:"first_name"`
	MarketingOptIn bool      `db:"marketing_opt_in"`
}

// ItemData is a cart line in the template.
type ItemData struct {
	Name     string `db:"name"`
	Quantity int    `db:"quantity"`
}

// Data is what the abandoned-cart template sees.
type Data struct {
	Name          string
	Items         []ItemData
	CartURL       string
	StorefrontURL string
	// OrderNumber is the shared HTML layout's title.
	OrderNumber string
}

// Remind writes the abandoned-cart message of userID's cart at version
// (microseconds) if the cart is still at that version, holds items and
// its owner opted in to marketing. The dedupe key is the cart and its
// version: one message per change of the cart. It returns the
// notification's id, "" when nothing was written.
func (r *Recovery) Remind(ctx context.Context, userID string, version int64) (string, error) {
	tx, err := r.db.BeginTxx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("remind of cart %s: begin: %w", userID, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	var o owner
	err = tx.GetContext(ctx, &o, cartOwnerSQL, userID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("remind of cart %s: read: %w", userID, err)
	}
	if o.UpdatedAt.UnixMicro() != version || !o.MarketingOptIn {
		return "", nil
	}
	var items []ItemData
	if err := tx.SelectContext(ctx, &items, cartItemsSQL, userID); err != nil {
		return "", fmt.Errorf("remind of cart %s: read items: %w", userID, err)
	}
	if len(items) == 0 {
		return "", nil
	}
	base := strings.TrimRight(r.outbox.StorefrontURL(), "/")
	data := Data{Name: o.FirstName, Items: items, CartURL: base + "/cart", StorefrontURL: base, OrderNumber: "Your cart"}
	m := notify.Message{Channel: notify.ChannelEmail, Recipient: o.Email, CustomerID: userID,
		DedupeKey: TemplateAbandonedCart + ":" + userID + ":" + strconv.FormatInt(version, 10)}
	id, err := r.outbox.EnqueueTemplate(ctx, tx.Tx, TemplateAbandonedCart, data, m)
	if err != nil {
		return "", fmt.Errorf("remind of cart %s: %w", userID, err)
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("remind of cart %s: commit: %w", userID, err)
	}
	return id, nil
}
