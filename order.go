package shopd

// Order statuses.
const (
	StatusPending    = "pending"
	StatusProcessing = "processing"
	StatusFulfilled  = "fulfilled"
	StatusCancelled  = "cancelled"
)

// Payment statuses.
const (
	PaymentPending           = "pending"
	PaymentPaid              = "paid"
	PaymentFailed            = "failed"
	PaymentRefunded          = "refunded"
	PaymentPartiallyRefunded = "partially_refunded"
	// PaymentCancelled is the payment status of an order cancelled before
	// its payment completed (expiry, a cancel while pending): nothing was
	// taken and nothing may be. An order whose payment failed keeps
	// PaymentFailed: that payment did complete, as a failure.
	PaymentCancelled = "cancelled"
)

// FulfillmentFulfilled is the fulfillment status of a shipped order (until
// then it is "unfulfilled").
const FulfillmentFulfilled = "fulfilled"

// Order event types: each recorded transition is one of these ("placed"
// and "payment_intent_created" are written by checkout itself).
const (
	EventPaid          = "paid"
	EventPaymentFailed = "payment_failed"
	EventCancelled     = "cancelled"
	EventFulfilled     = "fulfilled"
	EventRefunded      = "refunded"
	EventRefundFailed  = "refund_failed"
	EventDelivered     = "delivered"
)

// OrderState is the part of an order the state machine looks at.
type OrderState struct {
	Status, PaymentStatus, FulfillmentStatus string
	TotalCents, RefundedCents                int64
	// Currency is what the order is priced in, e.g. "usd".
	Currency string
	// PaymentIntentID is the order's PaymentIntent, "" before checkout
	// stored one.
	PaymentIntentID string
}

// Captured reports whether money was taken (and so may be refunded).
func (s OrderState) Captured() bool {
	return s.PaymentStatus == PaymentPaid || s.PaymentStatus == PaymentPartiallyRefunded
}

// Refundable is what can still be refunded.
func (s OrderState) Refundable() int64 {
	if !s.Captured() {
		return 0
	}
	return s.TotalCents - s.RefundedCents
}

// CanCancel says whether the order may be cancelled: by its owner while
// payment is pending, by an admin while it is not fulfilled. A refusal is
// EInvalidTransition.
func (s OrderState) CanCancel(byAdmin bool) error {
	switch {
	case s.Status == StatusCancelled:
		return Errorf(EInvalidTransition, "The order is already cancelled.")
	case s.Status == StatusFulfilled || s.FulfillmentStatus == FulfillmentFulfilled:
		return Errorf(EInvalidTransition, "A fulfilled order cannot be cancelled.")
	case byAdmin:
		return nil
	case s.Status != StatusPending || s.PaymentStatus != PaymentPending:
		return Errorf(EInvalidTransition, "The order is paid; ask the shop to cancel it.")
	}
	return nil
}

// CanFulfill says whether the order may be shipped: only a paid, open
// order. A refusal is EInvalidTransition.
func (s OrderState) CanFulfill() error {
	switch {
	case s.Status == StatusFulfilled:
		return Errorf(EInvalidTransition, "The order is already fulfilled.")
	case s.Status != StatusProcessing || !s.Captured():
		return Errorf(EInvalidTransition, "Only a paid order can be fulfilled (status %s, payment %s).", s.Status, s.PaymentStatus)
	}
	return nil
}

// CanDeliver says whether the order may be marked delivered: only a
// fulfilled order not yet delivered (deliveredAt tells; the statuses do
// not change). A refusal is EInvalidTransition.
func (s OrderState) CanDeliver(delivered bool) error {
	switch {
	case s.Status != StatusFulfilled || s.FulfillmentStatus != FulfillmentFulfilled:
		return Errorf(EInvalidTransition, "Only a fulfilled order can be delivered (status %s).", s.Status)
	case delivered:
		return Errorf(EInvalidTransition, "The order is already delivered.")
	}
	return nil
}

// CanRefund says whether amountCents may be refunded now, given refunds
// already under way (pendingCents). A refusal is EInvalidTransition, except
// a non-positive amount (EInvalid).
func (s OrderState) CanRefund(amountCents, pendingCents int64) error {
	left := s.Refundable() - pendingCents
	switch {
	case !s.Captured():
		return Errorf(EInvalidTransition, "Only a paid order can be refunded (payment %s).", s.PaymentStatus)
	case left <= 0:
		return Errorf(EInvalidTransition, "Nothing is left to refund (refunds under way cover the rest).")
	case amountCents <= 0:
		return FieldError("amountCents", "Must be positive.")
	case amountCents > left:
		return Errorf(EInvalidTransition, "At most %d can be refunded.", left)
	}
	return nil
}

// PaymentStatusAfterRefund is the payment status once refundedCents of the
// total are refunded.
func PaymentStatusAfterRefund(totalCents, refundedCents int64) string {
	if refundedCents >= totalCents {
		return PaymentRefunded
	}
	return PaymentPartiallyRefunded
}

// CanMarkPaid says whether a payment success applies: only to an order still
// waiting for payment (pending or failed); never moves an order backwards.
func (s OrderState) CanMarkPaid() bool {
	return s.Status == StatusPending && (s.PaymentStatus == PaymentPending || s.PaymentStatus == PaymentFailed)
}

// CanMarkFailed says whether a payment failure applies: only while payment
// is pending; a late failure after success changes nothing.
func (s OrderState) CanMarkFailed() bool {
	return s.Status == StatusPending && s.PaymentStatus == PaymentPending
}
