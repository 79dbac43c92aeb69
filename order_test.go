package shopd

import "testing"

func TestTotals(t *testing.T) {
	t.Parallel()
	p := DefaultPricing
	cases := []struct {
		subtotal, tax, shipping, total int64
	}{
		{11300, 1130, 0, 12430},    // over the threshold ships free
		{10000, 1000, 1000, 12000}, // exactly the threshold still pays shipping
		{10001, 1000, 0, 11001},    // 1000.1 rounds down
		{5, 1, 1000, 1006},         // 0.5 rounds half up
		{4, 0, 1000, 1004},         // 0.4 rounds down
		{15, 2, 1000, 1017},        // 1.5 rounds half up
		{1, 0, 1000, 1001},
	}
	for _, c := range cases {
		got := p.Totals(c.subtotal, 0)
		if got.TaxCents != c.tax || got.ShippingCents != c.shipping || got.TotalCents != c.total {
			t.Errorf("Totals(%d) = %+v; want tax %d shipping %d total %d", c.subtotal, got, c.tax, c.shipping, c.total)
		}
	}
	custom := Pricing{TaxRateBPS: 725, ShippingFlatCents: 499, FreeShippingOverCents: 5000}.Totals(2000, 100)
	if custom.TaxCents != 145 || custom.ShippingCents != 499 || custom.TotalCents != 2000+145+499-100 {
		t.Errorf("custom pricing: %+v", custom)
	}
}

func TestOrderTransitions(t *testing.T) {
	t.Parallel()
	pending := OrderState{Status: StatusPending, PaymentStatus: PaymentPending, FulfillmentStatus: "unfulfilled", TotalCents: 1000}
	paid := OrderState{Status: StatusProcessing, PaymentStatus: PaymentPaid, FulfillmentStatus: "unfulfilled", TotalCents: 1000}
	partly := paid
	partly.PaymentStatus, partly.RefundedCents = PaymentPartiallyRefunded, 400
	refunded := paid
	refunded.PaymentStatus, refunded.RefundedCents = PaymentRefunded, 1000
	fulfilled := paid
	fulfilled.Status, fulfilled.FulfillmentStatus = StatusFulfilled, FulfillmentFulfilled
	cancelled := pending
	cancelled.Status = StatusCancelled
	failed := cancelled
	failed.PaymentStatus = PaymentFailed

	ok := func(err error) bool { return err == nil }
	cases := []struct {
		name string
		got  bool
		want bool
	}{
		{"owner cancels pending", ok(pending.CanCancel(false)), true},
		{"owner cancels paid", ok(paid.CanCancel(false)), false},
		{"admin cancels paid", ok(paid.CanCancel(true)), true},
		{"admin cancels fulfilled", ok(fulfilled.CanCancel(true)), false},
		{"cancel cancelled", ok(cancelled.CanCancel(true)), false},
		{"fulfil paid", ok(paid.CanFulfill()), true},
		{"fulfil partly refunded", ok(partly.CanFulfill()), true},
		{"fulfil unpaid", ok(pending.CanFulfill()), false},
		{"fulfil fulfilled", ok(fulfilled.CanFulfill()), false},
		{"fulfil cancelled", ok(cancelled.CanFulfill()), false},
		{"refund all of paid", ok(paid.CanRefund(1000, 0)), true},
		{"refund over paid", ok(paid.CanRefund(1001, 0)), false},
		{"refund rest of partly", ok(partly.CanRefund(600, 0)), true},
		{"refund over rest", ok(partly.CanRefund(601, 0)), false},
		{"refund with pending", ok(paid.CanRefund(600, 500)), false},
		{"refund unpaid", ok(pending.CanRefund(1, 0)), false},
		{"refund refunded", ok(refunded.CanRefund(1, 0)), false},
		{"refund zero", ok(paid.CanRefund(0, 0)), false},
		{"refund with the rest pending is an invalid transition", ErrorCode(paid.CanRefund(0, 1000)) == EInvalidTransition, true},
		{"cancel cancelled is an invalid transition", ErrorCode(cancelled.CanCancel(true)) == EInvalidTransition, true},
		{"fulfil unpaid is an invalid transition", ErrorCode(pending.CanFulfill()) == EInvalidTransition, true},
		{"refund over what is left is an invalid transition", ErrorCode(partly.CanRefund(601, 0)) == EInvalidTransition, true},
		{"refund of nothing is invalid", ErrorCode(paid.CanRefund(0, 0)) == EInvalid, true},
		{"pay pending", pending.CanMarkPaid(), true},
		{"pay paid again", paid.CanMarkPaid(), false},
		{"pay cancelled", cancelled.CanMarkPaid(), false},
		{"fail pending", pending.CanMarkFailed(), true},
		{"fail after success", paid.CanMarkFailed(), false},
		{"fail failed", failed.CanMarkFailed(), false},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if PaymentStatusAfterRefund(1000, 1000) != PaymentRefunded || PaymentStatusAfterRefund(1000, 1) != PaymentPartiallyRefunded {
		t.Error("PaymentStatusAfterRefund")
	}
}
