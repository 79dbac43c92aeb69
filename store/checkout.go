package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/jmoiron/sqlx/types"
	"github.com/lib/pq"

	"github.com/shopd/shopd"
)

// hotStatements are the statements every checkout and add-to-cart runs:
// prepared once per connection (see PreparingConnector).
var hotStatements = []string{
	claimKeySQL, lockCartForUpdateSQL, checkoutCartSQL, takeStockSQL, placeOrderSQL,
	placedOrderSQL, finishCheckoutSQL, touchCartSQL, addCartItemSQL,
}

// Checkout recovery points: how far a checkout got. A retry resumes there.
const (
	PointStarted      = "started"       // key claimed, nothing else done
	PointOrderCreated = "order_created" // order committed, stock taken, cart emptied; no intent yet
	PointFinished     = "finished"      // outcome recorded; replays return it
)

// Outcomes of a finished checkout, as its idempotency key records them.
const (
	OutcomeCreated = "created" // the order was placed and its payment is ready; OrderSnapshot is what was answered
	OutcomeRefused = "refused" // the checkout was refused for good; RefusalCode and RefusalMessage say why
)

// IdempotencyKey is a checkout attempt identified by (user, key). Once
// finished it records the checkout's outcome in the shop's own terms (not
// as HTTP): every retry with the key gets that outcome again. While a
// checkout works on it, the key carries that checkout's lease.
type IdempotencyKey struct {
	ID            int64   `db:"id"`
	UserID        string  `db:"user_id"`
	Key           string  `db:"key"`
	RequestHash   string  `db:"request_hash"`
	RecoveryPoint string  `db:"recovery_point"`
	OrderID       *string `db:"order_id"`
	// Outcome is OutcomeCreated or OutcomeRefused once finished, else nil.
	Outcome        *string        `db:"outcome"`
	OrderSnapshot  types.JSONText `db:"order_snapshot"`
	RefusalCode    *string        `db:"refusal_code"`
	RefusalMessage *string        `db:"refusal_message"`
	// LeaseOwner is the checkout attempt working on the key, until
	// LeaseExpiresAt (the database's clock); both nil when none is.
	LeaseOwner     *string    `db:"lease_owner"`
	LeaseExpiresAt *time.Time `db:"lease_expires_at"`
	CreatedAt      time.Time  `db:"created_at"`
	UpdatedAt      time.Time  `db:"updated_at"`
}

// Order is the order a created checkout answered, as it was then.
func (k IdempotencyKey) Order() (Order, error) {
	var o Order
	if err := json.Unmarshal(k.OrderSnapshot, &o); err != nil {
		return Order{}, fmt.Errorf("idempotency key %d: order snapshot: %w", k.ID, err)
	}
	return o, nil
}

const keyColumns = `id, user_id, key, request_hash, recovery_point, order_id, outcome, order_snapshot,
	refusal_code, refusal_message, lease_owner, lease_expires_at, created_at, updated_at`

// Lease is a checkout's hold on its idempotency key: while it is live, no
// other request or job works on the key. It lives in the key's row, not in
// a database session, so holding it costs no connection; it expires by
// itself when its holder dies and stops renewing it.
type Lease struct {
	KeyID int64
	Owner string
	TTL   time.Duration
}

// claimKeySQL inserts the key with a lease for $5 or, when the key exists,
// takes its lease if the key is unfinished, came with the same request and
// nobody holds a live lease on it. It returns the row and whether the
// lease is the caller's. When another transaction inserted the key
// concurrently and the lease was not taken, neither branch sees a row in
// this statement's snapshot; the caller then simply asks again.
const claimKeySQL = `
WITH leased AS (
	INSERT INTO idempotency_keys AS k (user_id, key, request_hash, created_at, lease_owner, lease_expires_at)
	VALUES ($1, $2, $3, $4, $5, now() + $6 * interval '1 millisecond')
	ON CONFLICT (user_id, key) DO UPDATE
	SET lease_owner = EXCLUDED.lease_owner,
		lease_expires_at = EXCLUDED.lease_expires_at
	WHERE k.recovery_point <> 'finished'
		AND k.request_hash = EXCLUDED.request_hash
		AND (k.lease_owner IS NULL OR k.lease_expires_at <= now())
	RETURNING ` + keyColumns + `, true AS leased
)
SELECT * FROM leased
UNION ALL
SELECT ` + keyColumns + `, false FROM idempotency_keys WHERE user_id = $1 AND key = $2
LIMIT 1`

// ClaimCheckout returns the key's row, creating it with the request hash
// when new, and takes the key's lease for ttl under a fresh owner when the
// key is unfinished, was first used with requestHash and no live lease is
// on it. leased reports whether the caller holds the lease now; the row
// then shows it.
func (s *Store) ClaimCheckout(ctx context.Context, userID, key, requestHash string, ttl time.Duration) (k IdempotencyKey, lease Lease, leased bool, err error) {
	owner := uuid.NewString()
	for attempt := 0; attempt < 5; attempt++ {
		var row struct {
			IdempotencyKey
			Leased bool `db:"leased"`
		}
		err := s.db.GetContext(ctx, &row, claimKeySQL, userID, key, requestHash, s.Now(), owner, ttl.Milliseconds())
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return IdempotencyKey{}, Lease{}, false, fmt.Errorf("claim idempotency key: %w", translate(err))
		}
		if !row.Leased {
			return row.IdempotencyKey, Lease{}, false, nil
		}
		return row.IdempotencyKey, Lease{KeyID: row.ID, Owner: owner, TTL: ttl}, true, nil
	}
	return IdempotencyKey{}, Lease{}, false, shopd.Errorf(shopd.EUnavailable, "The checkout is busy; retry.")
}

// leaseStuckSQL takes the lease of a checkout stuck after its order was
// created, unless a live lease is on it.
const leaseStuckSQL = `
UPDATE idempotency_keys
SET lease_owner = $2,
	lease_expires_at = now() + $3 * interval '1 millisecond'
WHERE id = $1
	AND recovery_point = 'order_created'
	AND (lease_owner IS NULL OR lease_expires_at <= now())
RETURNING ` + keyColumns

// LeaseStuckCheckout takes the lease of key id for ttl when its checkout
// created its order but did not finish and nobody holds a live lease on
// it. leased is false when the key is gone, is not stuck there, or is
// leased by someone else; k is then the key as it is (zero when gone).
func (s *Store) LeaseStuckCheckout(ctx context.Context, id int64, ttl time.Duration) (k IdempotencyKey, lease Lease, leased bool, err error) {
	owner := uuid.NewString()
	err = s.db.GetContext(ctx, &k, leaseStuckSQL, id, owner, ttl.Milliseconds())
	if err == nil {
		return k, Lease{KeyID: id, Owner: owner, TTL: ttl}, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return IdempotencyKey{}, Lease{}, false, fmt.Errorf("lease checkout: %w", translate(err))
	}
	k, err = s.IdempotencyKeyByID(ctx, id)
	if shopd.ErrorCode(err) == shopd.ENotFound {
		return IdempotencyKey{}, Lease{}, false, nil
	}
	return k, Lease{}, false, err
}

const (
	renewLeaseSQL = `
UPDATE idempotency_keys
SET lease_expires_at = now() + $3 * interval '1 millisecond'
WHERE id = $1
	AND lease_owner = $2`

	releaseLeaseSQL = `
UPDATE idempotency_keys
SET lease_owner = NULL,
	lease_expires_at = NULL
WHERE id = $1
	AND lease_owner = $2`
)

// ErrLeaseLost is RenewLease's answer when the lease is no longer the
// caller's: it expired and another request or job took the key over, or
// the checkout ended.
var ErrLeaseLost = shopd.Errorf(shopd.EUnavailable, "The checkout was taken over by another attempt; retry with the same Idempotency-Key.")

// RenewLease extends the lease by its TTL from now. Errors: ErrLeaseLost.
func (s *Store) RenewLease(ctx context.Context, l Lease) error {
	res, err := s.db.ExecContext(ctx, renewLeaseSQL, l.KeyID, l.Owner, l.TTL.Milliseconds())
	if err != nil {
		return fmt.Errorf("renew checkout lease: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrLeaseLost
	}
	return nil
}

// ReleaseLease frees the key for the next request at once, if the lease
// is still the caller's; a lease that is not is left alone.
func (s *Store) ReleaseLease(ctx context.Context, l Lease) error {
	if _, err := s.db.ExecContext(ctx, releaseLeaseSQL, l.KeyID, l.Owner); err != nil {
		return fmt.Errorf("release checkout lease: %w", translate(err))
	}
	return nil
}

const keyByIDSQL = `SELECT ` + keyColumns + ` FROM idempotency_keys WHERE id = $1`

// IdempotencyKeyByID re-reads a key, e.g. after taking its lock.
func (s *Store) IdempotencyKeyByID(ctx context.Context, id int64) (IdempotencyKey, error) {
	var k IdempotencyKey
	if err := s.db.GetContext(ctx, &k, keyByIDSQL, id); err != nil {
		return IdempotencyKey{}, fmt.Errorf("idempotency key: %w", translate(err))
	}
	return k, nil
}

const forgetKeySQL = `
DELETE FROM idempotency_keys
WHERE id = $1
	AND recovery_point = 'started'`

// ForgetIdempotencyKey removes a key whose checkout changed nothing (empty
// cart, no stock), so the client may try again once it has fixed that.
func (s *Store) ForgetIdempotencyKey(ctx context.Context, id int64) error {
	_, err := s.db.ExecContext(ctx, forgetKeySQL, id)
	if err != nil {
		return fmt.Errorf("forget idempotency key: %w", translate(err))
	}
	return nil
}

const finishKeyCreatedSQL = `
UPDATE idempotency_keys
SET recovery_point = 'finished',
	outcome = 'created',
	order_snapshot = $2,
	cart_snapshot = NULL,
	lease_owner = NULL,
	lease_expires_at = NULL,
	updated_at = now()
WHERE id = $1
	AND lease_owner = $3`

// FinishKeyCreated ends a checkout that placed o and readied its payment,
// and frees its lease: every retry with the key gets o as it is now (see
// IdempotencyKey.Order). Only the lease's holder finishes the key; when
// the lease is no longer the caller's, the error is ErrLeaseLost and the
// key is left to whoever holds it.
func (s *Store) FinishKeyCreated(ctx context.Context, l Lease, o Order) error {
	snapshot, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("finish idempotency key: encode order: %w", err)
	}
	// jsonb goes as text: see withOneRoundTrip.
	res, err := s.db.ExecContext(ctx, finishKeyCreatedSQL, l.KeyID, string(snapshot), l.Owner)
	if err != nil {
		return fmt.Errorf("finish idempotency key: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrLeaseLost
	}
	return nil
}

const refuseKeySQL = `
UPDATE idempotency_keys
SET recovery_point = 'finished',
	outcome = 'refused',
	refusal_code = $2,
	refusal_message = $3,
	cart_snapshot = NULL,
	lease_owner = NULL,
	lease_expires_at = NULL,
	updated_at = now()
WHERE id = $1
	AND recovery_point <> 'finished'`

// RefuseKey ends a checkout that was refused for good, and frees its
// lease: every retry with the key gets the same refusal, a shopd.Error
// with code and message. A key already finished (by an attempt that took
// it over) keeps its outcome.
func (t *Tx) RefuseKey(ctx context.Context, id int64, code, message string) error {
	if _, err := t.tx.ExecContext(ctx, refuseKeySQL, id, code, message); err != nil {
		return fmt.Errorf("refuse idempotency key: %w", translate(err))
	}
	return nil
}

const staleKeysSQL = `
SELECT ` + keyColumns + `
FROM idempotency_keys
WHERE recovery_point = 'order_created'
	AND updated_at < $1
ORDER BY updated_at
LIMIT 100`

// StaleCheckouts returns checkouts stuck after their order was created
// (the process died or Stripe failed) since before the cutoff.
func (s *Store) StaleCheckouts(ctx context.Context, before time.Time) ([]IdempotencyKey, error) {
	var keys []IdempotencyKey
	if err := s.db.SelectContext(ctx, &keys, staleKeysSQL, before); err != nil {
		return nil, fmt.Errorf("stale checkouts: %w", translate(err))
	}
	return keys, nil
}

const purgeKeysSQL = `
DELETE FROM idempotency_keys
WHERE created_at < $1
	AND recovery_point <> 'order_created'`

// PurgeIdempotencyKeys deletes keys created before the cutoff (their 24 h
// of replay are over), except checkouts the reconciler still has to
// finish. It returns how many it deleted.
func (s *Store) PurgeIdempotencyKeys(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, purgeKeysSQL, before)
	if err != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", translate(err))
	}
	return res.RowsAffected()
}

// PlaceOrder is what checkout's order transaction needs. The order's email
// is the customer's as the order is placed.
type PlaceOrder struct {
	// OrderID is the new order's id, when the caller makes it (so that what
	// commits with the order can name it first); empty, PlaceOrder makes it.
	OrderID         string
	KeyID           int64
	UserID          string
	ShippingAddress []byte // JSON
	BillingAddress  []byte // JSON
	Pricing         shopd.Pricing
	PaymentDueAt    time.Time
}

type cartLine struct {
	ProductID string    `db:"product_id" json:"product_id"`
	Quantity  int       `db:"quantity" json:"quantity"`
	AddedAt   time.Time `db:"added_at" json:"added_at"`
}

// cartSnapshot is the cart as a checkout found it. The key keeps it until
// the checkout ends, so that a payment refused for good can give the cart
// back as it was (RestoreCart). Its names are the ones RestoreCart's SQL
// reads.
type cartSnapshot struct {
	// UpdatedAt is the cart's stamp before the checkout; EmptiedAt the one
	// the checkout gave it when it emptied it.
	UpdatedAt time.Time  `json:"updatedAt"`
	EmptiedAt time.Time  `json:"emptiedAt"`
	Lines     []cartLine `json:"lines"`
}

type takenStock struct {
	SKU        string `db:"sku"`
	Name       string `db:"name"`
	PriceCents int64  `db:"price_cents"`
	Currency   string `db:"currency"`
}

const (
	checkoutCartSQL = `
SELECT product_id, quantity, added_at
FROM cart_items
WHERE user_id = $1
ORDER BY product_id`

	// takeStockSQL is the oversell guard: the row lock plus the condition
	// make concurrent checkouts queue, and the loser sees too little stock.
	// The sale's ledger row goes in the same statement, so the hot product
	// row is locked for one round trip less.
	takeStockSQL = `
WITH p AS (
	UPDATE products
	SET stock = stock - $2, updated_at = now()
	WHERE id = $1
		AND is_active
		AND stock >= $2
	RETURNING id, sku, name, price_cents, currency, stock
), sale AS (
	INSERT INTO inventory_transactions (product_id, sku, quantity_change, type, stock_after, reference_id, note)
	SELECT id, sku, -$2::integer, 'sale', stock, $3, 'checkout'
	FROM p
)
SELECT sku, name, price_cents, currency FROM p`

	productStateSQL = `SELECT sku, name, is_active, stock FROM products WHERE id = $1`
)

// placedOrderSQL reads what the order got as it committed, its number,
// with what paying for it needs of its customer.
var placedOrderSQL = `
SELECT o.order_number, ` + userColumnsOf("u") + `
FROM orders o
JOIN users u ON u.id = o.customer_id
WHERE o.id = $1`

// placeOrderSQL writes the order, its first event and all its lines,
// empties the cart (the caller holds its lock) and stamps it ($18), and
// moves the key ($19) to order_created with the order and the cart it
// emptied ($20), if it was still at started (keyed says whether it was):
// one round trip while the lines' product rows stay locked. The foreign
// keys of the event, the lines and the key are checked at the end of the
// statement, when the order is there. The order has no number until its
// transaction commits (migration 0012), so it reads back as 0.
var placeOrderSQL = `
WITH o AS (
	INSERT INTO orders (id, customer_id, email, status, payment_status, fulfillment_status,
		subtotal_cents, tax_cents, shipping_cents, discount_cents, total_cents, currency,
		shipping_address, billing_address, payment_due_at)
	SELECT $1, $2, u.email, 'pending', 'pending', 'unfulfilled', $3, $4, $5, $6, $7, $8, $9, $10, $11
	FROM users u
	WHERE u.id = $2
	RETURNING ` + orderColumns + `
), placed AS (
	INSERT INTO order_events (order_id, type, status, payment_status, fulfillment_status, actor, actor_id, amount_cents)
	SELECT id, 'placed', status, payment_status, fulfillment_status, 'customer', customer_id, total_cents
	FROM o
), lines AS (
	INSERT INTO order_items (order_id, line_no, product_id, sku, name, unit_price_cents, quantity, line_total_cents)
	SELECT $1, line_no, product_id, sku, name, unit_price_cents, quantity, unit_price_cents * quantity
	FROM unnest($12::integer[], $13::uuid[], $14::text[], $15::text[], $16::bigint[], $17::integer[])
		AS l (line_no, product_id, sku, name, unit_price_cents, quantity)
), gone AS (
	DELETE FROM cart_items
	WHERE user_id = $2
), emptied AS (
	UPDATE carts
	SET updated_at = $18
	WHERE user_id = $2
), keyed AS (
	UPDATE idempotency_keys
	SET recovery_point = 'order_created',
		order_id = $1,
		cart_snapshot = $20,
		updated_at = now()
	WHERE id = $19
		AND recovery_point = 'started'
	RETURNING id
)
SELECT ` + strings.Replace(orderColumns, "order_number", "0 AS order_number", 1) + `,
	EXISTS (SELECT 1 FROM keyed) AS keyed
FROM o`

// PlaceOrder turns the user's cart into an order inside the caller's
// transaction, which may still refuse the order before it commits: it
// takes the stock of every line in ascending product order, freezes lines
// and prices, writes the sale ledger rows, records the order's first event,
// empties the cart (keeping it on the key, see RestoreCart) and moves the
// idempotency key to order_created. The order is numbered, without gaps,
// as the transaction commits: the returned order has number 0 (read it
// after commit with PlacedOrder). Refusals, after which the caller must roll back: an empty cart is
// EInvalid; a line short of stock, or whose product was archived since it
// was added, is EInsufficientStock naming the product, with its Shortage;
// a cart mixing currencies is EConflict.
func (t *Tx) PlaceOrder(ctx context.Context, p PlaceOrder) (Order, error) {
	tx := t.tx
	// Lock the cart first, as every cart write does, so a line added
	// during checkout is either ordered or left in the cart.
	var cart cartSnapshot
	err := tx.GetContext(ctx, &cart.UpdatedAt, lockCartForUpdateSQL, p.UserID)
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, shopd.Errorf(shopd.EInvalid, "The cart is empty.")
	} else if err != nil {
		return Order{}, fmt.Errorf("lock cart: %w", translate(err))
	}
	if err := tx.SelectContext(ctx, &cart.Lines, checkoutCartSQL, p.UserID); err != nil {
		return Order{}, fmt.Errorf("read cart: %w", translate(err))
	}
	if len(cart.Lines) == 0 {
		return Order{}, shopd.Errorf(shopd.EInvalid, "The cart is empty.")
	}
	// The id is made before the order so the sale ledger rows can name it
	// before it exists; it is numbered as the transaction commits.
	orderID := p.OrderID
	if orderID == "" {
		orderID = uuid.NewString()
	}
	items := make([]OrderItem, 0, len(cart.Lines))
	var subtotal int64
	currency := ""
	for i, l := range cart.Lines {
		var taken takenStock
		err := tx.GetContext(ctx, &taken, takeStockSQL, l.ProductID, l.Quantity, orderID)
		if errors.Is(err, sql.ErrNoRows) {
			return Order{}, shortOf(ctx, tx, l)
		}
		if err != nil {
			return Order{}, fmt.Errorf("take stock %s: %w", l.ProductID, translate(err))
		}
		if currency == "" {
			currency = taken.Currency
		} else if taken.Currency != currency {
			return Order{}, shopd.Errorf(shopd.EConflict, "The cart mixes currencies (%s and %s); check out separately.", currency, taken.Currency)
		}
		line := taken.PriceCents * int64(l.Quantity)
		subtotal += line
		items = append(items, OrderItem{OrderID: orderID, LineNo: i + 1, ProductID: l.ProductID, SKU: taken.SKU, Name: taken.Name,
			UnitPriceCents: taken.PriceCents, Quantity: l.Quantity, LineTotalCents: line})
	}
	totals := p.Pricing.CheckoutTotals(subtotal)
	n := len(items)
	lineNo, qty := make([]int64, n), make([]int64, n)
	productID, sku, name := make([]string, n), make([]string, n), make([]string, n)
	price := make([]int64, n)
	for i, it := range items {
		lineNo[i], productID[i], sku[i], name[i], price[i], qty[i] = int64(it.LineNo), it.ProductID, it.SKU, it.Name, it.UnitPriceCents, int64(it.Quantity)
	}
	// The stamp the emptied cart gets, at the database's precision so that
	// the snapshot holds it exactly as stored (RestoreCart compares them).
	cart.EmptiedAt = t.now().UTC().Truncate(time.Microsecond)
	snapshot, err := json.Marshal(cart)
	if err != nil {
		return Order{}, fmt.Errorf("encode cart: %w", err)
	}
	var placed struct {
		Order
		Keyed bool `db:"keyed"`
	}
	// jsonb goes as text: see withOneRoundTrip.
	err = tx.GetContext(ctx, &placed, placeOrderSQL, orderID, p.UserID,
		totals.SubtotalCents, totals.TaxCents, totals.ShippingCents, totals.DiscountCents, totals.TotalCents,
		currency, string(p.ShippingAddress), string(p.BillingAddress), p.PaymentDueAt,
		pq.Array(lineNo), pq.Array(productID), pq.Array(sku), pq.Array(name), pq.Array(price), pq.Array(qty),
		cart.EmptiedAt, p.KeyID, string(snapshot))
	if err != nil {
		return Order{}, fmt.Errorf("insert order: %w", translate(err))
	}
	if !placed.Keyed {
		// Another request placed this key's order first; roll everything back.
		return Order{}, shopd.Errorf(shopd.EConflict, "This checkout was already placed.")
	}
	o := placed.Order
	o.Items = items
	return o, nil
}

// PlacedOrder returns the number the order got when its checkout
// committed, and the order's customer: what its payment needs, in one
// round trip.
func (s *Store) PlacedOrder(ctx context.Context, orderID string) (number int64, customer User, err error) {
	var row struct {
		OrderNumber *int64 `db:"order_number"`
		User
	}
	if err := s.db.GetContext(ctx, &row, placedOrderSQL, orderID); err != nil {
		return 0, User{}, fmt.Errorf("placed order: %w", translate(err))
	}
	if row.OrderNumber == nil {
		return 0, User{}, fmt.Errorf("order %s has no number", orderID)
	}
	return *row.OrderNumber, row.User, nil
}

const (
	restoreCartLinesSQL = `
INSERT INTO cart_items (user_id, product_id, quantity, added_at)
SELECT k.user_id, l.product_id, l.quantity, l.added_at
FROM idempotency_keys k,
	jsonb_to_recordset(k.cart_snapshot -> 'lines') AS l (product_id uuid, quantity integer, added_at timestamptz)
WHERE k.id = $1
ON CONFLICT (user_id, product_id) DO NOTHING`

	// restoreCartStampSQL puts the cart's stamp back when nothing touched
	// the cart since the checkout emptied it; otherwise the restore is a
	// change of its own, stamped now.
	restoreCartStampSQL = `
UPDATE carts c
SET updated_at = CASE
		WHEN c.updated_at = (k.cart_snapshot ->> 'emptiedAt')::timestamptz
			THEN (k.cart_snapshot ->> 'updatedAt')::timestamptz
		ELSE $2
	END
FROM idempotency_keys k
WHERE k.id = $1
	AND k.cart_snapshot IS NOT NULL
	AND c.user_id = k.user_id`
)

// LockCart takes the row lock of the user's cart for the rest of the
// transaction. A flow that will change both an order and the cart takes it
// first, in the order checkout takes them (cart, then products).
func (t *Tx) LockCart(ctx context.Context, userID string) error {
	var updatedAt time.Time
	err := t.tx.GetContext(ctx, &updatedAt, lockCartForUpdateSQL, userID)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("lock cart: %w", translate(err))
	}
	return nil
}

// RestoreCart gives the user back the cart that the checkout of the key
// emptied: its lines with their quantities and the times they were added.
// Lines the customer has put in the cart since are left as they are. A
// cart nobody touched since the checkout is exactly as it was, its
// updatedAt included. A key that kept no cart changes nothing.
func (t *Tx) RestoreCart(ctx context.Context, keyID int64) error {
	if _, err := t.tx.ExecContext(ctx, restoreCartLinesSQL, keyID); err != nil {
		return fmt.Errorf("restore cart lines: %w", translate(err))
	}
	if _, err := t.tx.ExecContext(ctx, restoreCartStampSQL, keyID, t.now().UTC()); err != nil {
		return fmt.Errorf("restore cart stamp: %w", translate(err))
	}
	return nil
}

// shortOf explains why a line's stock could not be taken.
func shortOf(ctx context.Context, tx *sqlx.Tx, l cartLine) error {
	var p struct {
		SKU      string `db:"sku"`
		Name     string `db:"name"`
		IsActive bool   `db:"is_active"`
		Stock    int    `db:"stock"`
	}
	if err := tx.GetContext(ctx, &p, productStateSQL, l.ProductID); err != nil {
		return fmt.Errorf("product state: %w", translate(err))
	}
	short := &shopd.Shortage{ProductID: l.ProductID, SKU: p.SKU, Requested: l.Quantity, Available: p.Stock}
	if !p.IsActive {
		short.Available = 0
		return &shopd.Error{Code: shopd.EInsufficientStock, Shortage: short,
			Message: fmt.Sprintf("%s (%s) is no longer sold; remove it from the cart.", p.Name, p.SKU)}
	}
	return &shopd.Error{Code: shopd.EInsufficientStock, Shortage: short,
		Message: fmt.Sprintf("Not enough stock for %s (%s): %d left, %d in the cart.", p.Name, p.SKU, p.Stock, l.Quantity)}
}

// orderSnapshotSQL is the JSON of the order row o as encoding/json writes
// an Order without its lines (IdempotencyKey.Order reads it back), made
// from Order's tags so that it follows the struct.
var orderSnapshotSQL = orderJSONObject("o")

func orderJSONObject(alias string) string {
	t := reflect.TypeFor[Order]()
	var pairs []string
	for i := range t.NumField() {
		f := t.Field(i)
		column := f.Tag.Get("db")
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if column == "" || column == "-" || name == "" || name == "-" {
			continue
		}
		pairs = append(pairs, fmt.Sprintf("'%s', %s.%s", name, alias, column))
	}
	return "jsonb_build_object(" + strings.Join(pairs, ", ") + ")"
}

// finishCheckoutSQL is attachIntentSQL and finishKeyCreatedSQL in one
// statement: the key's snapshot is the order row the attach returns, with
// its lines ($6); finished says whether the lease ($4, $5) was still the
// caller's and the key is finished.
var finishCheckoutSQL = attachIntentCTEs + `, finished AS (
	UPDATE idempotency_keys
	SET recovery_point = 'finished',
		outcome = 'created',
		order_snapshot = (SELECT ` + orderSnapshotSQL + ` || jsonb_build_object('items', $6::jsonb) FROM o),
		cart_snapshot = NULL,
		lease_owner = NULL,
		lease_expires_at = NULL,
		updated_at = now()
	WHERE id = $4
		AND lease_owner = $5
		AND EXISTS (SELECT 1 FROM o)
	RETURNING order_snapshot
)
SELECT ` + orderColumns + `,
	(SELECT order_snapshot FROM finished) AS order_snapshot
FROM o`

// FinishCheckout stores the PaymentIntent of o, the order of the lease's
// key, and finishes the key with the order as it then is (see
// FinishKeyCreated), in one round trip: the returned order is the key's
// snapshot, exactly what every retry gets. As AttachPaymentIntent, it
// returns ErrOrderCancelled for an order cancelled meanwhile, and attaching
// the intent the order already has is no error. When the lease is no
// longer the caller's, the intent is attached but the key left to whoever
// holds it: the error is ErrLeaseLost.
func (s *Store) FinishCheckout(ctx context.Context, l Lease, o Order, intentID, clientSecret string) (Order, error) {
	items, err := json.Marshal(o.Items)
	if err != nil {
		return Order{}, fmt.Errorf("finish checkout: encode lines: %w", err)
	}
	var row struct {
		Order
		Snapshot []byte `db:"order_snapshot"`
	}
	// jsonb goes as text: see withOneRoundTrip.
	err = s.db.GetContext(ctx, &row, finishCheckoutSQL, o.ID, intentID, clientSecret, l.KeyID, l.Owner, string(items))
	switch {
	case err == nil && row.Snapshot == nil:
		row.Order.Items = o.Items
		return row.Order, ErrLeaseLost
	case err == nil:
		k := IdempotencyKey{ID: l.KeyID, OrderSnapshot: row.Snapshot}
		return k.Order()
	case !errors.Is(err, sql.ErrNoRows):
		return Order{}, fmt.Errorf("finish checkout: %w", translate(err))
	}
	// Not attached (the order was cancelled, or has the intent from an
	// attempt that died before finishing the key): as the two steps do.
	attached, err := s.AttachPaymentIntent(ctx, o, intentID, clientSecret)
	if err != nil {
		return Order{}, err
	}
	if err := s.FinishKeyCreated(ctx, l, attached); err != nil {
		return attached, err
	}
	return attached, nil
}

// ErrOrderCancelled is AttachPaymentIntent's answer for an order cancelled
// meanwhile: its intent must be cancelled, never handed out.
var ErrOrderCancelled = shopd.Errorf(shopd.EConflict, "The order was cancelled before payment could start; check out again.")

// attachIntentCTEs set the intent of an open order that has none (o) and
// record the event; attachIntentSQL and finishCheckoutSQL go on from them.
const attachIntentCTEs = `
WITH o AS (
	UPDATE orders
	SET payment_intent_id = $2, client_secret = $3, updated_at = now()
	WHERE id = $1
		AND payment_intent_id IS NULL
		AND status <> 'cancelled'
	RETURNING ` + orderColumns + `
), created AS (
	INSERT INTO order_events (order_id, type, status, payment_status, fulfillment_status, actor, amount_cents, note)
	SELECT id, 'payment_intent_created', status, payment_status, fulfillment_status, 'system', total_cents, $2
	FROM o
)`

// attachIntentSQL sets the intent of an open order that has none, and
// records the event, in one statement.
const attachIntentSQL = attachIntentCTEs + `
SELECT ` + orderColumns + ` FROM o`

// AttachPaymentIntent stores the order's PaymentIntent and returns the
// order (its lines are taken from o). Attaching the same intent again is a
// no-op, so a resumed checkout may call it twice. An order cancelled
// meanwhile gets none: ErrOrderCancelled.
func (s *Store) AttachPaymentIntent(ctx context.Context, o Order, intentID, clientSecret string) (Order, error) {
	var out Order
	err := s.db.GetContext(ctx, &out, attachIntentSQL, o.ID, intentID, clientSecret)
	if err == nil {
		out.Items = o.Items
		return out, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Order{}, fmt.Errorf("attach intent: %w", translate(err))
	}
	// Not attached: find out why, from the order as it is now.
	cur, err := s.Order(ctx, o.ID)
	switch {
	case err != nil:
		return Order{}, err
	case cur.PaymentIntentID != nil && *cur.PaymentIntentID == intentID:
		return cur, nil
	case cur.PaymentIntentID != nil:
		return Order{}, fmt.Errorf("order %s already has intent %s, not %s", o.ID, *cur.PaymentIntentID, intentID)
	case cur.Status == shopd.StatusCancelled:
		return Order{}, ErrOrderCancelled
	}
	return Order{}, fmt.Errorf("attach intent to order %s: nothing updated", o.ID)
}
