package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/store"
)

// TestOrderNumbersAreGapFree: numbers are handed out as a checkout's
// transaction commits, so a checkout that fails uses none, and an order
// can never be committed without one.
func TestOrderNumbersAreGapFree(t *testing.T) {
	t.Parallel()
	s := store.New(pgtest.NewDB(t))
	ctx := context.Background()
	p := shoptest.Product(ctx, t, s, &shoptest.ProductOpts{PriceCents: 1000, Stock: new(2)})
	due := time.Now().Add(time.Hour)

	first := placeTestOrder(t, s, p, 1, due)
	// A checkout refused for stock rolls back: no number.
	u := shoptest.User(ctx, t, s, nil).ID
	if _, err := s.AddToCart(ctx, u, p.ID, 2); err != nil {
		t.Fatal(err)
	}
	k, _, _, err := s.ClaimCheckout(ctx, u, "key-"+uuid.NewString(), "h", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, err = placeOrder(ctx, s, store.PlaceOrder{KeyID: k.ID, UserID: u,
		ShippingAddress: []byte(`{}`), BillingAddress: []byte(`{}`), Pricing: shopd.DefaultPricing, PaymentDueAt: due})
	if shopd.ErrorCode(err) != shopd.EInsufficientStock {
		t.Fatalf("short checkout: %v, want insufficient stock", err)
	}
	second := placeTestOrder(t, s, p, 1, due)
	if first.OrderNumber != 1 || second.OrderNumber != 2 || second.Number() != "ORD-000002" {
		t.Errorf("numbers %d, %d (%s); want 1, 2 (ORD-000002)", first.OrderNumber, second.OrderNumber, second.Number())
	}

	// Any order gets the next number as it commits.
	tx, err := s.DB().BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `INSERT INTO orders (customer_id, email, status, payment_status, fulfillment_status,
		subtotal_cents, tax_cents, shipping_cents, discount_cents, total_cents, currency, shipping_address, billing_address, payment_due_at)
		VALUES ($1, 'z@example.com', 'pending', 'pending', 'unfulfilled', 100, 10, 0, 0, 110, 'usd', '{}', '{}', now())`, u)
	if err != nil {
		t.Fatalf("insert: %v", err)
	}
	var third string
	if err := tx.GetContext(ctx, &third, `SELECT id FROM orders WHERE email = 'z@example.com'`); err != nil {
		t.Fatal(err)
	}
	var before *int64
	if err := tx.GetContext(ctx, &before, `SELECT order_number FROM orders WHERE id = $1`, third); err != nil || before != nil {
		t.Fatalf("number before commit: %v %v, want none yet", before, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n, _, err := s.PlacedOrder(ctx, third); err != nil || n != 3 {
		t.Fatalf("number after commit: %d %v, want 3", n, err)
	}
	// Numbered orders cannot be renumbered.
	if _, err := s.DB().ExecContext(ctx, `UPDATE orders SET order_number = 99 WHERE id = $1`, first.ID); err == nil {
		t.Fatal("an order number was changed")
	}
}
