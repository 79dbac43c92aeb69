package store

import (
	"context"
	"database/sql/driver"
	"strings"
)

// preparedElsewhere says which queries that the store does not run itself
// are prepared on each connection, the first time they run there, and
// then only bound and executed: the job queue's insert (River's
// JobInsertFastMany), which every checkout and every cart change runs, in
// their transactions. The store prepares its own hot statements itself
// (Store.Prepare).
func preparedElsewhere(query string) bool {
	return strings.HasPrefix(query, "-- name: JobInsertFastMany ")
}

// PreparingConnector wraps a lib/pq connector so that the queries
// preparedElsewhere picks are prepared once per connection. Open uses it.
func PreparingConnector(c driver.Connector) driver.Connector {
	return preparingConnector{c}
}

type preparingConnector struct {
	driver.Connector
}

func (c preparingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	pc, ok := conn.(pqConn)
	if !ok {
		return conn, nil
	}
	return &preparingConn{pqConn: pc, stmts: map[string]driver.Stmt{}}, nil
}

// pqConn is what lib/pq's connection implements, and the wrapper passes on.
type pqConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.QueryerContext
	driver.ExecerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
	driver.NamedValueChecker
}

// preparingConn is one connection with its prepared statements, which go
// with it when it closes. database/sql uses a connection from one
// goroutine at a time.
type preparingConn struct {
	pqConn
	stmts map[string]driver.Stmt
}

// stmt returns query prepared on the connection, or nil when it runs
// unprepared.
func (c *preparingConn) stmt(ctx context.Context, query string, args []driver.NamedValue) (driver.Stmt, error) {
	if len(args) == 0 || !preparedElsewhere(query) {
		return nil, nil
	}
	if s, ok := c.stmts[query]; ok {
		return s, nil
	}
	s, err := c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.stmts[query] = s
	return s, nil
}

func (c *preparingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.stmt(ctx, query, args)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.pqConn.QueryContext(ctx, query, args)
	}
	return s.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func (c *preparingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, err := c.stmt(ctx, query, args)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.pqConn.ExecContext(ctx, query, args)
	}
	return s.(driver.StmtExecContext).ExecContext(ctx, args)
}
