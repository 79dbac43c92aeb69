package live

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// bundle is a hub on a fresh database with what the tests use beside it.
type bundle struct {
	hub *Hub
	db  *sqlx.DB
	st  *store.Store
	url string
}

// setup starts a hub whose timer never fires during a test: the tests
// drive catchUp themselves or rely on notifications.
func setup(t *testing.T, cfg Config) bundle {
	t.Helper()
	url := pgtest.NewURL(t)
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg.DB, cfg.DatabaseURL = db, url
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Hour
	}
	h, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	return bundle{hub: h, db: db, st: store.New(db), url: url}
}

// product makes a product with stock 20 and threshold 10: lowering its
// stock to 10 or less records a low-stock crossing.
func (b bundle) product(t *testing.T) store.Product {
	t.Helper()
	stock, threshold := 20, 10
	return shoptest.Product(t.Context(), t, b.st, &shoptest.ProductOpts{Stock: &stock, LowStockThreshold: &threshold})
}

const crossSQL = `UPDATE products SET stock = 5 WHERE id = $1`

// receive takes n events from sub, failing after 10 s.
func receive(t *testing.T, sub *Subscription, n int) []Event {
	t.Helper()
	var out []Event
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case e, ok := <-sub.Events():
			if !ok {
				t.Fatalf("subscription ended after %d of %d events", len(out), n)
			}
			out = append(out, *e)
		case <-timeout:
			t.Fatalf("%d of %d events within 10s", len(out), n)
		}
	}
	return out
}

func skus(events []Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, *e.SKU)
	}
	return out
}

// TestLaterInsertedCommittedFirst is the case that ordering by row id
// gets wrong: transaction A takes its id first, B inserts a stream row
// (id n), A inserts one (id n+1) and commits first. A reader that had
// served n+1 and resumed "after n+1" would never see n. Here A's event is
// served first, B's only once B commits, and a client resuming after A's
// event gets exactly B's.
func TestLaterInsertedCommittedFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	ctx := t.Context()
	pa, pb := b.product(t), b.product(t)
	sub, err := b.hub.Subscribe("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	txA, err := b.db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer txA.Rollback()
	if _, err := txA.ExecContext(ctx, `SELECT pg_current_xact_id()`); err != nil { // A's id now
		t.Fatal(err)
	}
	txB, err := b.db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer txB.Rollback()
	if _, err := txB.ExecContext(ctx, crossSQL, pb.ID); err != nil { // row n
		t.Fatal(err)
	}
	if _, err := txA.ExecContext(ctx, crossSQL, pa.ID); err != nil { // row n+1
		t.Fatal(err)
	}
	var idB, idA uint64
	if err := txB.GetContext(ctx, &idB, `SELECT max(id) FROM stream_events`); err != nil {
		t.Fatal(err)
	}
	if err := txA.GetContext(ctx, &idA, `SELECT max(id) FROM stream_events`); err != nil {
		t.Fatal(err)
	}
	if idA <= idB {
		t.Fatalf("A's row %d was not inserted after B's %d: the case is not set up", idA, idB)
	}
	if err := txA.Commit(); err != nil {
		t.Fatal(err)
	}
	first := receive(t, sub, 1)
	if *first[0].SKU != pa.SKU || first[0].Cursor.ID != idA {
		t.Fatalf("first event %s (row %d), want A's %s (row %d)", *first[0].SKU, first[0].Cursor.ID, pa.SKU, idA)
	}
	// B has not committed: nothing more is served, and the hub knows to
	// look again (B's row exists for no reader yet; A's wait is over).
	if pending, err := b.hub.catchUp(ctx); err != nil || len(sub.Events()) != 0 {
		t.Fatalf("catchUp: %v, %d events buffered, want none while B runs (pending %t)", err, len(sub.Events()), pending)
	}
	if err := txB.Commit(); err != nil {
		t.Fatal(err)
	}
	second := receive(t, sub, 1)
	if *second[0].SKU != pb.SKU || second[0].Cursor.ID != idB {
		t.Fatalf("second event %s (row %d), want B's %s (row %d)", *second[0].SKU, second[0].Cursor.ID, pb.SKU, idB)
	}
	if !second[0].Cursor.After(first[0].Cursor) || second[0].Cursor.String() <= first[0].Cursor.String() {
		t.Errorf("ids %s then %s: not increasing", first[0].Cursor, second[0].Cursor)
	}

	// A client that saw A's event resumes with its id: it gets B's alone.
	var replayed []Event
	err = b.hub.Replay(ctx, "", first[0].Cursor, maxCursor, func(e Event) error { replayed = append(replayed, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got := skus(replayed); !slices.Equal(got, []string{pb.SKU}) {
		t.Errorf("resuming after A's event replays %q, want [%s]", got, pb.SKU)
	}
	replayed = nil
	err = b.hub.Replay(ctx, "", second[0].Cursor, maxCursor, func(e Event) error { replayed = append(replayed, e); return nil })
	if err != nil || len(replayed) != 0 {
		t.Errorf("resuming after the last event: %v, %d events, want none", err, len(replayed))
	}
}

// TestOtherDatabasesDoNotHoldStreamsBack: transaction ids are
// cluster-wide, but a transaction left open in another database of the
// cluster cannot write here and does not delay this database's events.
func TestOtherDatabasesDoNotHoldStreamsBack(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	ctx := t.Context()
	other, err := pgtest.NewDB(t).BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	if _, err := other.ExecContext(ctx, `SELECT pg_current_xact_id()`); err != nil { // a writer, open
		t.Fatal(err)
	}
	sub, err := b.hub.Subscribe("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	p := b.product(t)
	if _, err := b.db.ExecContext(ctx, crossSQL, p.ID); err != nil {
		t.Fatal(err)
	}
	if got := skus(receive(t, sub, 1)); got[0] != p.SKU {
		t.Errorf("got %q, want %s", got, p.SKU)
	}
}

// TestUncommittedIsNeverStreamed: a crossing whose transaction rolls back
// reaches no one; the next committed one does, and carries its data.
func TestUncommittedIsNeverStreamed(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	ctx := t.Context()
	gone, kept := b.product(t), b.product(t)
	sub, err := b.hub.Subscribe("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	tx, err := b.db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, crossSQL, gone.ID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.ExecContext(ctx, crossSQL, kept.ID); err != nil {
		t.Fatal(err)
	}
	e := receive(t, sub, 1)[0]
	if e.Type != InventoryLowStock || *e.SKU != kept.SKU || *e.ProductID != kept.ID || *e.Stock != 5 ||
		e.OrderID != nil || e.OrderNumber != nil || e.Status != nil {
		t.Errorf("event %+v: want the low-stock crossing of %s at 5, with no order fields", e, kept.SKU)
	}
}

// TestSlowSubscriberIsDropped: a subscriber that does not read is dropped
// when its buffer is full, and the fan-out goes on for the others.
func TestSlowSubscriberIsDropped(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Buffer: 2})
	ctx := t.Context()
	slow, err := b.hub.Subscribe("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, err := b.hub.Subscribe("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	var want []string
	for range 5 {
		p := b.product(t)
		want = append(want, p.SKU)
		if _, err := b.db.ExecContext(ctx, crossSQL, p.ID); err != nil {
			t.Fatal(err)
		}
		// fast reads as it goes; slow never does.
		if got := skus(receive(t, fast, 1)); got[0] != p.SKU {
			t.Fatalf("fast got %s, want %s", got[0], p.SKU)
		}
	}
	if !slow.Dropped() {
		t.Fatal("the slow subscriber was not dropped")
	}
	var buffered []string
	for e := range slow.Events() { // closed: ends
		buffered = append(buffered, *e.SKU)
	}
	if !slices.Equal(buffered, want[:2]) {
		t.Errorf("slow subscriber kept %q, want its full buffer %q", buffered, want[:2])
	}
	if fast.Dropped() {
		t.Error("the fast subscriber was dropped")
	}
}

// TestSubscriptionsBounded: MaxStreams open at once, then EUnavailable
// with a Retry-After; a closed one makes room; Shutdown ends them all.
func TestSubscriptionsBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MaxStreams: 2})
	s1, err1 := b.hub.Subscribe("", "")
	s2, err2 := b.hub.Subscribe("", "")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := b.hub.Subscribe("", ""); err == nil {
		t.Fatal("a third subscription was accepted with MaxStreams 2")
	}
	s1.Close()
	s3, err := b.hub.Subscribe("", "")
	if err != nil {
		t.Fatalf("after a close: %v", err)
	}
	b.hub.Shutdown()
	for _, s := range []*Subscription{s2, s3} {
		if _, ok := <-s.Events(); ok {
			t.Error("a subscription got an event instead of ending")
		}
	}
	if _, err := b.hub.Subscribe("", ""); err != ErrClosed {
		t.Errorf("subscribe after shutdown: %v, want ErrClosed", err)
	}
}

// TestSubscriptionsBoundedPerUser: a user has at most MaxStreamsPerUser
// open at once (ERateLimited with a Retry-After), other users and staff
// ("") still subscribe, and a closed one makes room.
func TestSubscriptionsBoundedPerUser(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MaxStreams: 10, MaxStreamsPerUser: 2})
	s1, err1 := b.hub.Subscribe("u1", "")
	_, err2 := b.hub.Subscribe("u1", "")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	var e *shopd.Error
	if _, err := b.hub.Subscribe("u1", ""); !errors.As(err, &e) || e.Code != shopd.ERateLimited || e.RetryAfter <= 0 {
		t.Fatalf("a third subscription of one user: %v, want ERateLimited with a Retry-After", err)
	}
	for _, user := range []string{"u2", "", "", ""} {
		if _, err := b.hub.Subscribe(user, ""); err != nil {
			t.Fatalf("user %q: %v", user, err)
		}
	}
	s1.Close()
	if _, err := b.hub.Subscribe("u1", ""); err != nil {
		t.Fatalf("after a close: %v", err)
	}
}

// TestListenerReconnectLosesNothing kills the listening connection; events
// committed while it is down arrive after it reconnects.
func TestListenerReconnectLosesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	ctx := t.Context()
	sub, err := b.hub.Subscribe("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var killed int
	err = b.db.GetContext(ctx, &killed, `SELECT count(pg_terminate_backend(pid))
		FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`, ListenerApplicationName)
	if err != nil || killed != 1 {
		t.Fatalf("terminate the listener: %v, %d killed, want 1", err, killed)
	}
	var want []string
	for range 3 {
		p := b.product(t)
		want = append(want, p.SKU)
		if _, err := b.db.ExecContext(ctx, crossSQL, p.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got := skus(receive(t, sub, 3)); !slices.Equal(got, want) {
		t.Errorf("after the reconnect: %q, want %q", got, want)
	}
}

func TestCursorText(t *testing.T) {
	t.Parallel()
	c := Cursor{Xid: 0x1234, ID: 77}
	got, err := ParseCursor(c.String())
	if err != nil || got != c {
		t.Errorf("round trip of %v: %v, %v", c, got, err)
	}
	for _, bad := range []string{"", "12", "zz" + c.String()[2:], c.String() + "0", "-" + c.String()[1:]} {
		if _, err := ParseCursor(bad); err == nil {
			t.Errorf("ParseCursor(%q) accepted", bad)
		}
	}
	if (Cursor{Xid: 2, ID: 1}).String() <= (Cursor{Xid: 1, ID: 9}).String() {
		t.Error("ids do not sort as cursors")
	}
}

// TestStartGivesUpWithoutListener: a listening connection that cannot be
// made fails the start (when its context ends) instead of hanging it.
func TestStartGivesUpWithoutListener(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	h, err := Start(ctx, Config{DB: db, DatabaseURL: "postgres://nobody@127.0.0.1:1/none?sslmode=disable"})
	if err == nil {
		h.Close()
		t.Fatal("started without a listening connection")
	}
}
