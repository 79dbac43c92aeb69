package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/store"
)

// TestWithTxComposes: what a flow writes through the store's Tx methods
// and what another writer inserts through Tx.SQL commit together, or not
// at all.
func TestWithTxComposes(t *testing.T) {
	t.Parallel()
	s := store.New(pgtest.NewDB(t))
	ctx := context.Background()
	p := shoptest.Product(ctx, t, s, &shoptest.ProductOpts{PriceCents: 1000, Stock: new(5)})
	o := placeTestOrder(t, s, p, 2, time.Now().Add(time.Hour))
	count := func(q string) int {
		t.Helper()
		var n int
		if err := s.DB().Get(&n, q, o.ID); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const events = `SELECT count(*) FROM order_events WHERE order_id = $1`
	const foreign = `SELECT count(*) FROM stripe_events WHERE order_id = $1`
	before := count(events)
	write := func(tx *store.Tx) error {
		if err := tx.RecordEvent(ctx, o, shopd.EventPaid, store.Actor{Kind: store.ActorSystem}, nil, "test"); err != nil {
			return err
		}
		// As a job queue's InsertTx would, on the same transaction.
		_, err := tx.SQL().ExecContext(ctx, `INSERT INTO stripe_events (id, type, order_id) VALUES ($1, 'test', $2)`, "evt_"+uuid.NewString(), o.ID)
		return err
	}

	errLater := errors.New("a later step failed")
	err := s.WithTx(ctx, func(tx *store.Tx) error {
		if err := write(tx); err != nil {
			return err
		}
		return errLater
	})
	if !errors.Is(err, errLater) {
		t.Fatalf("WithTx = %v, want the function's own error", err)
	}
	if n, f := count(events), count(foreign); n != before || f != 0 {
		t.Errorf("after a rollback: %d events (want %d), %d foreign rows (want 0)", n, before, f)
	}
	if err := s.WithTx(ctx, write); err != nil {
		t.Fatal(err)
	}
	if n, f := count(events), count(foreign); n != before+1 || f != 1 {
		t.Errorf("after a commit: %d events (want %d), %d foreign rows (want 1)", n, before+1, f)
	}
}

// TestUpdateOrder: the update function runs under the row lock, its
// changes are saved with the events it records, an unchanged order is not
// written, and an error rolls everything back.
func TestUpdateOrder(t *testing.T) {
	t.Parallel()
	s := store.New(pgtest.NewDB(t))
	ctx := context.Background()
	p := shoptest.Product(ctx, t, s, &shoptest.ProductOpts{PriceCents: 1000, Stock: new(5)})
	o := placeTestOrder(t, s, p, 2, time.Now().Add(time.Hour))
	by := store.Actor{Kind: store.ActorSystem}

	same, err := s.UpdateOrder(ctx, o.ID, func(tx *store.Tx, o *store.Order) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !same.UpdatedAt.Equal(o.UpdatedAt) || len(same.Items) != 1 {
		t.Errorf("a no-op update: updated_at %v -> %v, %d items", o.UpdatedAt, same.UpdatedAt, len(same.Items))
	}

	errRefused := shopd.Errorf(shopd.EInvalidTransition, "no")
	_, err = s.UpdateOrder(ctx, o.ID, func(tx *store.Tx, o *store.Order) error {
		if err := tx.ReleaseStock(ctx, *o, "test"); err != nil {
			return err
		}
		o.Status = shopd.StatusCancelled
		return errRefused
	})
	if err != errRefused {
		t.Fatalf("UpdateOrder = %v, want the function's error as it is", err)
	}
	if got := mustOrder(t, s, o.ID); got.Status != shopd.StatusPending || shoptest.Stock(ctx, t, s, p.ID) != 3 {
		t.Errorf("after a refused update: order %s, stock %d; want pending, 3", got.Status, shoptest.Stock(ctx, t, s, p.ID))
	}

	cancelled, err := s.UpdateOrder(ctx, o.ID, func(tx *store.Tx, o *store.Order) error {
		if err := tx.ReleaseStock(ctx, *o, "test"); err != nil {
			return err
		}
		o.Status = shopd.StatusCancelled
		return tx.RecordEvent(ctx, *o, shopd.EventCancelled, by, nil, "")
	})
	if err != nil {
		t.Fatal(err)
	}
	got := mustOrder(t, s, o.ID)
	if cancelled.Status != shopd.StatusCancelled || got.Status != shopd.StatusCancelled || !got.UpdatedAt.Equal(cancelled.UpdatedAt) {
		t.Errorf("returned %s at %v, stored %s at %v", cancelled.Status, cancelled.UpdatedAt, got.Status, got.UpdatedAt)
	}
	if st := shoptest.Stock(ctx, t, s, p.ID); st != 5 {
		t.Errorf("stock = %d, want 5", st)
	}
	var last store.OrderEvent
	if err := s.DB().Get(&last, `SELECT id, order_id, type, status, payment_status, fulfillment_status, actor, actor_id, amount_cents, note, created_at
		FROM order_events WHERE order_id = $1 ORDER BY id DESC LIMIT 1`, o.ID); err != nil {
		t.Fatal(err)
	}
	if last.Type != shopd.EventCancelled || last.Status != shopd.StatusCancelled {
		t.Errorf("last event %s with status %s", last.Type, last.Status)
	}

	if _, err := s.UpdateOrder(ctx, uuid.NewString(), func(*store.Tx, *store.Order) error { return nil }); shopd.ErrorCode(err) != shopd.ENotFound {
		t.Errorf("unknown order: %v, want not found", err)
	}
}

// TestKeyRecordsOutcomes: a finished key gives back the order it answered,
// frozen (the order may move on), or the refusal it recorded.
func TestKeyRecordsOutcomes(t *testing.T) {
	t.Parallel()
	s := store.New(pgtest.NewDB(t))
	ctx := context.Background()
	p := shoptest.Product(ctx, t, s, &shoptest.ProductOpts{PriceCents: 1000, Stock: new(5)})
	o := placeTestOrder(t, s, p, 2, time.Now().Add(time.Hour))
	var lease store.Lease
	if err := s.DB().QueryRow(`SELECT id, lease_owner FROM idempotency_keys WHERE order_id = $1`, o.ID).Scan(&lease.KeyID, &lease.Owner); err != nil {
		t.Fatal(err)
	}
	keyID := lease.KeyID
	if err := s.FinishKeyCreated(ctx, lease, o); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateOrder(ctx, o.ID, func(tx *store.Tx, o *store.Order) error { o.Status = shopd.StatusCancelled; return nil }); err != nil {
		t.Fatal(err)
	}
	k, err := s.IdempotencyKeyByID(ctx, keyID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.Order()
	if err != nil {
		t.Fatal(err)
	}
	if k.RecoveryPoint != store.PointFinished || k.Outcome == nil || *k.Outcome != store.OutcomeCreated {
		t.Errorf("key = %s, outcome %v", k.RecoveryPoint, k.Outcome)
	}
	want, _ := json.Marshal(o)
	if have, _ := json.Marshal(got); string(have) != string(want) {
		t.Errorf("snapshot = %s\nwant       %s", have, want)
	}

	u := shoptest.User(ctx, t, s, nil).ID
	r, _, _, err := s.ClaimCheckout(ctx, u, "k", "h", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WithTx(ctx, func(tx *store.Tx) error { return tx.RefuseKey(ctx, r.ID, shopd.EPaymentRefused, "Refused.") }); err != nil {
		t.Fatal(err)
	}
	r, _, _, err = s.ClaimCheckout(ctx, u, "k", "h", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if r.RecoveryPoint != store.PointFinished || *r.Outcome != store.OutcomeRefused || *r.RefusalCode != shopd.EPaymentRefused || *r.RefusalMessage != "Refused." {
		t.Errorf("refused key = %s %v %v %v", r.RecoveryPoint, *r.Outcome, *r.RefusalCode, *r.RefusalMessage)
	}
}

// TestCheckoutShortageNamesTheLine: a line short of stock, or whose
// product was archived since it was added, refuses the order with
// EInsufficientStock carrying the line: what was asked for and what there
// is (nothing, for an archived product).
func TestCheckoutShortageNamesTheLine(t *testing.T) {
	t.Parallel()
	s := store.New(pgtest.NewDB(t))
	ctx := context.Background()
	plenty := shoptest.Product(ctx, t, s, &shoptest.ProductOpts{PriceCents: 1000, Stock: new(50)})
	short := shoptest.Product(ctx, t, s, &shoptest.ProductOpts{PriceCents: 1000, Stock: new(3), Name: "Short one"})
	archived := shoptest.Product(ctx, t, s, &shoptest.ProductOpts{PriceCents: 1000, Stock: new(50), Name: "Gone one"})
	// checkout places u's cart as an order.
	checkout := func(u string) error {
		k, _, _, err := s.ClaimCheckout(ctx, u, "key-"+uuid.NewString(), "h", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		_, err = placeOrder(ctx, s, store.PlaceOrder{KeyID: k.ID, UserID: u, ShippingAddress: []byte(`{}`),
			BillingAddress: []byte(`{}`), Pricing: shopd.DefaultPricing, PaymentDueAt: time.Now().Add(time.Hour)})
		return err
	}
	place := func(p store.Product, qty int) error {
		u := shoptest.User(ctx, t, s, nil).ID
		for _, l := range []struct {
			p   store.Product
			qty int
		}{{plenty, 1}, {p, qty}} {
			if _, err := s.AddToCart(ctx, u, l.p.ID, l.qty); err != nil {
				t.Fatal(err)
			}
		}
		return checkout(u)
	}
	check := func(err error, p store.Product, want shopd.Shortage, name string) {
		t.Helper()
		var de *shopd.Error
		if !errors.As(err, &de) || de.Code != shopd.EInsufficientStock || de.Shortage == nil {
			t.Fatalf("error = %v, want insufficient stock with a shortage", err)
		}
		if *de.Shortage != want {
			t.Errorf("shortage = %+v, want %+v", *de.Shortage, want)
		}
		if !strings.Contains(de.Message, name) || !strings.Contains(de.Message, p.SKU) {
			t.Errorf("message %q does not name %s (%s)", de.Message, name, p.SKU)
		}
	}
	check(place(short, 5), short, shopd.Shortage{ProductID: short.ID, SKU: short.SKU, Requested: 5, Available: 3}, "Short one")
	u := shoptest.User(ctx, t, s, nil).ID
	if _, err := s.AddToCart(ctx, u, archived.ID, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ArchiveProduct(ctx, archived.ID); err != nil {
		t.Fatal(err)
	}
	check(checkout(u), archived, shopd.Shortage{ProductID: archived.ID, SKU: archived.SKU, Requested: 2, Available: 0}, "Gone one")
	if st := shoptest.Stock(ctx, t, s, plenty.ID); st != 50 {
		t.Errorf("stock of the line that was there = %d, want 50 (rolled back)", st)
	}
}

// TestUniqueViolationIsDuplicate: a taken unique value (SKU, email) is
// EDuplicate.
func TestUniqueViolationIsDuplicate(t *testing.T) {
	t.Parallel()
	s := store.New(pgtest.NewDB(t))
	ctx := context.Background()
	p := shoptest.Product(ctx, t, s, &shoptest.ProductOpts{PriceCents: 1000})
	_, err := s.CreateProduct(ctx, store.NewProduct{SKU: p.SKU, Name: "Again", PriceCents: 1, IsActive: true}, "")
	wantCode(t, err, shopd.EDuplicate)
	u, err := s.UserByID(ctx, shoptest.User(ctx, t, s, nil).ID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateUser(ctx, store.NewUser{Email: u.Email, PasswordHash: "x", Role: "customer", FirstName: "A", LastName: "B"})
	wantCode(t, err, shopd.EDuplicate)
}

func mustOrder(t *testing.T, s *store.Store, id string) store.Order {
	t.Helper()
	o, err := s.Order(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestRestoreCart: a cart that checkout emptied comes back exactly as it
// was (lines, quantities, the times they were added, its updatedAt) when
// nobody touched it since; lines the customer added since are kept, and
// the restore then counts as a change of its own.
func TestRestoreCart(t *testing.T) {
	t.Parallel()
	s := store.New(pgtest.NewDB(t))
	ctx := context.Background()
	at := time.Now().Add(-time.Hour)
	s.Now = func() time.Time { at = at.Add(time.Second); return at }
	a := shoptest.Product(ctx, t, s, &shoptest.ProductOpts{PriceCents: 1000})
	b := shoptest.Product(ctx, t, s, &shoptest.ProductOpts{PriceCents: 2000})
	c := shoptest.Product(ctx, t, s, &shoptest.ProductOpts{PriceCents: 3000})
	checkout := func(u string) int64 {
		t.Helper()
		k, _, _, err := s.ClaimCheckout(ctx, u, "key-"+uuid.NewString(), "h", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := placeOrder(ctx, s, store.PlaceOrder{KeyID: k.ID, UserID: u, ShippingAddress: []byte(`{}`),
			BillingAddress: []byte(`{}`), Pricing: shopd.DefaultPricing, PaymentDueAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if got := mustCart(t, s, u); len(got.Lines) != 0 {
			t.Fatalf("cart after checkout = %+v, want empty", got.Lines)
		}
		return k.ID
	}
	restore := func(keyID int64) {
		t.Helper()
		if err := s.WithTx(ctx, func(tx *store.Tx) error { return tx.RestoreCart(ctx, keyID) }); err != nil {
			t.Fatal(err)
		}
	}
	type line struct {
		product string
		qty     int
		added   time.Time
	}
	linesOf := func(c store.Cart) []line {
		var out []line
		for _, l := range c.Lines {
			out = append(out, line{l.ProductID, l.Quantity, l.AddedAt.UTC()})
		}
		return out
	}

	untouched := shoptest.User(ctx, t, s, nil).ID
	for _, l := range []struct {
		p   store.Product
		qty int
	}{{b, 5}, {a, 2}} {
		if _, err := s.AddToCart(ctx, untouched, l.p.ID, l.qty); err != nil {
			t.Fatal(err)
		}
	}
	before := mustCart(t, s, untouched)
	restore(checkout(untouched))
	after := mustCart(t, s, untouched)
	if !reflect.DeepEqual(linesOf(after), linesOf(before)) || !after.UpdatedAt.Equal(*before.UpdatedAt) {
		t.Errorf("restored cart = %+v at %v\nwant            %+v at %v", linesOf(after), after.UpdatedAt, linesOf(before), before.UpdatedAt)
	}

	moved := shoptest.User(ctx, t, s, nil).ID
	if _, err := s.AddToCart(ctx, moved, a.ID, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddToCart(ctx, moved, b.ID, 5); err != nil {
		t.Fatal(err)
	}
	old := linesOf(mustCart(t, s, moved))
	keyID := checkout(moved)
	if _, err := s.AddToCart(ctx, moved, c.ID, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddToCart(ctx, moved, a.ID, 1); err != nil {
		t.Fatal(err)
	}
	since := linesOf(mustCart(t, s, moved))
	restore(keyID)
	got := mustCart(t, s, moved)
	want := []line{old[1], since[0], since[1]} // b as it was, then c and a as added since, by time added
	if !reflect.DeepEqual(linesOf(got), want) {
		t.Errorf("cart changed since = %+v\nwant %+v", linesOf(got), want)
	}
	if !got.UpdatedAt.After(since[1].added) {
		t.Errorf("updatedAt %v, want the restore's own stamp (after %v)", got.UpdatedAt, since[1].added)
	}
}
