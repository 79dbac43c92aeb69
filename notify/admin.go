package notify

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd"
)

// Filter selects notifications for the admins' list; empty fields match all.
type Filter struct {
	Status, Template, OrderID, CustomerID string
	// Limit is the page size (0: 20; at most 100); Cursor is the nextCursor
	// of the previous page, "" for the first.
	Limit  int
	Cursor string
}

const listSQL = `
SELECT id, channel, template, recipient, subject, body_text, body_html, status, attempts,
	last_error, order_id, customer_id, dedupe_key, created_at, sent_at
FROM notifications
WHERE ($1 = '' OR status = $1)
	AND ($2 = '' OR template = $2)
	AND ($3::uuid IS NULL OR order_id = $3::uuid)
	AND ($4::uuid IS NULL OR customer_id = $4::uuid)
	AND ($5::timestamptz IS NULL OR (created_at, id) < ($5::timestamptz, $6::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $7`

type cursor struct {
	T  time.Time `json:"t"`
	ID string    `json:"i"`
}

var errBadCursor = shopd.FieldError("cursor", "The cursor is not valid; use nextCursor from a previous page.")

// List returns a page of notifications, newest first, and the cursor of
// the next page ("" at the end). A malformed cursor is EInvalid.
func (o *Outbox) List(ctx context.Context, f Filter) ([]Notification, string, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 20
	}
	limit = min(limit, 100)
	var afterT *time.Time
	var afterID *string
	if f.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(f.Cursor)
		var c cursor
		if err == nil {
			err = json.Unmarshal(b, &c)
		}
		if err != nil || uuid.Validate(c.ID) != nil {
			return nil, "", errBadCursor
		}
		afterT, afterID = &c.T, &c.ID
	}
	var rows []Notification
	err := o.db.SelectContext(ctx, &rows, listSQL, f.Status, f.Template, nullUUID(f.OrderID), nullUUID(f.CustomerID),
		afterT, afterID, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list notifications: %w", err)
	}
	if len(rows) <= limit {
		return rows, "", nil
	}
	rows = rows[:limit]
	last := rows[limit-1]
	b, _ := json.Marshal(cursor{T: last.CreatedAt, ID: last.ID})
	return rows, base64.RawURLEncoding.EncodeToString(b), nil
}

// nullUUID is nil for "" (no filter); an id that is not a UUID matches
// nothing rather than failing the query.
func nullUUID(s string) any {
	if s == "" {
		return nil
	}
	if uuid.Validate(s) != nil {
		return uuid.Nil.String()
	}
	return s
}

const (
	lockNotificationSQL = `
SELECT status
FROM notifications
WHERE id = $1
FOR UPDATE`

	requeueSQL = `
UPDATE notifications
SET status = 'pending'
WHERE id = $1
RETURNING id, channel, template, recipient, subject, body_text, body_html, status, attempts,
	last_error, order_id, customer_id, dedupe_key, created_at, sent_at`
)

// Retry queues a failed notification again, with a new send job of
// MaxAttempts attempts, in one transaction. It returns ENotFound for an
// unknown id and EConflict unless the notification failed.
func (o *Outbox) Retry(ctx context.Context, id string) (Notification, error) {
	if uuid.Validate(id) != nil {
		return Notification{}, shopd.Errorf(shopd.ENotFound, "Notification %s not found.", id)
	}
	tx, err := o.db.BeginTxx(ctx, nil)
	if err != nil {
		return Notification{}, fmt.Errorf("retry notification %s: %w", id, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	var status string
	err = tx.GetContext(ctx, &status, lockNotificationSQL, id)
	if err == sql.ErrNoRows {
		return Notification{}, shopd.Errorf(shopd.ENotFound, "Notification %s not found.", id)
	}
	if err != nil {
		return Notification{}, fmt.Errorf("retry notification %s: %w", id, err)
	}
	if status != StatusFailed {
		return Notification{}, shopd.Errorf(shopd.EConflict, "Notification %s is %s; only a failed one can be retried.", id, status)
	}
	var n Notification
	if err := tx.GetContext(ctx, &n, requeueSQL, id); err != nil {
		return Notification{}, fmt.Errorf("retry notification %s: %w", id, err)
	}
	if err := o.insertJob(ctx, tx.Tx, SendArgs{NotificationID: id, Round: n.Attempts}); err != nil {
		return Notification{}, err
	}
	if err := tx.Commit(); err != nil {
		return Notification{}, fmt.Errorf("retry notification %s: commit: %w", id, err)
	}
	return n, nil
}
