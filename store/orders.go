package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/jmoiron/sqlx/types"
	"github.com/lib/pq"

	"github.com/shopd/shopd"
)

// Order is a placed order. Its lines and money never change after
// checkout; its statuses change only through the transitions below, each of
// which records an OrderEvent.
type Order struct {
	ID                string         `db:"id"`
	OrderNumber       int64          `db:"order_number"`
	CustomerID        string         `db:"customer_id"`
	Email             string         `db:"email"`
	Status            string         `db:"status"`
	PaymentStatus     string         `db:"payment_status"`
	FulfillmentStatus string         `db:"fulfillment_status"`
	SubtotalCents     int64          `db:"subtotal_cents"`
	TaxCents          int64          `db:"tax_cents"`
	ShippingCents     int64          `db:"shipping_cents"`
	DiscountCents     int64          `db:"discount_cents"`
	TotalCents        int64          `db:"total_cents"`
	RefundedCents     int64          `db:"refunded_cents"`
	Currency          string         `db:"currency"`
	ShippingAddress   types.JSONText `db:"shipping_address"`
	BillingAddress    types.JSONText `db:"billing_address"`
	PaymentIntentID   *string        `db:"payment_intent_id"`
	ClientSecret      *string        `db:"client_secret"`
	TrackingNumber    *string        `db:"tracking_number"`
	ShippedAt         *time.Time     `db:"shipped_at"`
	DeliveredAt       *time.Time     `db:"delivered_at"`
	PaymentDueAt      time.Time      `db:"payment_due_at"`
	CreatedAt         time.Time      `db:"created_at"`
	UpdatedAt         time.Time      `db:"updated_at"`
	Items             []OrderItem    `db:"-"`
}

// State is what the order state machine looks at.
func (o Order) State() shopd.OrderState {
	return shopd.OrderState{Status: o.Status, PaymentStatus: o.PaymentStatus, FulfillmentStatus: o.FulfillmentStatus,
		TotalCents: o.TotalCents, RefundedCents: o.RefundedCents}
}

// Number is the customer-facing order number, e.g. ORD-000123.
func (o Order) Number() string { return fmt.Sprintf("ORD-%06d", o.OrderNumber) }

// OrderItem is a line frozen at checkout.
type OrderItem struct {
	OrderID        string `db:"order_id"`
	LineNo         int    `db:"line_no"`
	ProductID      string `db:"product_id"`
	SKU            string `db:"sku"`
	Name           string `db:"name"`
	UnitPriceCents int64  `db:"unit_price_cents"`
	Quantity       int    `db:"quantity"`
	LineTotalCents int64  `db:"line_total_cents"`
}

// OrderEvent is one recorded transition, with the state after it.
type OrderEvent struct {
	ID                int64     `db:"id"`
	OrderID           string    `db:"order_id"`
	Type              string    `db:"type"`
	Status            string    `db:"status"`
	PaymentStatus     string    `db:"payment_status"`
	FulfillmentStatus string    `db:"fulfillment_status"`
	Actor             string    `db:"actor"`
	ActorID           *string   `db:"actor_id"`
	AmountCents       *int64    `db:"amount_cents"`
	Note              *string   `db:"note"`
	CreatedAt         time.Time `db:"created_at"`
}

// Actor is who caused a transition.
type Actor struct {
	Kind string // ActorCustomer, ActorAdmin, ActorSystem or ActorStripe
	ID   string // the user, when there is one
}

// Actor kinds; customer and admin are also the token roles.
const (
	ActorCustomer = "customer"
	ActorAdmin    = "admin"
	ActorSystem   = "system"
	ActorStripe   = "stripe"
)

// Event types.
const (
	EventPlaced               = "placed"
	EventPaymentIntentCreated = "payment_intent_created"
	EventPaid                 = "paid"
	EventPaymentFailed        = "payment_failed"
	EventCancelled            = "cancelled"
	EventFulfilled            = "fulfilled"
	EventRefunded             = "refunded"
	EventRefundFailed         = "refund_failed"
)

const orderColumns = `id, order_number, customer_id, email, status, payment_status, fulfillment_status,
	subtotal_cents, tax_cents, shipping_cents, discount_cents, total_cents, refunded_cents, currency,
	shipping_address, billing_address, payment_intent_id, client_secret, tracking_number,
	shipped_at, delivered_at, payment_due_at, created_at, updated_at`

const orderItemsSQL = `
SELECT order_id, line_no, product_id, sku, name, unit_price_cents, quantity, line_total_cents
FROM order_items
WHERE order_id = ANY($1)
ORDER BY order_id, line_no`

// withItems loads the lines of the orders.
func withItems(ctx context.Context, q sqlx.QueryerContext, orders []Order) error {
	if len(orders) == 0 {
		return nil
	}
	ids := make([]string, len(orders))
	at := map[string]int{}
	for i, o := range orders {
		ids[i] = o.ID
		at[o.ID] = i
	}
	var items []OrderItem
	if err := sqlx.SelectContext(ctx, q, &items, orderItemsSQL, pq.StringArray(ids)); err != nil {
		return fmt.Errorf("order items: %w", translate(err))
	}
	for _, it := range items {
		o := &orders[at[it.OrderID]]
		o.Items = append(o.Items, it)
	}
	return nil
}

const orderByIDSQL = `SELECT ` + orderColumns + ` FROM orders WHERE id = $1`

// Order returns an order with its lines, or ENotFound.
func (s *Store) Order(ctx context.Context, id string) (Order, error) {
	return getOrder(ctx, s.db, id, false)
}

func getOrder(ctx context.Context, q sqlx.QueryerContext, id string, forUpdate bool) (Order, error) {
	notFound := shopd.Errorf(shopd.ENotFound, "Order %s not found.", id)
	if !validID(id) {
		return Order{}, notFound
	}
	query := orderByIDSQL
	if forUpdate {
		query += "\nFOR UPDATE"
	}
	var o Order
	if err := sqlx.GetContext(ctx, q, &o, query, id); err != nil {
		if err = translate(err); shopd.ErrorCode(err) == shopd.ENotFound {
			return Order{}, notFound
		}
		return Order{}, fmt.Errorf("get order: %w", err)
	}
	list := []Order{o}
	if err := withItems(ctx, q, list); err != nil {
		return Order{}, err
	}
	return list[0], nil
}

// OrderFilter narrows ListOrders.
type OrderFilter struct {
	CustomerID string // "" for every customer
	Status     string
}

const listOrdersSQL = `
SELECT ` + orderColumns + `
FROM orders
WHERE ($1 = '' OR customer_id = $1::uuid)
	AND ($2 = '' OR status = $2)
	AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $5`

// ListOrders returns one page of orders, newest first.
func (s *Store) ListOrders(ctx context.Context, f OrderFilter, pg Page) ([]Order, string, error) {
	t, id, err := afterTimeID(pg.Cursor)
	if err != nil {
		return nil, "", err
	}
	if f.CustomerID != "" && !validID(f.CustomerID) {
		return []Order{}, "", nil
	}
	limit := pg.limit()
	rows := make([]Order, 0, limit+1) // sized: sqlx appends
	if err := s.db.SelectContext(ctx, &rows, listOrdersSQL, f.CustomerID, f.Status, t, id, limit+1); err != nil {
		return nil, "", fmt.Errorf("list orders: %w", translate(err))
	}
	items, next := pageOf(rows, limit, func(o Order) keyset { return keyset{T: o.CreatedAt, ID: o.ID} })
	if err := withItems(ctx, s.db, items); err != nil {
		return nil, "", err
	}
	return items, next, nil
}

const orderEventsSQL = `
SELECT id, order_id, type, status, payment_status, fulfillment_status, actor, actor_id, amount_cents, note, created_at
FROM order_events
WHERE order_id = $1
	AND ($2::bigint IS NULL OR id > $2)
ORDER BY id
LIMIT $3`

// OrderEvents returns one page of an order's history, oldest first.
func (s *Store) OrderEvents(ctx context.Context, orderID string, pg Page) ([]OrderEvent, string, error) {
	afterID, err := afterSeq(pg.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := pg.limit()
	rows := make([]OrderEvent, 0, limit+1) // sized: sqlx appends
	if err := s.db.SelectContext(ctx, &rows, orderEventsSQL, orderID, afterID, limit+1); err != nil {
		return nil, "", fmt.Errorf("order events: %w", translate(err))
	}
	items, next := pageOf(rows, limit, func(e OrderEvent) keyset { return keyset{ID: strconv.FormatInt(e.ID, 10)} })
	return items, next, nil
}

const insertEventSQL = `
INSERT INTO order_events (order_id, type, status, payment_status, fulfillment_status, actor, actor_id, amount_cents, note)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`

// recordEvent writes the transition with the order's state after it.
func recordEvent(ctx context.Context, tx *sqlx.Tx, o Order, typ string, by Actor, amount *int64, note string) error {
	var n *string
	if note != "" {
		n = &note
	}
	_, err := tx.ExecContext(ctx, insertEventSQL, o.ID, typ, o.Status, o.PaymentStatus, o.FulfillmentStatus,
		by.Kind, nullID(by.ID), amount, n)
	if err != nil {
		return fmt.Errorf("record %s event: %w", typ, translate(err))
	}
	return nil
}

const setOrderStateSQL = `
UPDATE orders
SET status = $2,
	payment_status = $3,
	fulfillment_status = $4,
	refunded_cents = $5,
	tracking_number = $6,
	shipped_at = $7,
	payment_intent_id = $8,
	client_secret = $9,
	updated_at = now()
WHERE id = $1
RETURNING updated_at`

// saveState writes the mutable part of a locked order.
func saveState(ctx context.Context, tx *sqlx.Tx, o *Order) error {
	err := tx.GetContext(ctx, &o.UpdatedAt, setOrderStateSQL, o.ID, o.Status, o.PaymentStatus, o.FulfillmentStatus,
		o.RefundedCents, o.TrackingNumber, o.ShippedAt, o.PaymentIntentID, o.ClientSecret)
	if err != nil {
		return fmt.Errorf("save order %s: %w", o.ID, translate(err))
	}
	return nil
}

// withLockedOrder runs fn on the order inside a transaction holding its row
// lock, so transitions on one order are serialised.
func (s *Store) withLockedOrder(ctx context.Context, orderID string, fn func(tx *sqlx.Tx, o *Order) error) (Order, error) {
	var out Order
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		o, err := getOrder(ctx, tx, orderID, true)
		if err != nil {
			return err
		}
		if err := fn(tx, &o); err != nil {
			return err
		}
		out = o
		return nil
	})
	return out, err
}

const releaseStockSQL = `
WITH p AS (
	UPDATE products
	SET stock = stock + $2, updated_at = now()
	WHERE id = $1
	RETURNING id, sku, stock
)
INSERT INTO inventory_transactions (product_id, sku, quantity_change, type, stock_after, reference_id, note)
SELECT id, sku, $2, 'release', stock, $3, $4
FROM p`

// releaseStock puts an order's units back, in ascending product order like
// checkout takes them, and writes the release ledger rows.
func releaseStock(ctx context.Context, tx *sqlx.Tx, o Order, why string) error {
	qty := map[string]int{}
	var ids []string
	for _, it := range o.Items {
		if _, ok := qty[it.ProductID]; !ok {
			ids = append(ids, it.ProductID)
		}
		qty[it.ProductID] += it.Quantity
	}
	sort.Strings(ids)
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, releaseStockSQL, id, qty[id], o.ID, why); err != nil {
			return fmt.Errorf("release stock %s: %w", id, translate(err))
		}
	}
	return nil
}

// CancelOrder cancels an order and puts its stock back. The actor selects
// the rule (a customer: payment pending; an admin: not fulfilled). The caller refunds
// what the returned order still has captured.
func (s *Store) CancelOrder(ctx context.Context, orderID string, by Actor, reason string) (Order, error) {
	return s.withLockedOrder(ctx, orderID, func(tx *sqlx.Tx, o *Order) error {
		if err := o.State().CanCancel(by.Kind == ActorAdmin); err != nil {
			return err
		}
		return cancelLocked(ctx, tx, o, by, reason)
	})
}

func cancelLocked(ctx context.Context, tx *sqlx.Tx, o *Order, by Actor, reason string) error {
	if err := releaseStock(ctx, tx, *o, "order cancelled"); err != nil {
		return err
	}
	o.Status = shopd.StatusCancelled
	if err := saveState(ctx, tx, o); err != nil {
		return err
	}
	return recordEvent(ctx, tx, *o, EventCancelled, by, nil, reason)
}

// FulfillOrder marks a paid order shipped with its tracking number.
func (s *Store) FulfillOrder(ctx context.Context, orderID, trackingNumber string, by Actor) (Order, error) {
	return s.withLockedOrder(ctx, orderID, func(tx *sqlx.Tx, o *Order) error {
		if err := o.State().CanFulfill(); err != nil {
			return err
		}
		now := s.Now().UTC()
		o.Status, o.FulfillmentStatus = shopd.StatusFulfilled, shopd.FulfillmentFulfilled
		o.TrackingNumber, o.ShippedAt = &trackingNumber, &now
		if err := saveState(ctx, tx, o); err != nil {
			return err
		}
		return recordEvent(ctx, tx, *o, EventFulfilled, by, nil, "tracking "+trackingNumber)
	})
}
