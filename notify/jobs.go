package notify

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/shopd/shopd/jobs"
)

// KindSend is the job kind that sends a notification; it is stored in
// river_job rows and labels the job metrics, so it never changes.
const KindSend = "send_notification"

// JobKinds lists this package's job kinds.
func JobKinds() []string { return []string{KindSend} }

// SendArgs sends one notification of the outbox.
type SendArgs struct {
	NotificationID string `json:"notification_id"`
	// Round is the notification's attempts when the job was queued: 0 for
	// the first job, more for an admin's retry. It keeps a retry's job
	// apart from the failed job it follows, which may not have finished
	// yet when the row says failed (and would swallow it as a duplicate).
	Round int `json:"round"`
}

// Kind is the job's kind.
func (SendArgs) Kind() string { return KindSend }

// InsertOpts makes the job unique per notification among the jobs still
// to run: two instances, or a redelivered cause, never queue it twice.
func (SendArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: jobs.UniqueWhileQueued}
}

// sendWorker is the send_notification job.
type sendWorker struct {
	river.WorkerDefaults[SendArgs]
	o *Outbox
}

// NextRetry backs off exponentially from the outbox's RetryBase: a
// provider that is down is not hammered, and one back soon is used soon.
func (w *sendWorker) NextRetry(j *river.Job[SendArgs]) time.Time {
	return time.Now().Add(w.o.backoff(j.Attempt))
}

// Timeout bounds one attempt: the send's own bound plus the row updates.
func (w *sendWorker) Timeout(*river.Job[SendArgs]) time.Duration { return sendTimeout + 10*time.Second }

func (w *sendWorker) Work(ctx context.Context, j *river.Job[SendArgs]) error {
	return w.o.send(ctx, j.Args.NotificationID, j.Attempt >= j.MaxAttempts)
}

// backoff is the delay after failed attempt n (1-based): RetryBase,
// doubled per attempt, capped.
func (o *Outbox) backoff(attempt int) time.Duration {
	d := o.retryBase
	for i := 1; i < attempt && d < maxRetryDelay; i++ {
		d *= 2
	}
	return min(d, maxRetryDelay)
}

// AddWorkers registers the outbox's worker on w.
func (o *Outbox) AddWorkers(w *river.Workers) error {
	return river.AddWorkerSafely(w, &sendWorker{o: o})
}

// claimSQL counts an attempt on a notification still to send and returns
// it; a sent or failed one (a stale job) returns no row.
const claimSQL = `
UPDATE notifications
SET attempts = attempts + 1
WHERE id = $1
	AND status = 'pending'
RETURNING id, channel, template, recipient, subject, body_text, body_html, status, attempts,
	last_error, order_id, customer_id, dedupe_key, created_at, sent_at`

const markSentSQL = `
UPDATE notifications
SET status = 'sent',
	sent_at = now(),
	last_error = NULL
WHERE id = $1`

const markFailedSQL = `
UPDATE notifications
SET status = CASE WHEN $3 THEN 'failed' ELSE status END,
	last_error = $2
WHERE id = $1`

// send makes one attempt at notification id. A failed attempt is recorded
// on the row and returned, so River retries it; the last one (final)
// marks the row failed.
func (o *Outbox) send(ctx context.Context, id string, final bool) error {
	var n Notification
	err := o.db.GetContext(ctx, &n, claimSQL, id)
	if err == sql.ErrNoRows {
		return nil
	}
	if err != nil {
		return fmt.Errorf("claim notification %s: %w", id, err)
	}
	sender := o.email
	if n.Channel == ChannelSMS {
		sender = o.sms
	}
	sctx, cancel := context.WithTimeout(ctx, sendTimeout)
	sendErr := sender.Send(sctx, n)
	cancel()
	tmpl, channel := labels(n)
	// Recorded even when the job's context has ended: the attempt was made.
	rctx := context.WithoutCancel(ctx)
	if sendErr == nil {
		if _, err := o.db.ExecContext(rctx, markSentSQL, id); err != nil {
			return fmt.Errorf("mark notification %s sent: %w", id, err)
		}
		o.metrics.sent.WithLabelValues(tmpl, channel).Inc()
		o.log.InfoContext(ctx, "notification sent", "id", id, "template", n.Template, "channel", n.Channel, "attempt", n.Attempts)
		return nil
	}
	if _, err := o.db.ExecContext(rctx, markFailedSQL, id, sendErr.Error(), final); err != nil {
		return fmt.Errorf("record failed notification %s: %w", id, err)
	}
	if final {
		o.metrics.failed.WithLabelValues(tmpl, channel).Inc()
		o.log.WarnContext(ctx, "notification failed for good", "id", id, "template", n.Template, "attempts", n.Attempts, "err", sendErr)
	}
	return fmt.Errorf("send notification %s: %w", id, sendErr)
}
