package store

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/jmoiron/sqlx/types"
	"github.com/lib/pq"

	"github.com/shopd/shopd"
)

// Order is a placed order. Its lines and money never change after
// checkout; its statuses change only through UpdateOrder, each change with
// its OrderEvent. The json names are the snapshot an idempotency key keeps
// of the order it answered (see FinishKeyCreated); they match the API's.
type Order struct {
	ID                string         `db:"id" json:"id"`
	OrderNumber       int64          `db:"order_number" json:"orderNumber"`
	CustomerID        string         `db:"customer_id" json:"customerId"`
	Email             string         `db:"email" json:"email"`
	Status            string         `db:"status" json:"status"`
	PaymentStatus     string         `db:"payment_status" json:"paymentStatus"`
	FulfillmentStatus string         `db:"fulfillment_status" json:"fulfillmentStatus"`
	SubtotalCents     int64          `db:"subtotal_cents" json:"subtotalCents"`
	TaxCents          int64          `db:"tax_cents" json:"taxCents"`
	ShippingCents     int64          `db:"shipping_cents" json:"shippingCents"`
	DiscountCents     int64          `db:"discount_cents" json:"discountCents"`
	TotalCents        int64          `db:"total_cents" json:"totalCents"`
	RefundedCents     int64          `db:"refunded_cents" json:"refundedCents"`
	Currency          string         `db:"currency" json:"currency"`
	ShippingAddress   types.JSONText `db:"shipping_address" json:"shippingAddress"`
	BillingAddress    types.JSONText `db:"billing_address" json:"billingAddress"`
	PaymentIntentID   *string        `db:"payment_intent_id" json:"paymentIntentId"`
	ClientSecret      *string        `db:"client_secret" json:"clientSecret"`
	TrackingNumber    *string        `db:"tracking_number" json:"trackingNumber"`
	ShippedAt         *time.Time     `db:"shipped_at" json:"shippedAt"`
	DeliveredAt       *time.Time     `db:"delivered_at" json:"deliveredAt"`
	PaymentDueAt      time.Time      `db:"payment_due_at" json:"paymentDueAt"`
	CreatedAt         time.Time      `db:"created_at" json:"createdAt"`
	UpdatedAt         time.Time      `db:"updated_at" json:"updatedAt"`
	Items             []OrderItem    `db:"-" json:"items"`
}

// State is what the order state machine looks at.
func (o Order) State() shopd.OrderState {
	st := shopd.OrderState{Status: o.Status, PaymentStatus: o.PaymentStatus, FulfillmentStatus: o.FulfillmentStatus,
		TotalCents: o.TotalCents, RefundedCents: o.RefundedCents, Currency: o.Currency}
	if o.PaymentIntentID != nil {
		st.PaymentIntentID = *o.PaymentIntentID
	}
	return st
}

// Number is the customer-facing order number, e.g. ORD-000123.
func (o Order) Number() string { return fmt.Sprintf("ORD-%06d", o.OrderNumber) }

// OrderItem is a line frozen at checkout.
type OrderItem struct {
	OrderID        string `db:"order_id" json:"orderId"`
	LineNo         int    `db:"line_no" json:"lineNo"`
	ProductID      string `db:"product_id" json:"productId"`
	SKU            string `db:"sku" json:"sku"`
	Name           string `db:"name" json:"name"`
	UnitPriceCents int64  `db:"unit_price_cents" json:"unitPriceCents"`
	Quantity       int    `db:"quantity" json:"quantity"`
	LineTotalCents int64  `db:"line_total_cents" json:"lineTotalCents"`
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
	// Search is an order number (exact, case-insensitive: "ORD-000123") or
	// the start of the customer's email (case-insensitive); "" for no search.
	Search string
}

// orderNumberPattern is an order number as Order.Number writes it, in any case.
var orderNumberPattern = regexp.MustCompile(`^(?i)ORD-([0-9]{1,18})$`)

// likeEscaper makes a search text literal inside a LIKE pattern (backslash
// is LIKE's default escape), so "a_b" does not match "axb".
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// searchTerms turns a search text into the order number it names (nil when
// it names none) and a LIKE pattern for the email prefix.
func searchTerms(search string) (*int64, string) {
	var number *int64
	if m := orderNumberPattern.FindStringSubmatch(search); m != nil {
		if n, err := strconv.ParseInt(m[1], 10, 64); err == nil {
			number = &n
		}
	}
	return number, likeEscaper.Replace(strings.ToLower(search)) + "%"
}

// The search is an OR of two indexed conditions (the unique order_number
// index and orders_email_prefix_idx, migration 0009), which PostgreSQL
// answers with a BitmapOr; lib/pq's unnamed statements get a plan for the
// actual arguments, so the guards on empty filters fold away.
const listOrdersSQL = `
SELECT ` + orderColumns + `
FROM orders
WHERE ($1 = '' OR customer_id = $1::uuid)
	AND ($2 = '' OR status = $2)
	AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
	AND ($6 = '' OR order_number = $7::bigint OR lower(email) LIKE $8)
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
	number, emailPrefix := searchTerms(f.Search)
	limit := pg.limit()
	rows := make([]Order, 0, limit+1) // sized: sqlx appends
	if err := s.db.SelectContext(ctx, &rows, listOrdersSQL, f.CustomerID, f.Status, t, id, limit+1,
		f.Search, number, emailPrefix); err != nil {
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

// RecordEvent writes a transition of the order (of type typ, see shopd's
// Event constants) with the order's state after it.
func (t *Tx) RecordEvent(ctx context.Context, o Order, typ string, by Actor, amountCents *int64, note string) error {
	var n *string
	if note != "" {
		n = &note
	}
	_, err := t.tx.ExecContext(ctx, insertEventSQL, o.ID, typ, o.Status, o.PaymentStatus, o.FulfillmentStatus,
		by.Kind, nullID(by.ID), amountCents, n)
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
	delivered_at = $10,
	updated_at = now()
WHERE id = $1
RETURNING updated_at`

// saveState writes the mutable part of a locked order.
func saveState(ctx context.Context, tx *sqlx.Tx, o *Order) error {
	err := tx.GetContext(ctx, &o.UpdatedAt, setOrderStateSQL, o.ID, o.Status, o.PaymentStatus, o.FulfillmentStatus,
		o.RefundedCents, o.TrackingNumber, o.ShippedAt, o.PaymentIntentID, o.ClientSecret, o.DeliveredAt)
	if err != nil {
		return fmt.Errorf("save order %s: %w", o.ID, translate(err))
	}
	return nil
}

// mutable is the part of an order that transitions change, comparable so
// that an update which changed nothing writes nothing.
type mutable struct {
	status, paymentStatus, fulfillmentStatus      string
	refundedCents                                 int64
	trackingNumber, paymentIntentID, clientSecret string
	shippedAt, deliveredAt                        time.Time
}

func (o Order) mutable() mutable {
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	at := func(p *time.Time) time.Time {
		if p == nil {
			return time.Time{}
		}
		return *p
	}
	return mutable{o.Status, o.PaymentStatus, o.FulfillmentStatus, o.RefundedCents,
		deref(o.TrackingNumber), deref(o.PaymentIntentID), deref(o.ClientSecret), at(o.ShippedAt), at(o.DeliveredAt)}
}

// UpdateOrder runs fn on the order, with its lines, in a transaction of its
// own holding the order's row lock (SELECT ... FOR UPDATE), so transitions
// on one order are serialised; then it saves the state fn left (statuses,
// refunded amount, intent, tracking, dates) and commits. An error from fn
// rolls everything back and is returned as it is. An unknown order is
// ENotFound.
func (s *Store) UpdateOrder(ctx context.Context, orderID string, fn func(tx *Tx, o *Order) error) (Order, error) {
	var out Order
	err := s.WithTx(ctx, func(tx *Tx) error {
		var err error
		out, err = tx.UpdateOrder(ctx, orderID, fn)
		return err
	})
	if err != nil {
		return Order{}, err
	}
	return out, nil
}

// UpdateOrder is Store.UpdateOrder inside the caller's transaction, which
// keeps the row lock until it ends.
func (t *Tx) UpdateOrder(ctx context.Context, orderID string, fn func(tx *Tx, o *Order) error) (Order, error) {
	o, err := getOrder(ctx, t.tx, orderID, true)
	if err != nil {
		return Order{}, err
	}
	before := o.mutable()
	if err := fn(t, &o); err != nil {
		return Order{}, err
	}
	if o.mutable() != before {
		if err := saveState(ctx, t.tx, &o); err != nil {
			return Order{}, err
		}
	}
	return o, nil
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

// ReleaseStock puts the order's units back on sale, in ascending product
// order as checkout takes them, and writes the release ledger rows with the
// note why.
func (t *Tx) ReleaseStock(ctx context.Context, o Order, why string) error {
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
		if _, err := t.tx.ExecContext(ctx, releaseStockSQL, id, qty[id], o.ID, why); err != nil {
			return fmt.Errorf("release stock %s: %w", id, translate(err))
		}
	}
	return nil
}
