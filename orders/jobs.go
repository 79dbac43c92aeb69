package orders

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/jobs"
	"github.com/shopd/shopd/store"
)

// The money path's job kinds. They are stored in river_job rows and label
// the job metrics, so they never change.
const (
	KindExpireOrder          = "expire_order"
	KindResumeCheckout       = "resume_checkout"
	KindSettleRefund         = "settle_refund"
	KindRefundCancelledOrder = "refund_cancelled_order"
	KindPurgeKeys            = "purge_idempotency_keys"
	KindSweep                = "sweep_orders"
)

// JobKinds lists every job kind of the money path and its follow-ups.
func JobKinds() []string {
	return []string{KindExpireOrder, KindResumeCheckout, KindSettleRefund, KindRefundCancelledOrder, KindPurgeKeys, KindSweep,
		KindFulfillmentReminder, KindReviewRequest, KindDeliveryFollowUp}
}

// JobInserter enqueues a job in the caller's transaction, so the job
// commits with the change that causes it or not at all. River's client
// (jobs.Client) is one.
type JobInserter interface {
	InsertTx(ctx context.Context, tx *sql.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	InsertManyTx(ctx context.Context, tx *sql.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Delays of the workflows, when the Service's fields leave them zero.
const (
	// defaultResumeCheckoutAfter is how long a checkout may sit between
	// phases before its resume job assumes its process died.
	defaultResumeCheckoutAfter = 30 * time.Second
	// defaultRefundRetryAfter is when a refund's settle job looks at it:
	// after the Stripe call's own deadline, so it never races a live call.
	defaultRefundRetryAfter = stripeDeadline + 10*time.Second
	// defaultPaymentRecheckAfter is how often an overdue order whose
	// payment Stripe is still processing is looked at again.
	defaultPaymentRecheckAfter = time.Minute
	// SweepEvery is how often the leader's safety-net sweep runs.
	SweepEvery = 5 * time.Minute
	// purgeEvery is how often finished Idempotency-Keys past KeyRetention
	// are deleted.
	purgeEvery = time.Hour
)

func (s *Service) resumeCheckoutAfter() time.Duration {
	return cmpOr(s.ResumeCheckoutAfter, defaultResumeCheckoutAfter)
}

func (s *Service) refundRetryAfter() time.Duration {
	return cmpOr(s.RefundRetryAfter, defaultRefundRetryAfter)
}

func (s *Service) paymentRecheckAfter() time.Duration {
	return cmpOr(s.PaymentRecheckAfter, defaultPaymentRecheckAfter)
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// refundPending is the status of a refund Stripe has not answered yet.
const refundPending = "pending"

// ExpireOrderArgs cancels an unpaid order once its payment window closes
// and releases its stock, asking Stripe first.
type ExpireOrderArgs struct {
	OrderID string `json:"order_id"`
}

// Kind is the job's kind.
func (ExpireOrderArgs) Kind() string { return KindExpireOrder }

// InsertOpts makes the job unique per order.
func (ExpireOrderArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: jobs.UniqueWhileQueued}
}

// ResumeCheckoutArgs finishes a checkout whose process stopped after the
// order transaction (idempotency key KeyID).
type ResumeCheckoutArgs struct {
	KeyID int64 `json:"key_id"`
}

// Kind is the job's kind.
func (ResumeCheckoutArgs) Kind() string { return KindResumeCheckout }

// InsertOpts makes the job unique per idempotency key.
func (ResumeCheckoutArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: jobs.UniqueWhileQueued}
}

// SettleRefundArgs asks Stripe again, with the same idempotency key, about
// a refund still pending.
type SettleRefundArgs struct {
	RefundID string `json:"refund_id"`
}

// Kind is the job's kind.
func (SettleRefundArgs) Kind() string { return KindSettleRefund }

// InsertOpts makes the job unique per refund.
func (SettleRefundArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: jobs.UniqueWhileQueued}
}

// RefundCancelledOrderArgs refunds the money a cancelled order holds (a
// payment that arrived after it was cancelled).
type RefundCancelledOrderArgs struct {
	OrderID string `json:"order_id"`
}

// Kind is the job's kind.
func (RefundCancelledOrderArgs) Kind() string { return KindRefundCancelledOrder }

// InsertOpts makes the job unique per order. Stripe declining the refund
// three times leaves the order to a person, as each decline is an event
// on it.
func (RefundCancelledOrderArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: jobs.UniqueWhileQueued, MaxAttempts: 3}
}

// PurgeKeysArgs deletes finished Idempotency-Keys older than KeyRetention.
type PurgeKeysArgs struct{}

// Kind is the job's kind.
func (PurgeKeysArgs) Kind() string { return KindPurgeKeys }

// InsertOpts keeps one purge queued at a time.
func (PurgeKeysArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: jobs.UniqueWhileQueued}
}

// SweepArgs enqueues the jobs that transactional inserts could have
// missed: for orders and refunds from before jobs existed, and rows a
// crash left behind.
type SweepArgs struct{}

// Kind is the job's kind.
func (SweepArgs) Kind() string { return KindSweep }

// InsertOpts keeps one sweep queued at a time.
func (SweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: jobs.UniqueWhileQueued}
}

// AddWorkers registers the money path's workers on w.
func AddWorkers(w *river.Workers, s *Service) error {
	return errors.Join(
		river.AddWorkerSafely(w, river.WorkFunc(func(ctx context.Context, j *river.Job[ExpireOrderArgs]) error {
			return s.workExpire(ctx, j.Args.OrderID)
		})),
		river.AddWorkerSafely(w, river.WorkFunc(func(ctx context.Context, j *river.Job[ResumeCheckoutArgs]) error {
			return s.workResumeCheckout(ctx, j.Args.KeyID)
		})),
		river.AddWorkerSafely(w, river.WorkFunc(func(ctx context.Context, j *river.Job[SettleRefundArgs]) error {
			return s.workSettleRefund(ctx, j.Args.RefundID)
		})),
		river.AddWorkerSafely(w, river.WorkFunc(func(ctx context.Context, j *river.Job[RefundCancelledOrderArgs]) error {
			return s.workRefundCancelled(ctx, j.Args.OrderID)
		})),
		river.AddWorkerSafely(w, river.WorkFunc(func(ctx context.Context, _ *river.Job[PurgeKeysArgs]) error {
			return s.purgeKeys(ctx)
		})),
		river.AddWorkerSafely(w, river.WorkFunc(func(ctx context.Context, _ *river.Job[SweepArgs]) error {
			return s.sweep(ctx)
		})),
		addFollowUpWorkers(w, s),
	)
}

// PeriodicJobs are the money path's periodic jobs, enqueued by River's
// elected leader only: the key purge every hour and the safety-net sweep
// every sweepEvery (0: SweepEvery), which also runs when a leader starts,
// so orders from before an upgrade are covered at once.
func PeriodicJobs(sweepEvery time.Duration) []*river.PeriodicJob {
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(purgeEvery),
			func() (river.JobArgs, *river.InsertOpts) { return PurgeKeysArgs{}, nil },
			&river.PeriodicJobOpts{ID: KindPurgeKeys}),
		river.NewPeriodicJob(river.PeriodicInterval(cmpOr(sweepEvery, SweepEvery)),
			func() (river.JobArgs, *river.InsertOpts) { return SweepArgs{}, nil },
			&river.PeriodicJobOpts{ID: KindSweep, RunOnStart: true}),
	}
}

// enqueue inserts a job in tx, to run at at (zero: now). Without a job
// inserter it does nothing: Reconcile is then the only way the work gets
// done.
func (s *Service) enqueue(ctx context.Context, tx *store.Tx, args river.JobArgs, at time.Time) error {
	if s.Jobs == nil {
		return nil
	}
	if _, err := s.Jobs.InsertTx(ctx, tx.SQL(), args, &river.InsertOpts{ScheduledAt: at}); err != nil {
		return fmt.Errorf("enqueue %s: %w", args.Kind(), err)
	}
	return nil
}

// enqueueCheckoutJobs schedules, in the order transaction, the expiry of
// the order orderID at its payment due time and the recovery of its
// checkout should this process stop before the checkout ends. Both go in
// one statement.
func (s *Service) enqueueCheckoutJobs(ctx context.Context, tx *store.Tx, keyID int64, orderID string, dueAt time.Time) error {
	if s.Jobs == nil {
		return nil
	}
	_, err := s.Jobs.InsertManyTx(ctx, tx.SQL(), []river.InsertManyParams{
		{Args: ExpireOrderArgs{OrderID: orderID}, InsertOpts: &river.InsertOpts{ScheduledAt: dueAt}},
		{Args: ResumeCheckoutArgs{KeyID: keyID}, InsertOpts: &river.InsertOpts{ScheduledAt: s.now().Add(s.resumeCheckoutAfter())}},
	})
	if err != nil {
		return fmt.Errorf("enqueue checkout jobs: %w", err)
	}
	return nil
}

// workExpire is the expire_order job: nothing when the order was paid or
// cancelled meanwhile; a payment Stripe is still processing is looked at
// again later (the job snoozes) rather than dropped.
func (s *Service) workExpire(ctx context.Context, orderID string) error {
	wait, err := s.expire(ctx, orderID, s.now())
	if err != nil {
		return err
	}
	if wait > 0 {
		return river.JobSnooze(wait)
	}
	return nil
}

// workResumeCheckout is the resume_checkout job: it finishes the checkout
// under the key's lease, as a retrying request does, or does nothing when the
// checkout ended. While a request holds the lease it looks again later.
func (s *Service) workResumeCheckout(ctx context.Context, keyID int64) error {
	busy, err := s.resumeCheckout(ctx, keyID)
	if err != nil {
		return err
	}
	if busy {
		return river.JobSnooze(s.resumeCheckoutAfter())
	}
	return nil
}

// workSettleRefund is the settle_refund job: a refund still pending is
// asked for again with its own Stripe key (so Stripe refunds at most
// once); a settled one is left alone. Stripe not answering is retried by
// River; a decline is recorded on the order and ends the job.
func (s *Service) workSettleRefund(ctx context.Context, refundID string) error {
	r, err := s.Store.Refund(ctx, refundID)
	if shopd.ErrorCode(err) == shopd.ENotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if r.Status != refundPending {
		return nil
	}
	if s.Payments == nil {
		return errPaymentsOff
	}
	o, err := s.Store.Order(ctx, r.OrderID)
	if err != nil {
		return err
	}
	_, err = s.settleRefund(ctx, r, o, store.Actor{Kind: store.ActorSystem})
	if err != nil && shopd.ErrorCode(err) != shopd.EUnavailable {
		s.Log.WarnContext(ctx, "refund declined", "order_id", o.ID, "refund_id", r.ID, "err", err)
		return nil
	}
	return err
}

// workRefundCancelled is the refund_cancelled_order job: it refunds what a
// cancelled order still holds, under the order's lock, counting refunds
// under way, so a repeat refunds nothing more. A refund Stripe does not
// answer stays pending for its own settle_refund job.
func (s *Service) workRefundCancelled(ctx context.Context, orderID string) error {
	o, err := s.Store.Order(ctx, orderID)
	if shopd.ErrorCode(err) == shopd.ENotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if o.Status != shopd.StatusCancelled || o.State().Refundable() <= 0 {
		return nil
	}
	_, err = s.Refund(ctx, o.ID, 0, "", store.Actor{Kind: store.ActorSystem})
	switch shopd.ErrorCode(err) {
	case shopd.EUnavailable, shopd.EInvalidTransition:
		// Pending at Stripe, or refunds under way cover the rest: each has
		// its own settle_refund job.
		return nil
	}
	if err != nil {
		return fmt.Errorf("refund cancelled order %s: %w", o.ID, err)
	}
	s.Log.InfoContext(ctx, "payment for cancelled order refunded", "order_id", o.ID)
	return nil
}

// purgeKeys deletes finished Idempotency-Keys past KeyRetention.
func (s *Service) purgeKeys(ctx context.Context) error {
	n, err := s.Store.PurgeIdempotencyKeys(ctx, s.now().Add(-KeyRetention))
	if err != nil {
		return err
	}
	if n > 0 {
		s.Log.InfoContext(ctx, "idempotency keys purged", "count", n)
	}
	return nil
}

// sweep enqueues, in one transaction, a job for everything that should
// have one: stuck checkouts, overdue orders, refunds without an answer and
// cancelled orders still holding money. Jobs are unique, so what already
// has a job queued gets no second one.
func (s *Service) sweep(ctx context.Context) error {
	now := s.now()
	keys, err := s.Store.StaleCheckouts(ctx, now.Add(-s.resumeCheckoutAfter()))
	if err != nil {
		return err
	}
	overdue, err := s.Store.OverdueOrders(ctx, now)
	if err != nil {
		return err
	}
	refunds, err := s.Store.StalePendingRefunds(ctx, now.Add(-s.refundRetryAfter()))
	if err != nil {
		return err
	}
	captured, err := s.Store.CancelledButCaptured(ctx)
	if err != nil {
		return err
	}
	var args []river.JobArgs
	for _, k := range keys {
		args = append(args, ResumeCheckoutArgs{KeyID: k.ID})
	}
	for _, id := range overdue {
		args = append(args, ExpireOrderArgs{OrderID: id})
	}
	for _, r := range refunds {
		args = append(args, SettleRefundArgs{RefundID: r.ID})
	}
	for _, id := range captured {
		args = append(args, RefundCancelledOrderArgs{OrderID: id})
	}
	if len(args) == 0 {
		return nil
	}
	err = s.Store.WithTx(ctx, func(tx *store.Tx) error {
		for _, a := range args {
			if err := s.enqueue(ctx, tx, a, time.Time{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	s.Log.InfoContext(ctx, "sweep enqueued jobs", "count", len(args))
	return nil
}
