package store_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/store"
)

// cartFixture is a store on a fresh database with one customer.
type cartFixture struct {
	store  *store.Store
	userID string
}

func setupCart(t *testing.T) cartFixture {
	t.Helper()
	s := store.New(pgtest.NewDB(t))
	return cartFixture{store: s, userID: shoptest.User(context.Background(), t, s, nil).ID}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := shopd.ErrorCode(err); got != code {
		t.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
}

// quantities maps product id to quantity.
func quantities(c store.Cart) map[string]int {
	m := map[string]int{}
	for _, l := range c.Lines {
		m[l.ProductID] = l.Quantity
	}
	return m
}

func mustCart(t *testing.T, s *store.Store, userID string) store.Cart {
	t.Helper()
	c, err := s.Cart(context.Background(), userID)
	if err != nil {
		t.Fatalf("cart: %v", err)
	}
	return c
}

func TestCartOfNewUserIsEmpty(t *testing.T) {
	t.Parallel()
	f := setupCart(t)
	c := mustCart(t, f.store, f.userID)
	if len(c.Lines) != 0 || c.UpdatedAt != nil || c.SubtotalCents() != 0 || c.Currency() != "usd" {
		t.Fatalf("cart = %+v, want empty usd with nil UpdatedAt", c)
	}
	if c.Lines == nil {
		t.Error("Lines is nil, want empty slice")
	}
}

func TestCartAddMergesLinesAndPricesLive(t *testing.T) {
	t.Parallel()
	f := setupCart(t)
	ctx := context.Background()
	shirt := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 2500})
	mug := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 1200})

	if _, err := f.store.AddToCart(ctx, f.userID, shirt.ID, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.AddToCart(ctx, f.userID, mug.ID, 1); err != nil {
		t.Fatal(err)
	}
	c, err := f.store.AddToCart(ctx, f.userID, shirt.ID, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Lines) != 2 || c.Lines[0].ProductID != shirt.ID || c.Lines[1].ProductID != mug.ID {
		t.Fatalf("lines = %+v, want shirt then mug", c.Lines)
	}
	if l := c.Lines[0]; l.Quantity != 5 || l.PriceCents != 2500 || l.LineTotalCents() != 12500 || l.SKU != shirt.SKU || !l.IsActive {
		t.Errorf("shirt line = %+v", l)
	}
	if c.SubtotalCents() != 12500+1200 || c.Currency() != "usd" || c.UpdatedAt == nil {
		t.Errorf("subtotal %d currency %q updatedAt %v", c.SubtotalCents(), c.Currency(), c.UpdatedAt)
	}

	newPrice := int64(3000)
	if _, err := f.store.UpdateProduct(ctx, shirt.ID, store.ProductPatch{PriceCents: &newPrice}); err != nil {
		t.Fatal(err)
	}
	c = mustCart(t, f.store, f.userID)
	if c.Lines[0].PriceCents != 3000 || c.SubtotalCents() != 5*3000+1200 {
		t.Errorf("after price change: line %+v subtotal %d, want the live price", c.Lines[0], c.SubtotalCents())
	}
}

func TestCartLinesKeepTheOrderTheyWereAdded(t *testing.T) {
	t.Parallel()
	f := setupCart(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 4, 11, 0, 0, 0, time.UTC)
	a := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 100})
	b := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 100})
	c := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 100})
	// b is added "before" a by the clock although it is written after; c
	// ties with a and falls back to product id order.
	for _, step := range []struct {
		p  store.Product
		at time.Time
	}{{a, t0.Add(time.Minute)}, {b, t0}, {c, t0.Add(time.Minute)}, {b, t0.Add(time.Hour)}} {
		f.store.Now = func() time.Time { return step.at }
		if _, err := f.store.AddToCart(ctx, f.userID, step.p.ID, 1); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{b.ID, a.ID, c.ID}
	if c.ID < a.ID {
		want = []string{b.ID, c.ID, a.ID}
	}
	cart := mustCart(t, f.store, f.userID)
	for i, l := range cart.Lines {
		if l.ProductID != want[i] {
			t.Fatalf("line %d = %s, want order %v", i, l.ProductID, want)
		}
	}
	if !cart.UpdatedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("updatedAt = %v, want the last write %v", cart.UpdatedAt, t0.Add(time.Hour))
	}
}

func TestCartAddRefusesBadProductsAndQuantities(t *testing.T) {
	t.Parallel()
	f := setupCart(t)
	ctx := context.Background()
	archived := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 100, IsActive: new(false)})
	active := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 100})
	cases := []struct {
		name      string
		productID string
		qty       int
		code      string
	}{
		{"unknown product", uuid.NewString(), 1, shopd.ENotFound},
		{"malformed id", "not-a-uuid", 1, shopd.ENotFound},
		{"archived product", archived.ID, 1, shopd.ENotFound},
		{"zero quantity", active.ID, 0, shopd.EInvalid},
		{"quantity over 99", active.ID, 100, shopd.EInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.store.AddToCart(context.Background(), f.userID, tc.productID, tc.qty)
			wantCode(t, err, tc.code)
		})
	}
	if c := mustCart(t, f.store, f.userID); len(c.Lines) != 0 || c.UpdatedAt != nil {
		t.Errorf("refused additions changed the cart: %+v", c)
	}
}

func TestCartLineCapIs99(t *testing.T) {
	t.Parallel()
	f := setupCart(t)
	ctx := context.Background()
	p := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 100})
	before, err := f.store.AddToCart(ctx, f.userID, p.ID, 98)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.store.AddToCart(ctx, f.userID, p.ID, 2)
	wantCode(t, err, shopd.EConflict)
	c := mustCart(t, f.store, f.userID)
	if quantities(c)[p.ID] != 98 || !c.UpdatedAt.Equal(*before.UpdatedAt) {
		t.Fatalf("after refused add: %+v, want 98 and updatedAt unchanged", c)
	}
	c, err = f.store.AddToCart(ctx, f.userID, p.ID, 1)
	if err != nil || quantities(c)[p.ID] != 99 {
		t.Fatalf("add 1 to 98 = %+v, %v; want 99", c, err)
	}
}

func TestCartRefusesASecondCurrency(t *testing.T) {
	t.Parallel()
	f := setupCart(t)
	ctx := context.Background()
	usd := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 100})
	usd2 := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 200})
	eur := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 100, Currency: "eur"})

	if _, err := f.store.AddToCart(ctx, f.userID, usd.ID, 1); err != nil {
		t.Fatal(err)
	}
	_, err := f.store.AddToCart(ctx, f.userID, eur.ID, 1)
	wantCode(t, err, shopd.EConflict)
	if _, err := f.store.AddToCart(ctx, f.userID, usd2.ID, 1); err != nil {
		t.Fatalf("same currency: %v", err)
	}
	if q := quantities(mustCart(t, f.store, f.userID)); len(q) != 2 || q[eur.ID] != 0 {
		t.Fatalf("cart = %v, want the two usd lines", q)
	}

	if _, err := f.store.ClearCart(ctx, f.userID); err != nil {
		t.Fatal(err)
	}
	c, err := f.store.AddToCart(ctx, f.userID, eur.ID, 1)
	if err != nil || c.Currency() != "eur" {
		t.Fatalf("eur into an emptied cart = %+v, %v", c, err)
	}
}

func TestCartKeepsLinesOfArchivedProducts(t *testing.T) {
	t.Parallel()
	f := setupCart(t)
	ctx := context.Background()
	p := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 700})
	if _, err := f.store.AddToCart(ctx, f.userID, p.ID, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.ArchiveProduct(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	_, err := f.store.AddToCart(ctx, f.userID, p.ID, 1)
	wantCode(t, err, shopd.ENotFound)

	c := mustCart(t, f.store, f.userID)
	if len(c.Lines) != 1 || c.Lines[0].Quantity != 2 || c.Lines[0].IsActive || c.SubtotalCents() != 1400 {
		t.Fatalf("cart = %+v, want the archived line kept, inactive, quantity 2", c)
	}
	if c, err = f.store.RemoveFromCart(ctx, f.userID, p.ID); err != nil || len(c.Lines) != 0 {
		t.Fatalf("remove archived line = %+v, %v", c, err)
	}
}

func TestCartSetAndRemoveLines(t *testing.T) {
	t.Parallel()
	f := setupCart(t)
	ctx := context.Background()
	p := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 100})
	other := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 100})

	// No cart at all yet.
	_, err := f.store.SetCartQuantity(ctx, f.userID, p.ID, 1)
	wantCode(t, err, shopd.ENotFound)
	_, err = f.store.RemoveFromCart(ctx, f.userID, p.ID)
	wantCode(t, err, shopd.ENotFound)

	added, err := f.store.AddToCart(ctx, f.userID, p.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.store.SetCartQuantity(ctx, f.userID, p.ID, 7)
	if err != nil || quantities(c)[p.ID] != 7 {
		t.Fatalf("set 7 = %+v, %v", c, err)
	}

	for _, tc := range []struct {
		name string
		call func() error
		code string
	}{
		{"set line not in cart", func() error { _, err := f.store.SetCartQuantity(ctx, f.userID, other.ID, 1); return err }, shopd.ENotFound},
		{"set malformed id", func() error { _, err := f.store.SetCartQuantity(ctx, f.userID, "x", 1); return err }, shopd.ENotFound},
		{"set zero", func() error { _, err := f.store.SetCartQuantity(ctx, f.userID, p.ID, 0); return err }, shopd.EInvalid},
		{"set 100", func() error { _, err := f.store.SetCartQuantity(ctx, f.userID, p.ID, 100); return err }, shopd.EInvalid},
		{"remove line not in cart", func() error { _, err := f.store.RemoveFromCart(ctx, f.userID, other.ID); return err }, shopd.ENotFound},
	} {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), tc.code) })
	}
	if q := quantities(mustCart(t, f.store, f.userID)); q[p.ID] != 7 || len(q) != 1 {
		t.Fatalf("refused changes changed the cart: %v", q)
	}

	c, err = f.store.RemoveFromCart(ctx, f.userID, p.ID)
	if err != nil || len(c.Lines) != 0 {
		t.Fatalf("remove = %+v, %v", c, err)
	}
	if c.UpdatedAt == nil || c.UpdatedAt.Before(*added.UpdatedAt) {
		t.Errorf("updatedAt = %v, want at or after %v", c.UpdatedAt, added.UpdatedAt)
	}
	_, err = f.store.RemoveFromCart(ctx, f.userID, p.ID)
	wantCode(t, err, shopd.ENotFound)
}

func TestCartClearIsIdempotent(t *testing.T) {
	t.Parallel()
	f := setupCart(t)
	ctx := context.Background()

	c, err := f.store.ClearCart(ctx, f.userID)
	if err != nil || len(c.Lines) != 0 || c.UpdatedAt != nil {
		t.Fatalf("clear a cart never used = %+v, %v; want empty, never updated", c, err)
	}

	t0 := time.Date(2026, 5, 4, 11, 0, 0, 0, time.UTC)
	f.store.Now = func() time.Time { return t0 }
	for _, price := range []int64{100, 200} {
		p := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: price})
		if _, err := f.store.AddToCart(ctx, f.userID, p.ID, 1); err != nil {
			t.Fatal(err)
		}
	}
	f.store.Now = func() time.Time { return t0.Add(time.Minute) }
	c, err = f.store.ClearCart(ctx, f.userID)
	if err != nil || len(c.Lines) != 0 || c.SubtotalCents() != 0 || c.UpdatedAt == nil || !c.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("clear = %+v, %v; want empty, updated at %v", c, err, t0.Add(time.Minute))
	}
	f.store.Now = func() time.Time { return t0.Add(time.Hour) }
	c, err = f.store.ClearCart(ctx, f.userID)
	if err != nil || len(c.Lines) != 0 || !c.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("clear again = %+v, %v; want no change", c, err)
	}
}

func TestCartsAreSeparatePerUser(t *testing.T) {
	t.Parallel()
	f := setupCart(t)
	ctx := context.Background()
	other := shoptest.User(ctx, t, f.store, nil).ID
	p := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 100})
	if _, err := f.store.AddToCart(ctx, f.userID, p.ID, 3); err != nil {
		t.Fatal(err)
	}
	if c := mustCart(t, f.store, other); len(c.Lines) != 0 || c.UpdatedAt != nil {
		t.Fatalf("other user's cart = %+v, want untouched", c)
	}
	_, err := f.store.RemoveFromCart(ctx, other, p.ID)
	wantCode(t, err, shopd.ENotFound)
	if _, err := f.store.ClearCart(ctx, other); err != nil {
		t.Fatal(err)
	}
	if q := quantities(mustCart(t, f.store, f.userID)); q[p.ID] != 3 {
		t.Fatalf("owner's cart = %v after the other user cleared theirs", q)
	}
}

func TestCartConcurrentAddsNeverPassTheCap(t *testing.T) {
	t.Parallel()
	f := setupCart(t)
	// Enough connections for real contention, few enough for parallel tests.
	f.store.DB().SetMaxOpenConns(20)
	ctx := context.Background()
	p := shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 100})

	// 40 adders of 3 ask for 120: exactly 33 fit under the cap of 99.
	const adders, each = 40, 3
	errs := make([]error, adders)
	shoptest.Concurrently(t, adders, 60*time.Second, func(i int) {
		_, errs[i] = f.store.AddToCart(ctx, f.userID, p.ID, each)
	})
	var succeeded, conflict int
	var unexpected []error
	for _, err := range errs {
		switch shopd.ErrorCode(err) {
		case "":
			succeeded++
		case shopd.EConflict:
			conflict++
		default:
			unexpected = append(unexpected, err)
		}
	}

	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	if succeeded != 33 || conflict != adders-33 {
		t.Errorf("%d succeeded and %d conflicted, want 33 and %d", succeeded, conflict, adders-33)
	}
	if q := quantities(mustCart(t, f.store, f.userID))[p.ID]; q != 99 {
		t.Errorf("final quantity = %d, want 99", q)
	}
}

// TestCartConcurrentAddsEachSeeTheCartTheyMade: adds of distinct products
// to one cart are serialized on the cart's lock, and each answers the cart
// as its own add left it (its line and those of every add before it, read
// in the add's own statement): the answers hold 1, 2, ... N lines, each
// has its product, and the final cart has all N.
func TestCartConcurrentAddsEachSeeTheCartTheyMade(t *testing.T) {
	t.Parallel()
	f := setupCart(t)
	f.store.DB().SetMaxOpenConns(20)
	ctx := context.Background()
	const adders = 16
	products := make([]store.Product, adders)
	for i := range products {
		products[i] = shoptest.Product(ctx, t, f.store, &shoptest.ProductOpts{PriceCents: 100})
	}
	carts := make([]store.Cart, adders)
	errs := make([]error, adders)
	shoptest.Concurrently(t, adders, 60*time.Second, func(i int) {
		carts[i], errs[i] = f.store.AddToCart(ctx, f.userID, products[i].ID, 1)
	})
	seen := map[int]bool{}
	for i, c := range carts {
		if errs[i] != nil {
			t.Fatalf("add %d: %v", i, errs[i])
		}
		if quantities(c)[products[i].ID] != 1 {
			t.Errorf("add %d answered a cart without its line: %v", i, quantities(c))
		}
		seen[len(c.Lines)] = true
	}
	for n := 1; n <= adders; n++ {
		if !seen[n] {
			t.Errorf("no add answered a cart of %d lines; want one answer of each size 1..%d", n, adders)
		}
	}
	if got := len(mustCart(t, f.store, f.userID).Lines); got != adders {
		t.Errorf("final cart has %d lines, want %d", got, adders)
	}
}

// TestPreparedStatementsInTransactionsNeedNoSecondConnection: on a pool
// that prepares the hot statements (as Open's does), transactions that run
// them, twenty at once on two connections, all finish and add up: a
// statement is prepared on the transaction's own connection, never on
// another.
func TestPreparedStatementsInTransactionsNeedNoSecondConnection(t *testing.T) {
	t.Parallel()
	connector, err := pq.NewConnector(pgtest.NewURL(t) + "&binary_parameters=yes")
	if err != nil {
		t.Fatal(err)
	}
	db := sqlx.NewDb(sql.OpenDB(store.PreparingConnector(connector)), "postgres")
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(2)
	s := store.New(db)
	ctx := context.Background()
	userID := shoptest.User(ctx, t, s, nil).ID
	p := shoptest.Product(ctx, t, s, &shoptest.ProductOpts{PriceCents: 100, Stock: new(100)})
	const adders = 20
	errs := make([]error, adders)
	shoptest.Concurrently(t, adders, 30*time.Second, func(i int) {
		_, errs[i] = s.AddToCart(ctx, userID, p.ID, 1)
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
	if q := quantities(mustCart(t, s, userID))[p.ID]; q != adders {
		t.Errorf("quantity = %d, want %d", q, adders)
	}
	// Prepared, and working, on both connections, in and out of
	// transactions: a checkout after the adds.
	k, _, _, err := s.ClaimCheckout(ctx, userID, "key", "h", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	o, err := placeOrder(ctx, s, store.PlaceOrder{KeyID: k.ID, UserID: userID,
		ShippingAddress: []byte(`{}`), BillingAddress: []byte(`{}`), Pricing: shopd.DefaultPricing, PaymentDueAt: time.Now().Add(time.Hour)})
	if err != nil || len(o.Items) != 1 || o.Items[0].Quantity != adders || o.OrderNumber != 1 {
		t.Fatalf("order %+v, %v: want one line of %d, number 1", o, err, adders)
	}
}
