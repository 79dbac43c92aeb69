package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/shopd/shopd"
)

// CartWatcher learns of each change of a cart's lines, in the transaction
// that makes it, with the cart's new version (its updated_at as stored), so
// what it schedules commits with the change or not at all.
type CartWatcher interface {
	CartChanged(ctx context.Context, tx *sql.Tx, userID string, version time.Time) error
}

// WatchCarts makes w learn of every line added, changed or removed. Call
// it before the store is used.
func (s *Store) WatchCarts(w CartWatcher) { s.carts = w }

// cartChanged tells the watcher, if any, of the change c is the result of.
func (s *Store) cartChanged(ctx context.Context, tx *sqlx.Tx, c Cart) error {
	if s.carts == nil || c.UpdatedAt == nil {
		return nil
	}
	if err := s.carts.CartChanged(ctx, tx.Tx, c.UserID, *c.UpdatedAt); err != nil {
		return fmt.Errorf("cart changed: %w", err)
	}
	return nil
}

// MaxCartLineQuantity is the most units one cart line holds.
const MaxCartLineQuantity = 99

// defaultCurrency is what an empty cart is priced in.
const defaultCurrency = "usd"

// CartLine is one product in a cart, priced at the product's current
// catalog price. A product archived since it was added stays in the cart
// (IsActive false) until the customer removes it; checkout refuses it.
// Stock is the product's stock when the cart was read: the cart reserves
// nothing, so a line may hold more than there is.
type CartLine struct {
	ProductID  string    `db:"product_id"`
	SKU        string    `db:"sku"`
	Name       string    `db:"name"`
	PriceCents int64     `db:"price_cents"`
	Currency   string    `db:"currency"`
	Quantity   int       `db:"quantity"`
	IsActive   bool      `db:"is_active"`
	Stock      int       `db:"stock"`
	AddedAt    time.Time `db:"added_at"`
	// ImageKey and ImageThumbnailKey are the blob keys of the product's
	// first image and its thumbnail; nil when there is none.
	ImageKey          *string `db:"image_key"`
	ImageThumbnailKey *string `db:"image_thumbnail_key"`
}

// Available reports whether checkout would take the line as it stands: the
// product is active and has at least Quantity in stock.
func (l CartLine) Available() bool { return l.IsActive && l.Stock >= l.Quantity }

// LineTotalCents is the line's price times its quantity.
func (l CartLine) LineTotalCents() int64 { return l.PriceCents * int64(l.Quantity) }

// Cart is a user's cart: its lines in the order they were first added.
type Cart struct {
	UserID string
	Lines  []CartLine
	// UpdatedAt is when the cart last changed; nil if it never has.
	UpdatedAt *time.Time
}

// SubtotalCents is the sum of the lines' totals.
func (c Cart) SubtotalCents() int64 {
	var sum int64
	for _, l := range c.Lines {
		sum += l.LineTotalCents()
	}
	return sum
}

// Totals is what checkout would charge for the cart as it stands, by the
// very function checkout uses (shopd.Pricing.CheckoutTotals) with the
// server's pricing p.
// An empty cart costs nothing: it cannot check out, so it has no shipping
// to show either.
func (c Cart) Totals(p shopd.Pricing) shopd.Totals {
	if len(c.Lines) == 0 {
		return shopd.Totals{}
	}
	return p.CheckoutTotals(c.SubtotalCents())
}

// Currency is the currency of the cart's lines, "usd" for an empty cart.
// Adding refuses a product in another currency, so the lines agree unless
// an admin has since changed a product's currency; then it is the first
// line's, and checkout (PlaceOrder) refuses the mix.
func (c Cart) Currency() string {
	if len(c.Lines) == 0 {
		return defaultCurrency
	}
	return c.Lines[0].Currency
}

const cartUpdatedAtSQL = `
SELECT updated_at
FROM carts
WHERE user_id = $1`

// cartLineColumnsSQL and cartLineProductsSQL price the cart lines i
// (product_id, quantity, added_at) at the products' current state.
const (
	cartLineColumnsSQL = `
SELECT i.product_id, p.sku, p.name, p.price_cents, p.currency, i.quantity, p.is_active, p.stock, i.added_at,
	img.blob_key AS image_key, img.thumbnail_key AS image_thumbnail_key`
	cartLineProductsSQL = `
JOIN products p ON p.id = i.product_id
LEFT JOIN LATERAL (
	SELECT blob_key, thumbnail_key
	FROM product_images
	WHERE product_id = p.id
	ORDER BY position
	LIMIT 1
) img ON true`
)

const cartLinesSQL = cartLineColumnsSQL + `
FROM cart_items i` + cartLineProductsSQL + `
WHERE i.user_id = $1
ORDER BY i.added_at, i.product_id`

// Cart returns the user's cart at current catalog prices. A user who never
// had a cart gets an empty one with a nil UpdatedAt.
func (s *Store) Cart(ctx context.Context, userID string) (Cart, error) {
	if !validID(userID) {
		return Cart{}, errNoCart
	}
	// One snapshot for the lines and the timestamp, so they agree.
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return Cart{}, fmt.Errorf("get cart: begin: %w", translate(err))
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to keep
	c, err := readCart(ctx, tx, userID)
	if err != nil {
		return Cart{}, fmt.Errorf("get cart: %w", err)
	}
	return c, nil
}

// readCart reads the cart with q: a transaction that holds the cart's lock,
// or a snapshot.
func readCart(ctx context.Context, q sqlx.QueryerContext, userID string) (Cart, error) {
	c := Cart{UserID: userID, Lines: []CartLine{}}
	var updatedAt time.Time
	switch err := sqlx.GetContext(ctx, q, &updatedAt, cartUpdatedAtSQL, userID); {
	case errors.Is(err, sql.ErrNoRows):
		// Never written: no lines either (cart_items references carts).
		return c, nil
	case err != nil:
		return Cart{}, fmt.Errorf("read cart: %w", translate(err))
	}
	c.UpdatedAt = &updatedAt
	if err := sqlx.SelectContext(ctx, q, &c.Lines, cartLinesSQL, userID); err != nil {
		return Cart{}, fmt.Errorf("read cart lines: %w", translate(err))
	}
	return c, nil
}

var errNoCart = shopd.Errorf(shopd.ENotFound, "Cart not found.")

// touchCartSQL creates the cart on its first write and stamps it,
// returning the stamp as stored. Every cart write starts with it (or
// lockCartSQL), so writes to one cart are serialized on the carts row and
// always lock carts before cart_items.
const touchCartSQL = `
INSERT INTO carts (user_id, updated_at)
VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE
SET updated_at = EXCLUDED.updated_at
RETURNING updated_at`

// addCartItemSQL adds to the product's line, or starts one, and returns
// the cart's lines as they are then (as cartLinesSQL would read them after
// it), in one statement: no row comes back when the product is unknown or
// archived, when its currency differs from another line's, or when the
// line would pass the cap ($5: MaxCartLineQuantity, which the table's
// CHECK repeats). The caller holds the cart's lock (touchCartSQL, an
// earlier statement), so this statement's snapshot has every line of the
// cart; the changed line, which the rest of the statement cannot see in
// the table, comes from the insert's RETURNING.
const addCartItemSQL = `
WITH added AS (
	INSERT INTO cart_items (user_id, product_id, quantity, added_at)
	SELECT $1, p.id, $3, $4
	FROM products p
	WHERE p.id = $2
		AND p.is_active
		AND NOT EXISTS (
			SELECT 1
			FROM cart_items i
			JOIN products o ON o.id = i.product_id
			WHERE i.user_id = $1
				AND i.product_id <> p.id
				AND o.currency <> p.currency
		)
	ON CONFLICT (user_id, product_id) DO UPDATE
	SET quantity = cart_items.quantity + EXCLUDED.quantity
	WHERE cart_items.quantity + EXCLUDED.quantity <= $5
	RETURNING product_id, quantity, added_at
), i AS (
	SELECT product_id, quantity, added_at
	FROM cart_items
	WHERE user_id = $1
		AND product_id <> $2
	UNION ALL
	SELECT product_id, quantity, added_at
	FROM added
)` + cartLineColumnsSQL + `
FROM i` + cartLineProductsSQL + `
WHERE EXISTS (SELECT 1 FROM added)
ORDER BY i.added_at, i.product_id`

// addRefusalSQL explains why addCartItemSQL changed nothing.
const addRefusalSQL = `
SELECT p.sku, p.currency, p.is_active, COALESCE(i.quantity, 0) AS in_cart,
	(
		SELECT o.currency
		FROM cart_items c
		JOIN products o ON o.id = c.product_id
		WHERE c.user_id = $1
			AND c.product_id <> p.id
			AND o.currency <> p.currency
		ORDER BY c.added_at, c.product_id
		LIMIT 1
	) AS cart_currency
FROM products p
LEFT JOIN cart_items i ON i.user_id = $1 AND i.product_id = p.id
WHERE p.id = $2`

type addRefusal struct {
	SKU          string  `db:"sku"`
	Currency     string  `db:"currency"`
	IsActive     bool    `db:"is_active"`
	InCart       int     `db:"in_cart"`
	CartCurrency *string `db:"cart_currency"`
}

// AddToCart adds qty units of a product to the user's cart, merging with the
// product's line, and returns the cart. It returns EInvalid for qty outside
// 1..MaxCartLineQuantity, ENotFound for an unknown or archived product, and
// EConflict when the line would hold more than MaxCartLineQuantity or the
// product's currency differs from the cart's; then nothing changes.
func (s *Store) AddToCart(ctx context.Context, userID, productID string, qty int) (Cart, error) {
	if err := checkQuantity(qty); err != nil {
		return Cart{}, err
	}
	if !validID(userID) {
		return Cart{}, errNoCart
	}
	if !validID(productID) {
		return Cart{}, productNotFound(productID)
	}
	out := Cart{UserID: userID, Lines: []CartLine{}}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		now := s.Now().UTC()
		var updatedAt time.Time
		if err := tx.GetContext(ctx, &updatedAt, touchCartSQL, userID, now); err != nil {
			return fmt.Errorf("add to cart: touch cart: %w", translate(err))
		}
		out.UpdatedAt = &updatedAt
		if err := tx.SelectContext(ctx, &out.Lines, addCartItemSQL, userID, productID, qty, now, MaxCartLineQuantity); err != nil {
			return fmt.Errorf("add to cart: %w", translate(err))
		}
		if len(out.Lines) == 0 {
			return addRefused(ctx, tx, userID, productID, qty)
		}
		return s.cartChanged(ctx, tx, out)
	})
	if err != nil {
		return Cart{}, err
	}
	return out, nil
}

// addRefused returns the error for an addition that changed nothing. The
// caller holds the cart's lock, so the cart cannot have moved since.
func addRefused(ctx context.Context, tx *sqlx.Tx, userID, productID string, qty int) error {
	var r addRefusal
	err := tx.GetContext(ctx, &r, addRefusalSQL, userID, productID)
	if errors.Is(err, sql.ErrNoRows) {
		return productNotFound(productID)
	}
	if err != nil {
		return fmt.Errorf("add to cart: explain refusal: %w", translate(err))
	}
	switch {
	case !r.IsActive:
		return productNotFound(productID)
	case r.CartCurrency != nil:
		return shopd.Errorf(shopd.EConflict,
			"Product %s is priced in %s but the cart holds products priced in %s; one cart holds one currency.",
			r.SKU, r.Currency, *r.CartCurrency)
	default:
		return shopd.Errorf(shopd.EConflict,
			"The cart holds %d of product %s; adding %d would pass the limit of %d per line.",
			r.InCart, r.SKU, qty, MaxCartLineQuantity)
	}
}

// lockCartSQL locks an existing cart and stamps it; the stamp is rolled
// back with the rest when the change turns out to be no change.
const lockCartSQL = `
UPDATE carts
SET updated_at = $2
WHERE user_id = $1`

const setCartItemSQL = `
UPDATE cart_items
SET quantity = $3
WHERE user_id = $1
	AND product_id = $2`

// SetCartQuantity sets the quantity of the product's line and returns the
// cart. It returns EInvalid for qty outside 1..MaxCartLineQuantity and
// ENotFound when the product is not in the cart. A line whose product was
// archived can still be changed; checkout refuses it.
func (s *Store) SetCartQuantity(ctx context.Context, userID, productID string, qty int) (Cart, error) {
	if err := checkQuantity(qty); err != nil {
		return Cart{}, err
	}
	return s.changeLine(ctx, "set cart quantity", userID, productID, setCartItemSQL, qty)
}

const removeCartItemSQL = `
DELETE FROM cart_items
WHERE user_id = $1
	AND product_id = $2`

// RemoveFromCart removes the product's line and returns the cart. It
// returns ENotFound when the product is not in the cart.
func (s *Store) RemoveFromCart(ctx context.Context, userID, productID string) (Cart, error) {
	return s.changeLine(ctx, "remove from cart", userID, productID, removeCartItemSQL)
}

// changeLine runs query (with user id, product id and args) against one
// existing line, under the cart's lock.
func (s *Store) changeLine(ctx context.Context, op, userID, productID, query string, args ...any) (Cart, error) {
	notInCart := shopd.Errorf(shopd.ENotFound, "Product %s is not in the cart.", productID)
	if !validID(userID) || !validID(productID) {
		return Cart{}, notInCart
	}
	var out Cart
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, lockCartSQL, userID, s.Now().UTC())
		if err != nil {
			return fmt.Errorf("%s: lock cart: %w", op, translate(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("%s: lock cart: %w", op, err)
		} else if n == 0 {
			return notInCart
		}
		res, err = tx.ExecContext(ctx, query, append([]any{userID, productID}, args...)...)
		if err != nil {
			return fmt.Errorf("%s: %w", op, translate(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		} else if n == 0 {
			return notInCart
		}
		if out, err = readCart(ctx, tx, userID); err != nil {
			return err
		}
		return s.cartChanged(ctx, tx, out)
	})
	if err != nil {
		return Cart{}, err
	}
	return out, nil
}

const lockCartForUpdateSQL = `
SELECT updated_at
FROM carts
WHERE user_id = $1
FOR UPDATE`

const clearCartItemsSQL = `
DELETE FROM cart_items
WHERE user_id = $1`

// ClearCart empties the user's cart and returns it. Emptying an empty cart
// changes nothing, not even UpdatedAt.
func (s *Store) ClearCart(ctx context.Context, userID string) (Cart, error) {
	if !validID(userID) {
		return Cart{}, errNoCart
	}
	var out Cart
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := clearCartTx(ctx, tx, userID, s.Now().UTC()); err != nil {
			return fmt.Errorf("clear cart: %w", err)
		}
		var err error
		out, err = readCart(ctx, tx, userID)
		return err
	})
	if err != nil {
		return Cart{}, err
	}
	return out, nil
}

// clearCartTx empties the cart inside tx (checkout empties it in the
// transaction that places the order), stamping it with now if it held
// anything.
func clearCartTx(ctx context.Context, tx *sqlx.Tx, userID string, now time.Time) error {
	var updatedAt time.Time
	switch err := tx.GetContext(ctx, &updatedAt, lockCartForUpdateSQL, userID); {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("lock cart: %w", translate(err))
	}
	res, err := tx.ExecContext(ctx, clearCartItemsSQL, userID)
	if err != nil {
		return fmt.Errorf("delete lines: %w", translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete lines: %w", err)
	}
	if n == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, lockCartSQL, userID, now); err != nil {
		return fmt.Errorf("stamp cart: %w", translate(err))
	}
	return nil
}

func checkQuantity(qty int) error {
	if qty < 1 || qty > MaxCartLineQuantity {
		return shopd.FieldError("quantity", "Must be between 1 and %d.", MaxCartLineQuantity)
	}
	return nil
}
