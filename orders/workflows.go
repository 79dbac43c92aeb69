package orders

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/jobs"
	"github.com/shopd/shopd/store"
)

// The delayed workflows after payment and shipping. Each is a unique job
// inserted in the transaction of its cause; when it runs it re-reads the
// order under its lock and does nothing if it no longer applies, so a
// cancellation, a refund or a shipment in between needs no job to be
// found and removed.

// Job kinds of the follow-up workflows (stored in river_job rows and
// metric labels, so they never change).
const (
	KindFulfillmentReminder = "fulfillment_reminder"
	KindReviewRequest       = "review_request"
	KindDeliveryFollowUp    = "delivery_followup"
)

// The follow-up messages, named as their templates are (part of the API).
const (
	FollowUpFulfillmentReminder = "fulfillment-reminder"
	FollowUpReviewRequest       = "review-request"
	FollowUpDeliveryConfirm     = "delivery-confirmation"
)

// Default delays of the follow-ups, when the Service's fields leave them
// zero (FULFILLMENT_REMINDER_AFTER, REVIEW_REQUEST_AFTER,
// DELIVERY_FOLLOWUP_AFTER).
const (
	DefaultFulfillmentReminderAfter = 2 * time.Hour
	DefaultReviewRequestAfter       = 168 * time.Hour
	DefaultDeliveryFollowUpAfter    = 72 * time.Hour
)

// FollowUps holds the delays of the follow-up workflows; a zero field is
// its default.
type FollowUps struct {
	// FulfillmentReminderAfter is when, after payment, the warehouse is
	// reminded of an order still unfulfilled.
	FulfillmentReminderAfter time.Duration
	// ReviewRequestAfter is when, after payment, an opted-in customer is
	// asked for a review.
	ReviewRequestAfter time.Duration
	// DeliveryFollowUpAfter is when, after shipping, the customer is asked
	// whether the order arrived.
	DeliveryFollowUpAfter time.Duration
}

// FulfillmentReminderArgs reminds the warehouse of a paid order still
// unfulfilled.
type FulfillmentReminderArgs struct {
	OrderID string `json:"order_id"`
}

// Kind is the job's kind.
func (FulfillmentReminderArgs) Kind() string { return KindFulfillmentReminder }

// InsertOpts makes the job unique per order.
func (FulfillmentReminderArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: jobs.UniqueWhileQueued}
}

// ReviewRequestArgs asks the customer of a paid order for a review.
type ReviewRequestArgs struct {
	OrderID string `json:"order_id"`
}

// Kind is the job's kind.
func (ReviewRequestArgs) Kind() string { return KindReviewRequest }

// InsertOpts makes the job unique per order.
func (ReviewRequestArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: jobs.UniqueWhileQueued}
}

// DeliveryFollowUpArgs asks the customer of a shipped order whether it
// arrived.
type DeliveryFollowUpArgs struct {
	OrderID string `json:"order_id"`
}

// Kind is the job's kind.
func (DeliveryFollowUpArgs) Kind() string { return KindDeliveryFollowUp }

// InsertOpts makes the job unique per order.
func (DeliveryFollowUpArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: jobs.UniqueWhileQueued}
}

// FollowUpApplies says whether the follow-up (a FollowUp constant) still
// applies to an order in state st: the fulfilment reminder while it is
// unfulfilled, not cancelled and not fully refunded; the review request
// unless it was
// cancelled or fully refunded; the delivery confirmation while it is
// fulfilled.
func FollowUpApplies(followUp string, st shopd.OrderState) bool {
	switch followUp {
	case FollowUpFulfillmentReminder:
		// A fully refunded order must not be shipped, so nobody is reminded.
		return st.Status != shopd.StatusCancelled && st.FulfillmentStatus != shopd.FulfillmentFulfilled &&
			st.PaymentStatus != shopd.PaymentRefunded
	case FollowUpReviewRequest:
		return st.Status != shopd.StatusCancelled && st.PaymentStatus != shopd.PaymentRefunded
	case FollowUpDeliveryConfirm:
		return st.Status == shopd.StatusFulfilled
	}
	return false
}

// scheduleFollowUps enqueues, in the transaction of t, the follow-ups its
// events start: payment of an open order starts the fulfilment reminder
// and the review request, shipping the delivery confirmation.
func (s *Service) scheduleFollowUps(ctx context.Context, tx *store.Tx, o store.Order, t Transition) error {
	now := s.now()
	for _, step := range t.Steps {
		switch {
		case step.Event == shopd.EventPaid && step.State.Status != shopd.StatusCancelled:
			if err := s.enqueue(ctx, tx, FulfillmentReminderArgs{OrderID: o.ID},
				now.Add(cmpOr(s.FollowUps.FulfillmentReminderAfter, DefaultFulfillmentReminderAfter))); err != nil {
				return err
			}
			if err := s.enqueue(ctx, tx, ReviewRequestArgs{OrderID: o.ID},
				now.Add(cmpOr(s.FollowUps.ReviewRequestAfter, DefaultReviewRequestAfter))); err != nil {
				return err
			}
		case step.Event == shopd.EventFulfilled:
			if err := s.enqueue(ctx, tx, DeliveryFollowUpArgs{OrderID: o.ID},
				now.Add(cmpOr(s.FollowUps.DeliveryFollowUpAfter, DefaultDeliveryFollowUpAfter))); err != nil {
				return err
			}
		}
	}
	return nil
}

// workFollowUp runs a follow-up job: under the order's lock, so it is
// ordered against a cancel or refund, it writes the follow-up's message to
// the outbox if the follow-up still applies, else nothing. The outbox's
// unique key per template and order makes a repeat send nothing.
func (s *Service) workFollowUp(ctx context.Context, orderID, followUp string) error {
	if s.Notify == nil {
		return nil
	}
	_, err := s.Store.UpdateOrder(ctx, orderID, func(tx *store.Tx, o *store.Order) error {
		if !FollowUpApplies(followUp, o.State()) {
			return nil
		}
		return s.Notify.OrderFollowUp(ctx, tx, *o, followUp)
	})
	if shopd.ErrorCode(err) == shopd.ENotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s for order %s: %w", followUp, orderID, err)
	}
	return nil
}

// addFollowUpWorkers registers the follow-up workers on w.
func addFollowUpWorkers(w *river.Workers, s *Service) error {
	return errors.Join(
		river.AddWorkerSafely(w, river.WorkFunc(func(ctx context.Context, j *river.Job[FulfillmentReminderArgs]) error {
			return s.workFollowUp(ctx, j.Args.OrderID, FollowUpFulfillmentReminder)
		})),
		river.AddWorkerSafely(w, river.WorkFunc(func(ctx context.Context, j *river.Job[ReviewRequestArgs]) error {
			return s.workFollowUp(ctx, j.Args.OrderID, FollowUpReviewRequest)
		})),
		river.AddWorkerSafely(w, river.WorkFunc(func(ctx context.Context, j *river.Job[DeliveryFollowUpArgs]) error {
			return s.workFollowUp(ctx, j.Args.OrderID, FollowUpDeliveryConfirm)
		})),
	)
}
