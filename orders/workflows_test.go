package orders_test

import (
	"testing"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/orders"
)

// TestFollowUpApplies: what each follow-up re-checks when its job runs.
func TestFollowUpApplies(t *testing.T) {
	t.Parallel()
	fulfilled := with(paid, func(s *shopd.OrderState) {
		s.Status, s.FulfillmentStatus = shopd.StatusFulfilled, shopd.FulfillmentFulfilled
	})
	partly := with(paid, func(s *shopd.OrderState) { s.PaymentStatus, s.RefundedCents = shopd.PaymentPartiallyRefunded, 300 })
	refunded := with(paid, func(s *shopd.OrderState) { s.PaymentStatus, s.RefundedCents = shopd.PaymentRefunded, 1000 })
	adminCancelled := with(paid, func(s *shopd.OrderState) {
		s.Status, s.PaymentStatus, s.RefundedCents = shopd.StatusCancelled, shopd.PaymentRefunded, 1000
	})
	cases := []struct {
		followUp string
		state    string
		from     shopd.OrderState
		want     bool
	}{
		{orders.FollowUpFulfillmentReminder, "paid", paid, true},
		{orders.FollowUpFulfillmentReminder, "partly refunded", partly, true},
		{orders.FollowUpFulfillmentReminder, "fully refunded", refunded, false},
		{orders.FollowUpFulfillmentReminder, "fulfilled", fulfilled, false},
		{orders.FollowUpFulfillmentReminder, "cancelled and refunded", adminCancelled, false},
		{orders.FollowUpFulfillmentReminder, "cancelled unpaid", cancelled, false},
		{orders.FollowUpReviewRequest, "paid", paid, true},
		{orders.FollowUpReviewRequest, "fulfilled", fulfilled, true},
		{orders.FollowUpReviewRequest, "partly refunded", partly, true},
		{orders.FollowUpReviewRequest, "fully refunded", refunded, false},
		{orders.FollowUpReviewRequest, "cancelled and refunded", adminCancelled, false},
		{orders.FollowUpDeliveryConfirm, "fulfilled", fulfilled, true},
		{orders.FollowUpDeliveryConfirm, "paid, unshipped", paid, false},
		{orders.FollowUpDeliveryConfirm, "cancelled", cancelled, false},
		{"no-such-follow-up", "paid", paid, false},
	}
	for _, c := range cases {
		if got := orders.FollowUpApplies(c.followUp, c.from); got != c.want {
			t.Errorf("%s on a %s order: %v, want %v", c.followUp, c.state, got, c.want)
		}
	}
}
