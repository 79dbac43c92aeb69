package handlers_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/riverqueue/river"

	"github.com/shopd/shopd/cartrecovery"
	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/jobs"
	"github.com/shopd/shopd/orders"
	"github.com/shopd/shopd/store"
)

// The most database round trips (statements, BEGIN and COMMIT each count
// one) that one POST /v1/cart/items and one POST /v1/checkout may cost a
// returning customer whose Stripe customer exists, as the bench's clients
// are. Every round trip costs CPU on both sides of the connection, and the
// checkout's hot product rows stay locked across those of its order
// transaction: a change that adds one should be a deliberate one, made
// here.
const (
	addToCartRoundTrips = 5
	checkoutRoundTrips  = 10
	// stockLockedRoundTrips is how many of the checkout's round trips a
	// one-line cart's product row stays locked for: from the statement
	// that takes its stock to the commit, both included. Every checkout
	// of the product queues behind them.
	stockLockedRoundTrips = 3
)

// TestRoundTripsPerAddToCartAndCheckout counts what the database sees of
// an add-to-cart and a checkout, wired as the server wires them (the job
// client inserting the checkout's and the cart's jobs), so that a change
// that costs a round trip more shows here, statement by statement.
func TestRoundTripsPerAddToCartAndCheckout(t *testing.T) {
	t.Parallel()
	counter := &roundTrips{}
	db := countingDB(t, counter)
	s := newShopOn(t, db)
	wireJobs(t, db, s.api)

	c := s.newCustomer(t)
	p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: 1500, Stock: new(1000)})
	// The first checkout creates the Stripe customer; the bench's clients
	// are past it.
	s.do(t, http.MethodPost, "/v1/cart/items", c.token, map[string]any{"productId": p.ID, "quantity": 1}).want(t, http.StatusCreated)
	s.send(t, s.checkoutRequest(t, c.token, newKey(), checkoutBody())).want(t, http.StatusCreated)

	const rounds = 3
	var add, checkout map[string]int
	var locked int
	for range rounds {
		add = counter.during(func() {
			s.do(t, http.MethodPost, "/v1/cart/items", c.token, map[string]any{"productId": p.ID, "quantity": 1}).want(t, http.StatusCreated)
		})
		checkout = counter.during(func() {
			s.send(t, s.checkoutRequest(t, c.token, newKey(), checkoutBody())).want(t, http.StatusCreated)
		})
		locked = counter.lockedFor("UPDATE products")
	}
	t.Logf("POST /v1/checkout: the product row is locked for %d round trips:\n  %s", locked, strings.Join(counter.sequence, "\n  "))
	if locked > stockLockedRoundTrips {
		t.Errorf("the product row is locked for %d round trips, want at most %d", locked, stockLockedRoundTrips)
	}
	t.Logf("POST /v1/cart/items: %d round trips\n%s", total(add), describe(add))
	t.Logf("POST /v1/checkout: %d round trips\n%s", total(checkout), describe(checkout))
	if n := total(add); n > addToCartRoundTrips {
		t.Errorf("POST /v1/cart/items costs %d round trips, want at most %d:\n%s", n, addToCartRoundTrips, describe(add))
	}
	if n := total(checkout); n > checkoutRoundTrips {
		t.Errorf("POST /v1/checkout costs %d round trips, want at most %d:\n%s", n, checkoutRoundTrips, describe(checkout))
	}
	// Once every connection has prepared them, nothing is parsed and
	// planned again: every statement but BEGIN and COMMIT is an EXECUTE.
	for _, counts := range []map[string]int{add, checkout} {
		for kind := range counts {
			if kind != "BEGIN" && kind != "COMMIT" && !strings.HasPrefix(kind, "EXECUTE ") {
				t.Errorf("not prepared: %s", kind)
			}
		}
	}
	if st := s.dbStock(t, p.ID); st != 1000-1-rounds {
		t.Errorf("stock = %d, want %d", st, 1000-1-rounds)
	}
}

// wireJobs gives the server's order service and store a job client on db,
// as the server does (not started: the test counts what requests cost).
func wireJobs(t *testing.T, db *sqlx.DB, a *api) {
	t.Helper()
	workers := river.NewWorkers()
	carts := cartrecovery.New(db, nil, 0)
	if err := orders.AddWorkers(workers, a.Orders); err != nil {
		t.Fatal(err)
	}
	if err := carts.AddWorkers(workers); err != nil {
		t.Fatal(err)
	}
	c, err := jobs.New(db.DB, jobs.Config{Workers: workers, TestOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	a.Orders.Jobs = c
	carts.SetJobs(c)
	a.Store.WatchCarts(carts)
}

// roundTrips counts, while on, the statements sent by kind, and keeps
// their sequence.
type roundTrips struct {
	mu       sync.Mutex
	on       bool
	counts   map[string]int
	sequence []string
}

// during returns what fn cost, by statement kind.
func (r *roundTrips) during(fn func()) map[string]int {
	r.mu.Lock()
	r.on, r.counts, r.sequence = true, map[string]int{}, nil
	r.mu.Unlock()
	fn()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	return r.counts
}

var blanks = regexp.MustCompile(`\s+`)

func (r *roundTrips) add(query string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.on {
		return
	}
	kind := strings.TrimSpace(blanks.ReplaceAllString(query, " "))
	if len(kind) > 90 {
		kind = kind[:90]
	}
	r.counts[kind]++
	r.sequence = append(r.sequence, kind)
}

// lockedFor is how many round trips of the last sequence ran from the
// first that contains lock (it took the lock) to the COMMIT after it, both
// included; 0 when none does.
func (r *roundTrips) lockedFor(lock string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, kind := range r.sequence {
		if n == 0 && !strings.Contains(kind, lock) {
			continue
		}
		n++
		if kind == "COMMIT" {
			return n
		}
	}
	return n
}

func total(counts map[string]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

func describe(counts map[string]int) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(&b, "  %d x %s\n", counts[k], k)
	}
	return b.String()
}

// countingDB is a pool on a new migrated database whose every round trip
// (query, exec, prepare, begin, commit, rollback) is counted.
func countingDB(t *testing.T, r *roundTrips) *sqlx.DB {
	t.Helper()
	connector, err := pq.NewConnector(pgtest.NewURL(t) + "&binary_parameters=yes")
	if err != nil {
		t.Fatal(err)
	}
	// As store.Open opens its pool.
	db := sqlx.NewDb(sql.OpenDB(store.PreparingConnector(roundTripConnector{connector, r})), "postgres")
	t.Cleanup(func() { db.Close() })
	return db
}

type roundTripConnector struct {
	driver.Connector
	r *roundTrips
}

func (c roundTripConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &roundTripConn{conn: conn, r: c.r}, nil
}

type roundTripConn struct {
	conn driver.Conn
	r    *roundTrips
}

func (c *roundTripConn) pq() store.PQConn { return c.conn.(store.PQConn) }

func (c *roundTripConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *roundTripConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	c.r.add("PREPARE " + query)
	st, err := c.pq().PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return roundTripStmt{st, query, c.r}, nil
}

func (c *roundTripConn) Close() error { return c.conn.Close() }

func (c *roundTripConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *roundTripConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.r.add("BEGIN")
	tx, err := c.pq().BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return roundTripTx{tx, c.r}, nil
}

func (c *roundTripConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.r.add(query)
	return c.pq().QueryContext(ctx, query, args)
}

func (c *roundTripConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	c.r.add(query)
	return c.pq().ExecContext(ctx, query, args)
}

func (c *roundTripConn) Ping(ctx context.Context) error         { return c.pq().Ping(ctx) }
func (c *roundTripConn) ResetSession(ctx context.Context) error { return c.pq().ResetSession(ctx) }
func (c *roundTripConn) IsValid() bool                          { return c.pq().IsValid() }
func (c *roundTripConn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.pq().CheckNamedValue(nv)
}

type roundTripTx struct {
	tx driver.Tx
	r  *roundTrips
}

func (t roundTripTx) Commit() error {
	t.r.add("COMMIT")
	return t.tx.Commit()
}

func (t roundTripTx) Rollback() error {
	t.r.add("ROLLBACK")
	return t.tx.Rollback()
}

type roundTripStmt struct {
	stmt  driver.Stmt
	query string
	r     *roundTrips
}

func (s roundTripStmt) Close() error  { return s.stmt.Close() }
func (s roundTripStmt) NumInput() int { return s.stmt.NumInput() }

func (s roundTripStmt) Exec(args []driver.Value) (driver.Result, error) {
	s.r.add("EXECUTE " + s.query)
	return s.stmt.Exec(args) //nolint:staticcheck // what database/sql falls back to
}

func (s roundTripStmt) Query(args []driver.Value) (driver.Rows, error) {
	s.r.add("EXECUTE " + s.query)
	return s.stmt.Query(args) //nolint:staticcheck // what database/sql falls back to
}

func (s roundTripStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.r.add("EXECUTE " + s.query)
	return s.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s roundTripStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.r.add("EXECUTE " + s.query)
	return s.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}
