package shopd

import "testing"

// TestCancelledPaymentIsNotPayable: an order whose payment was cancelled
// can be neither paid, failed, cancelled again, fulfilled, delivered nor
// refunded; only a fulfilled order not yet delivered can be delivered.
func TestCancelledPaymentIsNotPayable(t *testing.T) {
	t.Parallel()
	cancelled := OrderState{Status: StatusCancelled, PaymentStatus: PaymentCancelled, FulfillmentStatus: "unfulfilled", TotalCents: 1000}
	paid := OrderState{Status: StatusProcessing, PaymentStatus: PaymentPaid, FulfillmentStatus: "unfulfilled", TotalCents: 1000}
	fulfilled := paid
	fulfilled.Status, fulfilled.FulfillmentStatus = StatusFulfilled, FulfillmentFulfilled
	cases := []struct {
		name string
		got  bool
		want bool
	}{
		{"pay cancelled", cancelled.CanMarkPaid(), false},
		{"fail cancelled", cancelled.CanMarkFailed(), false},
		{"cancelled is captured", cancelled.Captured(), false},
		{"cancelled refundable", cancelled.Refundable() > 0, false},
		{"cancel cancelled", ErrorCode(cancelled.CanCancel(true)) == EInvalidTransition, true},
		{"fulfil cancelled", ErrorCode(cancelled.CanFulfill()) == EInvalidTransition, true},
		{"refund cancelled", ErrorCode(cancelled.CanRefund(1, 0)) == EInvalidTransition, true},
		{"deliver cancelled", ErrorCode(cancelled.CanDeliver(false)) == EInvalidTransition, true},
		{"deliver paid, unshipped", ErrorCode(paid.CanDeliver(false)) == EInvalidTransition, true},
		{"deliver fulfilled", fulfilled.CanDeliver(false) == nil, true},
		{"deliver delivered", ErrorCode(fulfilled.CanDeliver(true)) == EInvalidTransition, true},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}
