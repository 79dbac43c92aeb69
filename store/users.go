package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd"
)

// User is an account: a customer or an admin.
type User struct {
	ID               string  `db:"id"`
	Email            string  `db:"email"`
	PasswordHash     string  `db:"password_hash"`
	Role             string  `db:"role"`
	FirstName        string  `db:"first_name"`
	LastName         string  `db:"last_name"`
	Phone            *string `db:"phone"`
	StripeCustomerID *string `db:"stripe_customer_id"`
	MarketingOptIn   bool    `db:"marketing_opt_in"`
	// TotalOrders and TotalSpentCents are kept by the money path (see
	// Tx.RefreshCustomerStats), never written by the customer.
	TotalOrders     int       `db:"total_orders"`
	TotalSpentCents int64     `db:"total_spent_cents"`
	CreatedAt       time.Time `db:"created_at"`
	UpdatedAt       time.Time `db:"updated_at"`
}

// NewUser is what registration stores.
type NewUser struct {
	Email        string
	PasswordHash string
	Role         string
	FirstName    string
	LastName     string
	Phone        *string
}

const userColumns = `id, email, password_hash, role, first_name, last_name, phone, stripe_customer_id,
	marketing_opt_in, total_orders, total_spent_cents, created_at, updated_at`

// userColumnsOf is userColumns of the users table named alias.
func userColumnsOf(alias string) string {
	cols := strings.Split(userColumns, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

const insertUserSQL = `
INSERT INTO users (email, password_hash, role, first_name, last_name, phone)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING ` + userColumns

// NormalizeEmail is how emails are compared and stored.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// CreateUser stores a new user. A taken email is EDuplicate.
func (s *Store) CreateUser(ctx context.Context, u NewUser) (User, error) {
	var out User
	err := s.db.GetContext(ctx, &out, insertUserSQL,
		NormalizeEmail(u.Email), u.PasswordHash, u.Role, u.FirstName, u.LastName, u.Phone)
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", translate(err))
	}
	return out, nil
}

const ensureUserSQL = `
INSERT INTO users (email, password_hash, role, first_name, last_name)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (email) DO NOTHING`

// EnsureUser creates the user unless the email exists, and reports whether it
// did. Safe to run at every start-up and from many instances at once.
func (s *Store) EnsureUser(ctx context.Context, u NewUser) (bool, error) {
	res, err := s.db.ExecContext(ctx, ensureUserSQL, NormalizeEmail(u.Email), u.PasswordHash, u.Role, u.FirstName, u.LastName)
	if err != nil {
		return false, fmt.Errorf("ensure user: %w", translate(err))
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

const userByEmailSQL = `SELECT ` + userColumns + ` FROM users WHERE email = $1`

// UserByEmail returns the user with the email, or ENotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	var u User
	if err := s.db.GetContext(ctx, &u, userByEmailSQL, NormalizeEmail(email)); err != nil {
		return User{}, fmt.Errorf("user by email: %w", translate(err))
	}
	return u, nil
}

const userByIDSQL = `SELECT ` + userColumns + ` FROM users WHERE id = $1`

// UserByID returns the user, or ENotFound (also for a malformed id).
func (s *Store) UserByID(ctx context.Context, id string) (User, error) {
	if !validID(id) {
		return User{}, shopd.Errorf(shopd.ENotFound, "User not found.")
	}
	var u User
	if err := s.db.GetContext(ctx, &u, userByIDSQL, id); err != nil {
		return User{}, fmt.Errorf("user by id: %w", translate(err))
	}
	return u, nil
}

const userRoleSQL = `SELECT role FROM users WHERE id = $1`

// UserRole returns the user's current role, or ENotFound when there is no
// such user (also for a malformed id, without asking the database). It is
// what authentication reads to refuse tokens of deleted or re-roled users.
func (s *Store) UserRole(ctx context.Context, id string) (string, error) {
	if !validID(id) {
		return "", shopd.Errorf(shopd.ENotFound, "User not found.")
	}
	var role string
	if err := s.db.GetContext(ctx, &role, userRoleSQL, id); err != nil {
		return "", fmt.Errorf("user role: %w", translate(err))
	}
	return role, nil
}

// validID reports whether id can be a row id; anything else cannot exist.
func validID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

const setStripeCustomerSQL = `
UPDATE users
SET stripe_customer_id = $2, updated_at = now()
WHERE id = $1
	AND stripe_customer_id IS NULL`

// SetStripeCustomer records the user's Stripe customer id once.
func (s *Store) SetStripeCustomer(ctx context.Context, userID, customerID string) error {
	if _, err := s.db.ExecContext(ctx, setStripeCustomerSQL, userID, customerID); err != nil {
		return fmt.Errorf("set stripe customer: %w", translate(err))
	}
	return nil
}

// ProfileUpdate holds the profile fields a customer may change; nil
// pointers and unset Changes are left alone. A Phone change without a
// value clears it.
type ProfileUpdate struct {
	FirstName      *string
	LastName       *string
	Phone          Change[string]
	MarketingOptIn *bool
}

const updateProfileSQL = `
UPDATE users
SET first_name = coalesce($2, first_name),
	last_name = coalesce($3, last_name),
	phone = CASE WHEN $4 THEN $5 ELSE phone END,
	marketing_opt_in = coalesce($6, marketing_opt_in),
	updated_at = now()
WHERE id = $1
RETURNING ` + userColumns

// UpdateProfile applies the update and returns the user as it now is, or
// ENotFound.
func (s *Store) UpdateProfile(ctx context.Context, id string, u ProfileUpdate) (User, error) {
	if !validID(id) {
		return User{}, shopd.Errorf(shopd.ENotFound, "User not found.")
	}
	var out User
	err := s.db.GetContext(ctx, &out, updateProfileSQL, id, u.FirstName, u.LastName, u.Phone.Set, u.Phone.Value, u.MarketingOptIn)
	if err != nil {
		return User{}, fmt.Errorf("update profile: %w", translate(err))
	}
	return out, nil
}
