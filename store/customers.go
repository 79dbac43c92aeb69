package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/shopd/shopd"
)

// MaxSavedAddresses is how many addresses a customer may keep.
const MaxSavedAddresses = 20

// StatsCurrency is the currency of a customer's order statistics: the
// shop's own. Orders priced in another currency are not summed with it.
const StatsCurrency = "usd"

// Customer is a user with what their profile shows beyond the account:
// saved addresses (the default first, then newest first) and when they
// last ordered.
type Customer struct {
	User
	LastOrderAt *time.Time     `db:"last_order_at"`
	Addresses   []SavedAddress `db:"-"`
}

// SavedAddress is an address in a customer's address book. While a
// customer has any, exactly one is the default.
type SavedAddress struct {
	ID         string    `db:"id"`
	UserID     string    `db:"user_id"`
	FirstName  string    `db:"first_name"`
	LastName   string    `db:"last_name"`
	Line1      string    `db:"line1"`
	Line2      *string   `db:"line2"`
	City       string    `db:"city"`
	Region     *string   `db:"region"`
	PostalCode string    `db:"postal_code"`
	Country    string    `db:"country"`
	Phone      *string   `db:"phone"`
	IsDefault  bool      `db:"is_default"`
	CreatedAt  time.Time `db:"created_at"`
	UpdatedAt  time.Time `db:"updated_at"`
}

// AddressFields is a new saved address; nil optional fields stay empty.
type AddressFields struct {
	FirstName, LastName, Line1 string
	Line2                      *string
	City                       string
	Region                     *string
	PostalCode, Country        string
	Phone                      *string
}

// AddressUpdate holds the fields of a saved address to change; nil
// pointers and unset Changes are left alone, a Change without a value
// clears the field. IsDefault true makes the address the default.
type AddressUpdate struct {
	FirstName, LastName, Line1, City, PostalCode, Country *string
	Line2, Region, Phone                                  Change[string]
	IsDefault                                             *bool
}

const addressColumns = `id, user_id, first_name, last_name, line1, line2, city, region, postal_code, country, phone,
	is_default, created_at, updated_at`

var errAddressNotFound = shopd.Errorf(shopd.ENotFound, "Address not found.")

func errCustomerNotFound(id string) error {
	return shopd.Errorf(shopd.ENotFound, "Customer %s not found.", id)
}

// lockUserSQL takes the user's row lock for the rest of the transaction.
// FOR NO KEY UPDATE, like any UPDATE of the row: it serialises the
// customer's address book and statistics without blocking the foreign-key
// checks of checkouts inserting the customer's orders (FOR KEY SHARE).
const lockUserSQL = `
SELECT id
FROM users
WHERE id = $1
FOR NO KEY UPDATE`

// lockUser serialises the writers of one customer's address book and
// statistics. An unknown user is ENotFound.
func lockUser(ctx context.Context, tx *sqlx.Tx, userID string) error {
	if !validID(userID) {
		return shopd.Errorf(shopd.ENotFound, "User not found.")
	}
	var id string
	if err := tx.GetContext(ctx, &id, lockUserSQL, userID); err != nil {
		return fmt.Errorf("lock user %s: %w", userID, translate(err))
	}
	return nil
}

const customerColumns = userColumns + `,
	(SELECT max(o.created_at) FROM orders o WHERE o.customer_id = users.id) AS last_order_at`

const customerByIDSQL = `
SELECT ` + customerColumns + `
FROM users
WHERE id = $1`

// Customer returns the user's profile with their saved addresses, or
// ENotFound. With onlyCustomers an admin's account is ENotFound too.
func (s *Store) Customer(ctx context.Context, id string, onlyCustomers bool) (Customer, error) {
	if !validID(id) {
		return Customer{}, errCustomerNotFound(id)
	}
	var c Customer
	if err := s.db.GetContext(ctx, &c, customerByIDSQL, id); err != nil {
		if err = translate(err); shopd.ErrorCode(err) == shopd.ENotFound {
			return Customer{}, errCustomerNotFound(id)
		}
		return Customer{}, fmt.Errorf("get customer: %w", err)
	}
	if onlyCustomers && c.Role != "customer" {
		return Customer{}, errCustomerNotFound(id)
	}
	list := []Customer{c}
	if err := withAddresses(ctx, s.db, list); err != nil {
		return Customer{}, err
	}
	return list[0], nil
}

const listCustomersSQL = `
SELECT ` + customerColumns + `
FROM users
WHERE role = 'customer'
	AND ($1 = '' OR search_text LIKE lower($1))
	AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $4`

// ListCustomers returns one page of customers (not admins), newest first,
// with their addresses, and the cursor of the next page ("" at the end).
// query, when not blank, matches the email or either name as a
// case-insensitive substring.
func (s *Store) ListCustomers(ctx context.Context, query string, pg Page) ([]Customer, string, error) {
	t, id, err := afterTimeID(pg.Cursor)
	if err != nil {
		return nil, "", err
	}
	pattern := ""
	if q := strings.TrimSpace(query); q != "" {
		pattern = "%" + escapeLike(q) + "%"
	}
	limit := pg.limit()
	rows := make([]Customer, 0, limit+1) // sized: sqlx appends
	if err := s.db.SelectContext(ctx, &rows, listCustomersSQL, pattern, t, id, limit+1); err != nil {
		return nil, "", fmt.Errorf("list customers: %w", translate(err))
	}
	items, next := pageOf(rows, limit, func(c Customer) keyset { return keyset{T: c.CreatedAt, ID: c.ID} })
	if err := withAddresses(ctx, s.db, items); err != nil {
		return nil, "", err
	}
	return items, next, nil
}

const addressesOfSQL = `
SELECT ` + addressColumns + `
FROM customer_addresses
WHERE user_id = ANY($1)
ORDER BY user_id, is_default DESC, created_at DESC, id DESC`

// withAddresses loads the saved addresses of the customers; a customer
// without any gets an empty list.
func withAddresses(ctx context.Context, q sqlx.QueryerContext, cs []Customer) error {
	if len(cs) == 0 {
		return nil
	}
	ids := make([]string, len(cs))
	at := map[string]int{}
	for i, c := range cs {
		ids[i] = c.ID
		at[c.ID] = i
		cs[i].Addresses = []SavedAddress{}
	}
	var rows []SavedAddress
	if err := sqlx.SelectContext(ctx, q, &rows, addressesOfSQL, pq.StringArray(ids)); err != nil {
		return fmt.Errorf("saved addresses: %w", translate(err))
	}
	for _, a := range rows {
		c := &cs[at[a.UserID]]
		c.Addresses = append(c.Addresses, a)
	}
	return nil
}

const countAddressesSQL = `SELECT count(*) FROM customer_addresses WHERE user_id = $1`

// clearDefaultSQL runs before another address becomes the default: the
// partial unique index is checked row by row, so the old default must go
// first, in its own statement.
const clearDefaultSQL = `
UPDATE customer_addresses
SET is_default = false, updated_at = now()
WHERE user_id = $1
	AND is_default`

const insertAddressSQL = `
INSERT INTO customer_addresses (user_id, first_name, last_name, line1, line2, city, region, postal_code, country, phone, is_default)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING ` + addressColumns

// AddAddress saves a new address for the user, as the default when
// makeDefault is set or it is the first. A user with MaxSavedAddresses
// already is EConflict, counted under the user's row lock so that
// concurrent adds cannot pass the limit together; an unknown user is
// ENotFound.
func (s *Store) AddAddress(ctx context.Context, userID string, a AddressFields, makeDefault bool) (SavedAddress, error) {
	var out SavedAddress
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := lockUser(ctx, tx, userID); err != nil {
			return err
		}
		var n int
		if err := tx.GetContext(ctx, &n, countAddressesSQL, userID); err != nil {
			return fmt.Errorf("count addresses: %w", translate(err))
		}
		if n >= MaxSavedAddresses {
			return shopd.Errorf(shopd.EConflict, "At most %d addresses can be saved; delete one first.", MaxSavedAddresses)
		}
		makeDefault = makeDefault || n == 0
		if makeDefault {
			if _, err := tx.ExecContext(ctx, clearDefaultSQL, userID); err != nil {
				return fmt.Errorf("clear default address: %w", translate(err))
			}
		}
		err := tx.GetContext(ctx, &out, insertAddressSQL, userID, a.FirstName, a.LastName, a.Line1, a.Line2,
			a.City, a.Region, a.PostalCode, a.Country, a.Phone, makeDefault)
		if err != nil {
			return fmt.Errorf("insert address: %w", translate(err))
		}
		return nil
	})
	if err != nil {
		return SavedAddress{}, err
	}
	return out, nil
}

const addressForUpdateSQL = `
SELECT ` + addressColumns + `
FROM customer_addresses
WHERE id = $1
	AND user_id = $2
FOR UPDATE`

const updateAddressSQL = `
UPDATE customer_addresses
SET first_name = coalesce($3, first_name),
	last_name = coalesce($4, last_name),
	line1 = coalesce($5, line1),
	line2 = CASE WHEN $6 THEN $7 ELSE line2 END,
	city = coalesce($8, city),
	region = CASE WHEN $9 THEN $10 ELSE region END,
	postal_code = coalesce($11, postal_code),
	country = coalesce($12, country),
	phone = CASE WHEN $13 THEN $14 ELSE phone END,
	is_default = is_default OR $15,
	updated_at = now()
WHERE id = $1
	AND user_id = $2
RETURNING ` + addressColumns

// UpdateAddress changes one of the user's saved addresses and returns it.
// IsDefault true moves the default to it; false on the default is
// EConflict (a customer with addresses always has a default: make another
// one the default instead), false on any other address changes nothing.
// An address of another user is ENotFound, as if it did not exist.
func (s *Store) UpdateAddress(ctx context.Context, userID, addressID string, u AddressUpdate) (SavedAddress, error) {
	if !validID(addressID) {
		return SavedAddress{}, errAddressNotFound
	}
	var out SavedAddress
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := lockUser(ctx, tx, userID); err != nil {
			return err
		}
		var cur SavedAddress
		if err := tx.GetContext(ctx, &cur, addressForUpdateSQL, addressID, userID); err != nil {
			if err = translate(err); shopd.ErrorCode(err) == shopd.ENotFound {
				return errAddressNotFound
			}
			return fmt.Errorf("get address: %w", err)
		}
		makeDefault := u.IsDefault != nil && *u.IsDefault && !cur.IsDefault
		if u.IsDefault != nil && !*u.IsDefault && cur.IsDefault {
			return shopd.Errorf(shopd.EConflict, "This is the default address; make another address the default instead.")
		}
		if makeDefault {
			if _, err := tx.ExecContext(ctx, clearDefaultSQL, userID); err != nil {
				return fmt.Errorf("clear default address: %w", translate(err))
			}
		}
		err := tx.GetContext(ctx, &out, updateAddressSQL, addressID, userID,
			u.FirstName, u.LastName, u.Line1, u.Line2.Set, u.Line2.Value, u.City,
			u.Region.Set, u.Region.Value, u.PostalCode, u.Country, u.Phone.Set, u.Phone.Value, makeDefault)
		if err != nil {
			return fmt.Errorf("update address: %w", translate(err))
		}
		return nil
	})
	if err != nil {
		return SavedAddress{}, err
	}
	return out, nil
}

const deleteAddressSQL = `
DELETE FROM customer_addresses
WHERE id = $1
	AND user_id = $2
RETURNING is_default`

// promoteNewestSQL makes the newest remaining address the default.
const promoteNewestSQL = `
UPDATE customer_addresses
SET is_default = true, updated_at = now()
WHERE id = (
	SELECT id
	FROM customer_addresses
	WHERE user_id = $1
	ORDER BY created_at DESC, id DESC
	LIMIT 1
)`

// DeleteAddress removes one of the user's saved addresses. Deleting the
// default makes the newest remaining address the default. An address of
// another user is ENotFound.
func (s *Store) DeleteAddress(ctx context.Context, userID, addressID string) error {
	if !validID(addressID) {
		return errAddressNotFound
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := lockUser(ctx, tx, userID); err != nil {
			return err
		}
		var wasDefault bool
		if err := tx.GetContext(ctx, &wasDefault, deleteAddressSQL, addressID, userID); err != nil {
			if err = translate(err); shopd.ErrorCode(err) == shopd.ENotFound {
				return errAddressNotFound
			}
			return fmt.Errorf("delete address: %w", err)
		}
		if wasDefault {
			if _, err := tx.ExecContext(ctx, promoteNewestSQL, userID); err != nil {
				return fmt.Errorf("promote default address: %w", translate(err))
			}
		}
		return nil
	})
}

// countsTowardStats says what an order adds to its customer's statistics:
// once paid it is one order, and what was paid minus what was refunded
// (whatever happened to it after: a cancelled order that was paid and
// refunded is one order and nothing spent).
func countsTowardStats(o Order) (orders int, spentCents int64) {
	if o.Currency != StatsCurrency {
		return 0, 0
	}
	switch o.PaymentStatus {
	case shopd.PaymentPaid, shopd.PaymentPartiallyRefunded, shopd.PaymentRefunded:
		return 1, o.TotalCents - o.RefundedCents
	}
	return 0, 0
}

// refreshStatsSQL recomputes a customer's statistics from their other
// orders ($2 is left out) plus what the order being changed adds ($3, $4),
// which is not saved yet.
const refreshStatsSQL = `
UPDATE users
SET total_orders = s.orders + $3,
	total_spent_cents = s.spent + $4
FROM (
	SELECT count(*) AS orders, coalesce(sum(total_cents - refunded_cents), 0) AS spent
	FROM orders
	WHERE customer_id = $1
		AND id <> $2
		AND currency = '` + StatsCurrency + `'
		AND payment_status IN ('paid', 'partially_refunded', 'refunded')
) s
WHERE users.id = $1`

// RefreshCustomerStats recomputes the statistics of o's customer with o as
// it is now (changed, not yet saved, by the caller's transition), in the
// caller's transaction. Being a recount, not an increment, it counts each
// payment and refund once however often or in whatever order their events
// arrive. The customer's row lock is taken first, in a statement of its
// own: a recount after it sees the orders other transactions changed and
// committed meanwhile, so concurrent transitions of two orders of one
// customer cannot lose each other's change. Callers hold o's row lock, so
// locks go order, then customer, everywhere.
func (t *Tx) RefreshCustomerStats(ctx context.Context, o Order) error {
	if err := lockUser(ctx, t.tx, o.CustomerID); err != nil {
		return err
	}
	n, spent := countsTowardStats(o)
	if _, err := t.tx.ExecContext(ctx, refreshStatsSQL, o.CustomerID, o.ID, n, spent); err != nil {
		return fmt.Errorf("refresh stats of customer %s: %w", o.CustomerID, translate(err))
	}
	return nil
}
