// Package pgtest gives each test a brand-new PostgreSQL database with the
// schema applied. Databases are cloned from a template that is migrated once
// per schema version (github.com/peterldowns/pgtestdb), so a new one costs a
// CREATE DATABASE, not a migration run.
//
// The server is TEST_DATABASE_URL when set; otherwise a throwaway cluster
// (package pgcluster) started on first use and stopped when the tests end.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the "postgres" driver pgtestdb and sqlx open
	"github.com/peterldowns/pgtestdb"

	"github.com/shopd/shopd/internal/pgcluster"
	"github.com/shopd/shopd/jobs"
	schema "github.com/shopd/shopd/sql"
)

var (
	mainRunning atomic.Bool

	serverOnce sync.Once
	serverConf pgtestdb.Config
	serverErr  error
	cluster    *pgcluster.Cluster // nil unless we started one
)

// Main runs the package's tests against TEST_DATABASE_URL when set,
// otherwise against a throwaway cluster that it starts when a test first
// asks for a database and stops afterwards. Use it as:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	mainRunning.Store(true)
	code := m.Run()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// NewDB returns a connection pool on a new migrated database that is
// dropped when the test passes. When it fails, the database is kept for
// inspection (its URL is in the test log), though only on a
// TEST_DATABASE_URL server: a throwaway cluster goes when the tests end.
// The pool is closed at cleanup; the drop fails the test if connections are
// still open then, which catches leaked transactions and rows.
func NewDB(t testing.TB) *sqlx.DB {
	t.Helper()
	db, _ := NewDBAndURL(t)
	return db
}

// NewDBAndURL is NewDB that also gives the database's URL, for code that
// opens a connection of its own next to the pool (a listener); that
// connection must be closed before the test ends.
func NewDBAndURL(t testing.TB) (*sqlx.DB, string) {
	t.Helper()
	url := newDatabase(t, false)
	// The driver mode store.Open uses (one round trip per query).
	db, err := sqlx.Open("postgres", url+"&binary_parameters=yes")
	if err != nil {
		t.Fatalf("pgtest: open database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, url
}

// NewURL returns the URL of a new migrated database, for code that opens its
// own pool, such as the server's run. The database is dropped when the test
// passes; connections still open at that point are terminated first,
// because such code often shuts down its pool asynchronously.
func NewURL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, true)
}

func newDatabase(t testing.TB, forceTerminate bool) string {
	t.Helper()
	if !mainRunning.Load() {
		t.Fatalf("pgtest: add func TestMain(m *testing.M) { pgtest.Main(m) } to the package's tests")
	}
	serverOnce.Do(startServer)
	if serverErr != nil {
		t.Fatalf("pgtest: %v", serverErr)
	}
	conf := serverConf
	conf.ForceTerminateConnections = forceTerminate
	return pgtestdb.Custom(t, conf, migrator{}).URL()
}

// startServer sets serverConf from TEST_DATABASE_URL or a new cluster.
func startServer() {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		serverConf, serverErr = configFromURL(u)
		if serverErr != nil {
			serverErr = fmt.Errorf("TEST_DATABASE_URL: %w", serverErr)
		}
		return
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		serverErr = fmt.Errorf("create cluster directory: %w", err)
		return
	}
	// Generous: the first run on a bare machine may install PostgreSQL.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Temporary: true, Log: os.Stderr})
	if err != nil {
		os.RemoveAll(dir)
		serverErr = fmt.Errorf("start throwaway cluster (or set TEST_DATABASE_URL): %w", err)
		return
	}
	cluster = c
	serverConf, serverErr = configFromURL(c.URL)
}

// configFromURL turns postgres://user:pass@host:port/db?opts into what
// pgtestdb wants. Missing parts default to the local superuser setup
// (postgres@127.0.0.1:5432/postgres) and sslmode to disable: lib/pq would
// otherwise demand TLS, which local servers do not offer.
func configFromURL(raw string) (pgtestdb.Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return pgtestdb.Config{}, err
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return pgtestdb.Config{}, errors.New("want a postgres:// URL")
	}
	user := u.User.Username()
	if user == "" {
		user = "postgres"
	}
	password, _ := u.User.Password()
	// pgtestdb pastes these into a URL unescaped, so escape them here.
	userinfo := url.UserPassword(user, password).String()
	escUser, escPassword, _ := strings.Cut(userinfo, ":")
	host := u.Hostname()
	if host == "" {
		host = "127.0.0.1"
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	database := strings.TrimPrefix(u.Path, "/")
	if database == "" {
		database = "postgres"
	}
	q := u.Query()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
	}
	return pgtestdb.Config{
		DriverName: "postgres",
		Host:       host,
		Port:       port,
		User:       escUser,
		Password:   escPassword,
		Database:   database,
		Options:    q.Encode(),
	}, nil
}

// migrator builds pgtestdb's template with the application's own
// migrations and the job queue's (River), as the server applies them at
// start-up, so tests run against exactly the schema production gets.
type migrator struct{}

// Hash names the template; a changed migration, or another River schema,
// gets a new template.
func (migrator) Hash() (string, error) {
	ours, err := schema.Hash()
	if err != nil {
		return "", err
	}
	river, err := jobs.SchemaVersion()
	if err != nil {
		return "", err
	}
	return ours + "-" + river, nil
}

// Migrate applies the migrations to the new template database.
func (migrator) Migrate(ctx context.Context, db *sql.DB, _ pgtestdb.Config) error {
	if err := schema.Up(ctx, db); err != nil {
		return err
	}
	return jobs.Migrate(ctx, db)
}
