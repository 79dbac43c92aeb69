package shoptest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestClockAdvances(t *testing.T) {
	t.Parallel()
	var c shoptest.Clock
	if d := time.Since(c.Now()); d < 0 || d > time.Minute {
		t.Fatalf("the zero Clock is %v off the real time", d)
	}
	c.Advance(time.Hour)
	c.Advance(30 * time.Minute)
	if d := c.Now().Sub(time.Now()); d < 89*time.Minute || d > 91*time.Minute {
		t.Errorf("after advancing 90m the clock is %v ahead, want 90m", d)
	}
}

func TestCrash(t *testing.T) {
	t.Parallel()
	var c shoptest.Crash
	if err := c.AfterPhase("a"); err != nil {
		t.Fatalf("unarmed phase: %v", err)
	}
	c.Arm("a", 2)
	for i := range 2 {
		if err := c.AfterPhase("a"); !errors.Is(err, shoptest.ErrCrash) || !strings.Contains(err.Error(), "a") {
			t.Errorf("armed hit %d: %v, want ErrCrash naming the phase", i, err)
		}
	}
	if err := c.AfterPhase("a"); err != nil {
		t.Errorf("after the armed hits: %v, want nil", err)
	}
	if err := c.AfterPhase("b"); err != nil {
		t.Errorf("another phase: %v", err)
	}
	var ran int
	c.OnNext("b", func() { ran++ })
	_ = c.AfterPhase("a")
	_ = c.AfterPhase("b")
	_ = c.AfterPhase("b")
	if ran != 1 {
		t.Errorf("OnNext ran %d times, want once, at its phase", ran)
	}
	if a, b := c.Hits("a"), c.Hits("b"); a != 5 || b != 3 {
		t.Errorf("hits a=%d b=%d, want 5 and 3", a, b)
	}
}

// TestConcurrentlyReleasesTogether: every call is running before any
// returns, so the calls meet at a barrier of n.
func TestConcurrentlyReleasesTogether(t *testing.T) {
	t.Parallel()
	const n = 16
	var arrived atomic.Int32
	met := make([]bool, n)
	shoptest.Concurrently(t, n, 10*time.Second, func(i int) {
		arrived.Add(1)
		deadline := time.Now().Add(5 * time.Second)
		for arrived.Load() < n && time.Now().Before(deadline) {
			runtime.Gosched()
		}
		met[i] = arrived.Load() == n
	})
	for i, ok := range met {
		if !ok {
			t.Errorf("call %d never saw all %d running", i, n)
		}
	}
}

// TestSyncBuffer: writers racing each other and a reader lose nothing
// (and the race detector sees no race).
func TestSyncBuffer(t *testing.T) {
	t.Parallel()
	var b shoptest.SyncBuffer
	shoptest.Concurrently(t, 8, 10*time.Second, func(i int) {
		if i == 0 {
			_ = b.String()
			return
		}
		fmt.Fprintf(&b, "%d;", i)
	})
	got := strings.Split(strings.TrimSuffix(b.String(), ";"), ";")
	if len(got) != 7 {
		t.Errorf("buffer holds %q, want the 7 writes", b.String())
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the calling goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestConcurrentlyFailsOnDeadlock(t *testing.T) {
	t.Parallel()
	rec := &fatalRecorder{TB: t}
	stuck := make(chan struct{})
	defer close(stuck)
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		shoptest.Concurrently(rec, 3, 50*time.Millisecond, func(int) { <-stuck })
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Concurrently hung on calls that never return")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !strings.Contains(rec.msg, "did not finish within 50ms") {
		t.Errorf("failure = %q, want it to name the limit", rec.msg)
	}
}

func TestUserDefaultsAndOverrides(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.NewDB(t))
	a, b := shoptest.User(ctx, t, st, nil), shoptest.User(ctx, t, st, &shoptest.UserOpts{})
	if a.Email == b.Email || a.Role != "customer" || a.FirstName != "Ada" || a.LastName != "Lovelace" || a.PasswordHash != "x" {
		t.Errorf("defaults = %+v and %+v, want unique emails and Ada Lovelace, customer", a, b)
	}
	phone := "+44 20 7946 0000"
	u := shoptest.User(ctx, t, st, &shoptest.UserOpts{Email: "Grace@Example.com", PasswordHash: "h", Role: "admin",
		FirstName: "Grace", LastName: "Hopper", Phone: &phone})
	got, err := st.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Email != "grace@example.com" || got.PasswordHash != "h" || got.Role != "admin" || got.FirstName != "Grace" ||
		got.LastName != "Hopper" || got.Phone == nil || *got.Phone != phone {
		t.Errorf("stored %+v, want every override", got)
	}
}

func TestProductDefaultsAndOverrides(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.NewDB(t))
	a, b := shoptest.Product(ctx, t, st, nil), shoptest.Product(ctx, t, st, &shoptest.ProductOpts{})
	if a.SKU == b.SKU || a.Name != "Product" || a.PriceCents != 1000 || a.Stock != 10 || a.LowStockThreshold != 10 ||
		!a.IsActive || a.Currency != "usd" {
		t.Errorf("defaults = %+v and %+v, want unique SKUs, 10 in stock at 10.00 usd, active", a, b)
	}
	category := "mugs"
	p := shoptest.Product(ctx, t, st, &shoptest.ProductOpts{SKU: "MUG-1", Name: "Mug", Description: "A mug",
		PriceCents: 250, Currency: "eur", Category: &category, Tags: []string{"kitchen"}, Stock: new(0),
		LowStockThreshold: new(2), IsActive: new(false), IsFeatured: true, WeightGrams: new(300),
		Dimensions: &store.Dimensions{LengthMm: 1, WidthMm: 2, HeightMm: 3}})
	got, err := st.Product(ctx, p.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if got.SKU != "MUG-1" || got.Name != "Mug" || got.Description != "A mug" || got.PriceCents != 250 || got.Currency != "eur" ||
		got.Category == nil || *got.Category != "mugs" || len(got.Tags) != 1 || got.Stock != 0 || got.LowStockThreshold != 2 ||
		got.IsActive || !got.IsFeatured || got.WeightGrams == nil || *got.WeightGrams != 300 ||
		got.LengthMm == nil || *got.LengthMm != 1 || got.WidthMm == nil || *got.WidthMm != 2 || got.HeightMm == nil || *got.HeightMm != 3 {
		t.Errorf("stored %+v, want every override", got)
	}

	if sa, sp := shoptest.Stock(ctx, t, st, a.ID), shoptest.Stock(ctx, t, st, p.ID); sa != 10 || sp != 0 {
		t.Errorf("Stock = %d and %d, want 10 and 0", sa, sp)
	}

	// The opening stock's ledger row names who created the product.
	actor := shoptest.User(ctx, t, st, &shoptest.UserOpts{Role: "admin"})
	byActor := shoptest.Product(ctx, t, st, &shoptest.ProductOpts{ActorID: actor.ID})
	for _, c := range []struct {
		product store.Product
		want    string
	}{{a, ""}, {byActor, actor.ID}} {
		var createdBy string
		if err := st.DB().Get(&createdBy, `SELECT coalesce(created_by::text, '') FROM inventory_transactions WHERE product_id = $1`, c.product.ID); err != nil {
			t.Fatal(err)
		}
		if createdBy != c.want {
			t.Errorf("opening ledger row of %s created by %q, want %q", c.product.SKU, createdBy, c.want)
		}
	}
}
