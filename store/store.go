// Package store is the PostgreSQL persistence layer (sqlx on lib/pq): its
// queries, transactions and row types. Driver errors become shopd errors at
// this boundary; callers never see lib/pq.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/shopd/shopd"
	shopsql "github.com/shopd/shopd/sql"
)

// Store is the database. It is safe for concurrent use.
type Store struct {
	db *sqlx.DB
	// Now is the clock used for business timestamps and time windows.
	Now func() time.Time
}

// Open connects to url, checks the connection and applies migrations.
func Open(ctx context.Context, url string) (*Store, error) {
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.SetMaxOpenConns(40)
	db.SetMaxIdleConns(40)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := shopsql.Up(ctx, db.DB); err != nil {
		db.Close()
		return nil, err
	}
	return New(db), nil
}

// New wraps an open, migrated database.
func New(db *sqlx.DB) *Store {
	return &Store{db: db, Now: time.Now}
}

// DB is the underlying pool, for health checks and tests.
func (s *Store) DB() *sqlx.DB { return s.db }

// Close closes the pool.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// inTx runs fn in a transaction, committing when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", translate(err))
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", translate(err))
	}
	return nil
}

// translate turns driver errors a client can act on into shopd errors.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return shopd.Errorf(shopd.ENotFound, "Not found.")
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return &shopd.Error{Code: shopd.EConflict, Message: uniqueMessage(pe.Constraint)}
		case "23514": // check_violation
			if pe.Constraint == "products_stock_check" {
				return shopd.Errorf(shopd.EConflict, "Not enough stock.")
			}
		case "40001", "40P01": // serialization failure, deadlock: safe to retry
			return shopd.Errorf(shopd.EUnavailable, "The request conflicted with another; retry it.")
		}
	}
	return err
}

func uniqueMessage(constraint string) string {
	switch constraint {
	case "users_email_key":
		return "An account with this email already exists."
	case "products_sku_key":
		return "A product with this SKU already exists."
	}
	return "The resource already exists."
}
