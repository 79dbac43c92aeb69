package store

// These tests look inside a Conn (the one connection it holds), so they
// stay in package store. The store's other tests are in package
// store_test, where they can build their rows with internal/shoptest
// (which imports this package).

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/shopd/shopd/internal/pgtest"
)

// lockedConn is a store on a fresh database and a connection pinned from
// it that holds a checkout lock, as a checkout's; both are released when
// the test ends. The lock's owner is any id: it is only a name.
func lockedConn(t *testing.T) (*Store, *Conn) {
	t.Helper()
	s := New(pgtest.NewDB(t))
	ctx := context.Background()
	p, err := s.Pin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Release)
	lock, ok, err := p.TryLockCheckout(ctx, uuid.NewString(), "k")
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	t.Cleanup(lock.Unlock)
	return s, p
}

// TestCheckoutLockSessionKeepsAlive: the session holding a checkout lock
// probes its peer every few seconds, so a vanished host's lock is freed in
// about 25 s (10 s idle + 3 probes 5 s apart), not the kernel's 2 hours.
func TestCheckoutLockSessionKeepsAlive(t *testing.T) {
	t.Parallel()
	_, pinned := lockedConn(t)
	ctx := context.Background()
	for setting, want := range map[string]string{"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"} {
		var got string
		if err := pinned.conn.GetContext(ctx, &got, "SELECT current_setting($1)", setting); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %s on the lock's session, want %s", setting, got, want)
		}
	}
}

// TestPinnedStoreUsesOneConnection: everything a pinned store runs, its
// transactions included, is on the connection holding the checkout lock.
func TestPinnedStoreUsesOneConnection(t *testing.T) {
	t.Parallel()
	s, p := lockedConn(t)
	ctx := context.Background()
	var holder int
	if err := s.DB().Get(&holder, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatal(err)
	}
	var direct int
	if err := p.db.GetContext(ctx, &direct, `SELECT pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	var inTx int
	if err := p.inTx(ctx, func(tx *sqlx.Tx) error {
		return tx.GetContext(ctx, &inTx, `SELECT pg_backend_pid()`)
	}); err != nil {
		t.Fatal(err)
	}
	if direct != holder || inTx != holder {
		t.Errorf("lock on backend %d, queries on %d, transactions on %d", holder, direct, inTx)
	}
}
