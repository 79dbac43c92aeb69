package orders_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/internal/stripefake"
	"github.com/shopd/shopd/orders"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/store"
)

// testBundle is what a test of the money path reaches behind the service
// with: its store on a fresh database, the Stripe double, the clock and
// the crash hook the service runs on.
type testBundle struct {
	svc   *orders.Service // the one setup returns, for the helpers below
	store *store.Store
	fake  *stripefake.Server
	clock *shoptest.Clock
	crash *shoptest.Crash
}

// setup is the money path on a fresh database and a Stripe double, and
// the bundle of its collaborators.
func setup(t *testing.T) (*orders.Service, *testBundle) {
	t.Helper()
	b := &testBundle{store: store.New(pgtest.NewDB(t)), fake: stripefake.New(t), clock: &shoptest.Clock{}, crash: &shoptest.Crash{}}
	b.svc = &orders.Service{
		Store:         b.store,
		Payments:      payments.New(payments.Config{SecretKey: "sk_test_x", APIBase: b.fake.URL, MaxNetworkRetries: -1}),
		Pricing:       shopd.DefaultPricing,
		PaymentWindow: time.Hour,
		Log:           slog.New(slog.DiscardHandler),
		Now:           b.clock.Now,
		AfterPhase:    b.crash.AfterPhase,
	}
	return b.svc, b
}

// product is an active product at the price with the stock.
func (b *testBundle) product(t *testing.T, priceCents int64, stock int) store.Product {
	t.Helper()
	return shoptest.Product(context.Background(), t, b.store, &shoptest.ProductOpts{PriceCents: priceCents, Stock: &stock})
}

// stock is the product's stock in the database.
func (b *testBundle) stock(t *testing.T, productID string) int {
	t.Helper()
	return shoptest.Stock(context.Background(), t, b.store, productID)
}

// checkout puts qty of the product in a new customer's cart and checks out
// with a new key; it returns the key and the checkout's error.
func (b *testBundle) checkout(t *testing.T, p store.Product, qty int) (userID, key string, err error) {
	t.Helper()
	ctx := context.Background()
	userID = shoptest.User(ctx, t, b.store, nil).ID
	if _, err := b.store.AddToCart(ctx, userID, p.ID, qty); err != nil {
		t.Fatal(err)
	}
	key = "key-" + uuid.NewString()
	addr := []byte(`{"firstName":"Ada","lastName":"Lovelace","line1":"1 Road","city":"London","postalCode":"N1","country":"GB"}`)
	_, err = b.svc.Checkout(ctx, orders.CheckoutRequest{
		UserID: userID, Key: key, RequestHash: "h", ShippingAddress: addr, BillingAddress: addr,
	})
	return userID, key, err
}

// orderOf is the user's one order.
func (b *testBundle) orderOf(t *testing.T, userID string) store.Order {
	t.Helper()
	var id string
	if err := b.store.DB().Get(&id, `SELECT id FROM orders WHERE customer_id = $1`, userID); err != nil {
		t.Fatal(err)
	}
	return b.order(t, id)
}

func (b *testBundle) order(t *testing.T, id string) store.Order {
	t.Helper()
	o, err := b.store.Order(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// placed is a checked-out order with its intent.
func (b *testBundle) placed(t *testing.T, p store.Product, qty int) store.Order {
	t.Helper()
	userID, _, err := b.checkout(t, p, qty)
	if err != nil {
		t.Fatalf("checkout: %v", err)
	}
	return b.orderOf(t, userID)
}

// pay applies a payment_intent.succeeded for the order.
func (b *testBundle) pay(t *testing.T, o store.Order) store.Order {
	t.Helper()
	err := b.svc.HandleEvent(context.Background(), payments.Event{
		ID: "evt_" + uuid.NewString(), Type: "payment_intent.succeeded",
		PaymentIntent: &payments.PaymentIntentEvent{ID: *o.PaymentIntentID, OrderID: o.ID, Currency: o.Currency,
			Status: "succeeded", AmountCents: o.TotalCents},
	})
	if err != nil {
		t.Fatal(err)
	}
	o = b.order(t, o.ID)
	if o.PaymentStatus != shopd.PaymentPaid {
		t.Fatalf("order not paid: %s", o.PaymentStatus)
	}
	return o
}

// refunds are the order's refund rows, oldest first.
func (b *testBundle) refunds(t *testing.T, orderID string) []store.Refund {
	t.Helper()
	var rs []store.Refund
	if err := b.store.DB().Select(&rs, `SELECT id, order_id, amount_cents, reason, status, stripe_refund_id, created_at
		FROM refunds WHERE order_id = $1 ORDER BY created_at, id`, orderID); err != nil {
		t.Fatal(err)
	}
	return rs
}

// admin is the actor of admins' cancels and refunds.
var admin = store.Actor{Kind: "admin"}
