// Package store is the PostgreSQL persistence layer (sqlx on lib/pq): its
// queries, transactions and row types. Driver errors become shopd errors at
// this boundary; callers never see lib/pq.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/shopd/shopd"
	shopsql "github.com/shopd/shopd/sql"
)

// Store is the database. It is safe for concurrent use.
type Store struct {
	db   dbtx     // what queries run on: the pool
	pool *sqlx.DB // the pool
	// Now is the clock used for business timestamps and time windows.
	Now func() time.Time
	// carts learns of every cart change in its transaction (WatchCarts).
	carts CartWatcher
}

// dbtx is what queries run on.
type dbtx interface {
	sqlx.QueryerContext
	sqlx.ExecerContext
	GetContext(ctx context.Context, dest any, query string, args ...any) error
	SelectContext(ctx context.Context, dest any, query string, args ...any) error
	BeginTxx(ctx context.Context, opts *sql.TxOptions) (*sqlx.Tx, error)
}

// DefaultMaxConns is the pool's size unless the caller sets another
// (DB_MAX_CONNS). A transaction holds its connection across round trips to
// this process, so a pool needs more connections than the database has
// cores; past that, more connections only add contention inside
// PostgreSQL. Measured with the bench's add-to-cart + checkout at 32
// clients on 2 cores, two runs each: 8 connections 337 and 382 pairs/s,
// 16: 467 and 420, 24: 426 and 367, 40: 391 and 358, p99 lowest at 16.
const DefaultMaxConns = 16

// Open connects to url, checks the connection and applies migrations.
func Open(ctx context.Context, url string) (*Store, error) {
	connector, err := pq.NewConnector(withOneRoundTrip(url))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db := sqlx.NewDb(sql.OpenDB(PreparingConnector(connector)), "postgres")
	db.SetMaxOpenConns(DefaultMaxConns)
	db.SetMaxIdleConns(DefaultMaxConns)
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
	return &Store{db: db, pool: db, Now: time.Now}
}

// DB is the underlying pool, for tests and tools.
func (s *Store) DB() *sqlx.DB { return s.pool }

// Close closes the pool.
func (s *Store) Close() error { return s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.PingContext(ctx) }

// Tx is a transaction a caller can extend: a flow that must commit several
// things together (an order transition, its event, the jobs it causes)
// runs the store's Tx methods, its own decisions and, through SQL, other
// writers' inserts in it, and they commit together or not at all.
type Tx struct {
	tx  *sqlx.Tx
	now func() time.Time
}

// SQL is the underlying transaction, for code outside the store that must
// write in it (a job queue's InsertTx).
func (t *Tx) SQL() *sql.Tx { return t.tx.Tx }

// WithTx runs fn in a transaction, committing when fn returns nil and
// rolling back otherwise; fn's error is returned as it is.
func (s *Store) WithTx(ctx context.Context, fn func(tx *Tx) error) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error { return fn(&Tx{tx: tx, now: s.Now}) })
}

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
			return &shopd.Error{Code: shopd.EDuplicate, Message: uniqueMessage(pe.Constraint)}
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

// withOneRoundTrip asks lib/pq to send a parameterised query's parse, bind
// and execute in one round trip instead of two (binary_parameters). Then
// []byte arguments travel in binary, so the store passes JSON for jsonb
// columns as strings. A URL that sets the parameter itself is left alone.
func withOneRoundTrip(url string) string {
	if strings.Contains(url, "binary_parameters=") {
		return url
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	if !strings.Contains(url, "://") {
		return url + " binary_parameters=yes" // key=value connection string
	}
	return url + sep + "binary_parameters=yes"
}
