package store

import (
	"context"
	"database/sql/driver"
	"strings"
	"sync"
)

// preparedQueries are the queries prepared once per connection, the
// first time they run there, and from then on only bound and executed:
// lib/pq otherwise has every query parsed and planned again. They are the
// statements every checkout and add-to-cart runs (hotStatements) and the
// job queue's insert (River's JobInsertFastMany), which both run, in their
// transactions. Only fixed SQL is prepared, so a connection holds a
// handful of statements.
var preparedQueries = sync.OnceValue(func() map[string]bool {
	m := make(map[string]bool, len(hotStatements))
	for _, q := range hotStatements {
		m[q] = true
	}
	return m
})

func prepared(query string) bool {
	return preparedQueries()[query] || strings.HasPrefix(query, "-- name: JobInsertFastMany ")
}

// PreparingConnector wraps a lib/pq connector so that the connections it
// makes prepare the preparedQueries. Open uses it. A statement is
// prepared on the connection it runs on, in its transaction if it is in
// one: never on another connection, which transactions waiting for one
// could have taken.
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
	pc, ok := conn.(PQConn)
	if !ok {
		return conn, nil
	}
	return &preparingConn{PQConn: pc, stmts: map[string]driver.Stmt{}}, nil
}

// PQConn is what lib/pq's connection implements: what a wrapper of its
// connections (this one, or a test's) passes on.
type PQConn interface {
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
	PQConn
	stmts map[string]driver.Stmt
}

// stmt returns query prepared on the connection, or nil when it runs
// unprepared.
func (c *preparingConn) stmt(ctx context.Context, query string, args []driver.NamedValue) (driver.Stmt, error) {
	if len(args) == 0 || !prepared(query) {
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
		return c.PQConn.QueryContext(ctx, query, args)
	}
	return s.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func (c *preparingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, err := c.stmt(ctx, query, args)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.PQConn.ExecContext(ctx, query, args)
	}
	return s.(driver.StmtExecContext).ExecContext(ctx, args)
}
