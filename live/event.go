// Package live fans the committed order transitions and low-stock crossings
// out to Server-Sent Event streams: one PostgreSQL LISTEN connection per
// instance (pq.Listener, reconnecting) wakes a Hub, which reads the new
// rows of stream_events (see migration 0010) and hands each to the
// in-process subscribers it concerns, each through a bounded buffer. A
// client that resumes with Last-Event-ID is served the rows it missed from
// the table, so nothing is lost between instances, reconnects or restarts.
package live

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Event names, as streamed (the SSE event field and the data's type).
const (
	OrderPlaced        = "order.placed"
	OrderPaid          = "order.paid"
	OrderPaymentFailed = "order.payment_failed"
	OrderCancelled     = "order.cancelled"
	OrderFulfilled     = "order.fulfilled"
	OrderDelivered     = "order.delivered"
	OrderRefunded      = "order.refunded"
	InventoryLowStock  = "inventory.low_stock"
)

// Types are the event names a stream can carry, a fixed set.
func Types() []string {
	return []string{OrderPlaced, OrderPaid, OrderPaymentFailed, OrderCancelled, OrderFulfilled,
		OrderDelivered, OrderRefunded, InventoryLowStock}
}

// Cursor is an event's position in the order streams serve events in: its
// transaction's id, then its row id (see migration 0010 for why).
type Cursor struct {
	Xid uint64
	ID  uint64
}

// cursorLen is the length of a cursor's text: two 16-digit hex numbers, so
// that comparing two ids as strings orders them as the server does.
const cursorLen = 32

// String is the cursor as an SSE id, opaque to clients.
func (c Cursor) String() string { return fmt.Sprintf("%016x%016x", c.Xid, c.ID) }

// After reports whether c comes after d.
func (c Cursor) After(d Cursor) bool {
	return c.Xid > d.Xid || c.Xid == d.Xid && c.ID > d.ID
}

// ErrBadCursor is ParseCursor's answer for anything it did not write.
var ErrBadCursor = errors.New("not an event id of this stream")

// ParseCursor reads an event id written by Cursor.String.
func ParseCursor(s string) (Cursor, error) {
	if len(s) != cursorLen {
		return Cursor{}, ErrBadCursor
	}
	xid, err1 := strconv.ParseUint(s[:16], 16, 64)
	id, err2 := strconv.ParseUint(s[16:], 16, 64)
	if err1 != nil || err2 != nil {
		return Cursor{}, ErrBadCursor
	}
	return Cursor{Xid: xid, ID: id}, nil
}

// Event is one streamed event: an order's transition or a product's
// low-stock crossing. Fields that do not apply to its type are nil.
type Event struct {
	Cursor            Cursor
	Type              string
	OrderID           *string
	OrderNumber       *string
	Status            *string
	PaymentStatus     *string
	FulfillmentStatus *string
	ProductID         *string
	SKU               *string
	Stock             *int
	OccurredAt        time.Time
}

// eventData is an event's data line: every field present, null when it
// does not apply.
type eventData struct {
	Type              string  `json:"type"`
	OrderID           *string `json:"orderId"`
	OrderNumber       *string `json:"orderNumber"`
	Status            *string `json:"status"`
	PaymentStatus     *string `json:"paymentStatus"`
	FulfillmentStatus *string `json:"fulfillmentStatus"`
	ProductID         *string `json:"productId"`
	SKU               *string `json:"sku"`
	Stock             *int    `json:"stock"`
	OccurredAt        string  `json:"occurredAt"`
}

// Data is the event's JSON data.
func (e Event) Data() ([]byte, error) {
	return json.Marshal(eventData{
		Type: e.Type, OrderID: e.OrderID, OrderNumber: e.OrderNumber, Status: e.Status,
		PaymentStatus: e.PaymentStatus, FulfillmentStatus: e.FulfillmentStatus,
		ProductID: e.ProductID, SKU: e.SKU, Stock: e.Stock,
		OccurredAt: e.OccurredAt.UTC().Format(time.RFC3339),
	})
}
