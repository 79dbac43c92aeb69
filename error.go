// Package shopd holds the domain: the error type every layer speaks, and
// the business rules that are not I/O (totals, the order state machine).
package shopd

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. handlers maps each to one HTTP status; nothing else does.
// Each code is one cause a client can branch on: its problem type URI ends
// in the code, and each has one fixed title (see handlers).
const (
	EInvalid           = "invalid"                // the request is malformed or breaks a rule
	EUnauthorized      = "unauthorized"           // no or bad credentials
	EForbidden         = "forbidden"              // authenticated, not allowed
	ENotFound          = "not_found"              // absent, or not the caller's
	EConflict          = "conflict"               // the current state forbids it (and no code below says why)
	EInsufficientStock = "insufficient_stock"     // a line cannot be had; see Shortage
	EDuplicate         = "duplicate"              // a unique value (SKU, email) is taken
	EInvalidTransition = "invalid_transition"     // the order's state forbids this transition
	EInFlight          = "idempotency_in_flight"  // the same idempotency key is being processed; see RetryAfter
	EKeyReused         = "idempotency_key_reused" // same idempotency key, different request
	EPaymentRefused    = "payment_refused"        // the payment provider refused for good; retrying will not help
	ERateLimited       = "rate_limited"           // too many attempts; see RetryAfter
	EPayloadTooLarge   = "payload_too_large"      // the body is over the limit
	EUnsupportedMedia  = "unsupported_media_type" // the body's type is not accepted
	EUnavailable       = "unavailable"            // a dependency is down; safe to retry
	EInternal          = "internal"               // everything else; its text never reaches a client
)

// Error is a domain error: a code, a message safe to show a client, and
// optionally the field it concerns.
type Error struct {
	Code    string
	Message string
	// Field names the request field at fault, for EInvalid.
	Field string
	// RetryAfter tells the client when to try again (ERateLimited, in-flight conflicts).
	RetryAfter time.Duration
	// Shortage says which line is short, for EInsufficientStock.
	Shortage *Shortage
}

// Shortage is the line a checkout could not take stock for: the problem
// document carries these as extension members. An archived product has
// Available 0.
type Shortage struct {
	ProductID string
	SKU       string
	Requested int
	Available int
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an EInvalid error about one request field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: EInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// EInternal when there is none.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return EInternal
}

// ErrorMessage returns the client-safe message of err, or a generic one for
// internal errors.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "An internal error occurred."
}
