package handlers_test

// Helpers shared by the money-path tests (checkout, orders, webhooks): a
// server wired to a stateful Stripe double, a clock the tests move, fast
// accounts, checkout requests, signed Stripe events and database probes.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/handlers"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/internal/stripefake"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/store"
)

// shop is a server whose money path talks to a stripefake, with its clock,
// crash hook and an admin token.
type shop struct {
	*api
	fake  *stripefake.Server
	clock *shoptest.Clock
	crash *shoptest.Crash
	admin string
}

// paymentWindow is the shops' PAYMENT_WINDOW.
const paymentWindow = time.Hour

func newShop(t *testing.T, opts ...func(*handlers.Config)) *shop {
	t.Helper()
	return newShopOn(t, newTestDB(t), opts...)
}

// newShopOn is newShop on the pool db, a new migrated database.
func newShopOn(t *testing.T, db *sqlx.DB, opts ...func(*handlers.Config)) *shop {
	t.Helper()
	s := &shop{fake: stripefake.New(t), clock: &shoptest.Clock{}, crash: &shoptest.Crash{}}
	all := []func(*handlers.Config){
		withPayments(s.fake.URL),
		func(cfg *handlers.Config) {
			if os.Getenv("SHOPD_TEST_LOG") != "" { // see what a 5xx was about
				cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
				cfg.Orders.Log = cfg.Log
			}
			cfg.Orders.Now = s.clock.Now
			cfg.Orders.PaymentWindow = paymentWindow
			cfg.Orders.AfterPhase = s.crash.AfterPhase
		},
	}
	s.api = setupOn(t, db, append(all, opts...)...)
	s.admin = s.quickUser(t, auth.RoleAdmin).token
	return s
}

// fastHash is one password hash for every account a test puts straight
// into the store: argon2 per account would dominate tests that need
// dozens of customers.
var fastHash = sync.OnceValues(func() (string, error) { return auth.HashPassword(testPassword) })

// account is a user and a token for it.
type account struct {
	token, id, email string
}

// quickUser creates a user in the store and issues its token directly
// (login is tested elsewhere).
func (a *api) quickUser(t *testing.T, role string) account {
	t.Helper()
	hash, err := fastHash()
	if err != nil {
		t.Fatal(err)
	}
	u := shoptest.User(t.Context(), t, a.Store, &shoptest.UserOpts{Email: uniqueEmail(), PasswordHash: hash, Role: role})
	tok, err := a.Tokens.Issue(u.ID, role)
	if err != nil {
		t.Fatal(err)
	}
	return account{token: tok, id: u.ID, email: u.Email}
}

func (a *api) newCustomer(t *testing.T) account { return a.quickUser(t, auth.RoleCustomer) }

// testAddress is a valid Address.
func testAddress(city string) map[string]any {
	return map[string]any{"firstName": "Ada", "lastName": "Lovelace", "line1": "12 St James's Square",
		"city": city, "postalCode": "SW1Y 4JH", "country": "GB"}
}

func checkoutBody() map[string]any { return map[string]any{"shippingAddress": testAddress("London")} }

// checkoutRequest is POST /v1/checkout with the key ("" sends none).
func (a *api) checkoutRequest(t *testing.T, token, key string, body any) *http.Request {
	t.Helper()
	req := a.request(t, http.MethodPost, "/v1/checkout", token, body)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return req
}

func (a *api) checkout(t *testing.T, token, key string) *resp {
	t.Helper()
	return a.send(t, a.checkoutRequest(t, token, key, checkoutBody()))
}

func newKey() string { return "key-" + randomHex(8) }

// line is a cart line to add.
type line struct {
	productID string
	qty       int
}

// fillCart empties the caller's cart and adds the lines in order.
func (a *api) fillCart(t *testing.T, token string, lines ...line) {
	t.Helper()
	a.do(t, http.MethodDelete, "/v1/cart", token, nil).want(t, http.StatusOK)
	for _, l := range lines {
		a.do(t, http.MethodPost, "/v1/cart/items", token, addToCart(l.productID, l.qty)).want(t, http.StatusCreated)
	}
}

// placeOrder fills the cart and checks out: 201.
func (a *api) placeOrder(t *testing.T, c account, lines ...line) gen.CheckoutResult {
	t.Helper()
	a.fillCart(t, c.token, lines...)
	var out gen.CheckoutResult
	a.checkout(t, c.token, newKey()).want(t, http.StatusCreated).decode(t, &out)
	return out
}

// order is GET /v1/orders/{id} as token: 200.
func (a *api) order(t *testing.T, token, id string) gen.Order {
	t.Helper()
	var o gen.Order
	a.do(t, http.MethodGet, "/v1/orders/"+id, token, nil).want(t, http.StatusOK).decode(t, &o)
	return o
}

// events is the order's whole history as token.
func (a *api) events(t *testing.T, token, id string) []gen.OrderEvent {
	t.Helper()
	var l gen.OrderEventList
	a.do(t, http.MethodGet, "/v1/orders/"+id+"/events?limit=100", token, nil).want(t, http.StatusOK).decode(t, &l)
	return l.Items
}

func eventTypes(evs []gen.OrderEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = string(e.Type)
	}
	return out
}

// storedOrder reads the order behind the API, for what the API does not
// show (client secret, payment due date) or before any response exists.
func (a *api) storedOrder(t *testing.T, id string) store.Order {
	t.Helper()
	o, err := a.Store.Order(context.Background(), id)
	if err != nil {
		t.Fatalf("order %s: %v", id, err)
	}
	return o
}

// ordersOf returns the ids of the customer's orders, oldest first.
func (a *api) ordersOf(t *testing.T, customerID string) []string {
	t.Helper()
	var ids []string
	if err := a.Store.DB().Select(&ids, `SELECT id FROM orders WHERE customer_id = $1 ORDER BY order_number`, customerID); err != nil {
		t.Fatal(err)
	}
	return ids
}

// onlyOrderOf is the customer's one order.
func (a *api) onlyOrderOf(t *testing.T, customerID string) string {
	t.Helper()
	ids := a.ordersOf(t, customerID)
	if len(ids) != 1 {
		t.Fatalf("customer has %d orders, want 1", len(ids))
	}
	return ids[0]
}

// keyState is the recovery point of (user, key), "" when there is no row.
func (a *api) keyState(t *testing.T, userID, key string) string {
	t.Helper()
	var points []string
	if err := a.Store.DB().Select(&points, `SELECT recovery_point FROM idempotency_keys WHERE user_id = $1 AND key = $2`, userID, key); err != nil {
		t.Fatal(err)
	}
	if len(points) == 0 {
		return ""
	}
	return points[0]
}

// dbStock is the product's stock in the database.
func (a *api) dbStock(t *testing.T, productID string) int {
	t.Helper()
	return shoptest.Stock(t.Context(), t, a.Store, productID)
}

// ledgerRow is one inventory_transactions row.
type ledgerRow struct {
	Type           string  `db:"type"`
	QuantityChange int     `db:"quantity_change"`
	StockAfter     int     `db:"stock_after"`
	ReferenceID    *string `db:"reference_id"`
}

func (a *api) dbLedger(t *testing.T, productID string) []ledgerRow {
	t.Helper()
	var rows []ledgerRow
	if err := a.Store.DB().Select(&rows, `SELECT type, quantity_change, stock_after, reference_id::text AS reference_id
		FROM inventory_transactions WHERE product_id = $1 ORDER BY id`, productID); err != nil {
		t.Fatal(err)
	}
	return rows
}

// ledgerCheck fails unless the ledger adds up to the stock, and returns
// how many rows of each type it has.
func (a *api) ledgerCheck(t *testing.T, productID string) map[string]int {
	t.Helper()
	rows := a.dbLedger(t, productID)
	sum, types := 0, map[string]int{}
	for _, r := range rows {
		sum += r.QuantityChange
		types[r.Type]++
	}
	if st := a.dbStock(t, productID); sum != st {
		t.Errorf("product %s: ledger adds up to %d, stock is %d (%+v)", productID, sum, st, rows)
	}
	return types
}

// ledgerFor counts the product's ledger rows of a type that reference the order.
func (a *api) ledgerFor(t *testing.T, productID, orderID, typ string) (rows, units int) {
	t.Helper()
	for _, r := range a.dbLedger(t, productID) {
		if r.Type == typ && r.ReferenceID != nil && *r.ReferenceID == orderID {
			rows++
			units += r.QuantityChange
		}
	}
	return rows, units
}

// sendAll sends one request per goroutine, together, each bounded by limit
// so that a stuck server cannot hang the test. A transport error is a
// test error.
func (a *api) sendAll(t *testing.T, limit time.Duration, reqs []*http.Request) []*resp {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	out := make([]*resp, len(reqs))
	errs := make([]error, len(reqs))
	shoptest.Concurrently(t, len(reqs), limit+10*time.Second, func(i int) {
		r, err := a.roundTrip(t, reqs[i].WithContext(ctx))
		if err != nil {
			errs[i], r = err, &resp{}
		}
		out[i] = r
	})
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d requests got no answer, first: %v", len(failed), len(reqs), failed[0])
	}
	return out
}

// statusCounts tallies the statuses.
func statusCounts(rs []*resp) map[int]int {
	m := map[int]int{}
	for _, r := range rs {
		m[r.status]++
	}
	return m
}

// eventually polls cond every 10 ms until it holds or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// retryAfter is the Retry-After header in seconds, or -1.
func retryAfter(r *resp) int {
	n, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil {
		return -1
	}
	return n
}

// asJSON decodes a body into a generic value, for comparing documents.
func asJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// Stripe events.

var eventSeq atomic.Int64

func newEventID() string { return fmt.Sprintf("evt_test_%d_%s", eventSeq.Add(1), randomHex(6)) }

// intentEvent is a payment_intent.* event about an intent of the order.
func intentEvent(id, typ, intentID, orderID string, amount int64, currency string) []byte {
	status := "succeeded"
	received := amount
	if typ != "payment_intent.succeeded" {
		status, received = "requires_payment_method", 0
	}
	return mustJSON(map[string]any{
		"id": id, "object": "event", "type": typ, "api_version": "2023-10-16",
		"created": time.Now().Unix(), "livemode": false,
		"data": map[string]any{"object": map[string]any{
			"id": intentID, "object": "payment_intent", "amount": amount, "amount_received": received,
			"currency": currency, "status": status, "metadata": map[string]string{"orderId": orderID},
		}},
	})
}

// chargeRefundedEvent is a charge.refunded event for the intent's charge.
func chargeRefundedEvent(id, intentID, orderID string, amount, refunded int64, currency string) []byte {
	return mustJSON(map[string]any{
		"id": id, "object": "event", "type": "charge.refunded", "api_version": "2023-10-16",
		"created": time.Now().Unix(), "livemode": false,
		"data": map[string]any{"object": map[string]any{
			"id": "ch_" + randomHex(8), "object": "charge", "amount": amount, "amount_refunded": refunded,
			"currency": currency, "payment_intent": intentID, "refunded": refunded >= amount,
			"metadata": map[string]string{"orderId": orderID},
		}},
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// webhook posts payload to the Stripe webhook with the signature header
// ("" sends none).
func (a *api) webhook(t *testing.T, payload []byte, signature string) *resp {
	t.Helper()
	req := a.request(t, http.MethodPost, "/v1/webhooks/stripe", "", payload)
	if signature != "" {
		req.Header.Set("Stripe-Signature", signature)
	}
	return a.send(t, req)
}

// deliver posts payload signed as Stripe would, now.
func (a *api) deliver(t *testing.T, payload []byte) *resp {
	t.Helper()
	return a.webhook(t, payload, payments.SignWebhook(payload, testWebhookSecret, time.Now()))
}

// pay reports the order's payment as succeeded and checks it took.
func (a *api) pay(t *testing.T, o gen.CheckoutResult) gen.Order {
	t.Helper()
	a.deliver(t, intentEvent(newEventID(), "payment_intent.succeeded", o.Payment.PaymentIntentId, o.Order.Id,
		o.Order.TotalCents, o.Order.Currency)).want(t, http.StatusOK)
	got := a.storedOrder(t, o.Order.Id)
	if got.PaymentStatus != "paid" || got.Status != "processing" {
		t.Fatalf("after payment_intent.succeeded: %s/%s, want processing/paid", got.Status, got.PaymentStatus)
	}
	return a.order(t, a.tokenFor(t, o.Order.CustomerId), o.Order.Id)
}

// tokenFor issues a token for an existing customer.
func (a *api) tokenFor(t *testing.T, userID string) string {
	t.Helper()
	tok, err := a.Tokens.Issue(userID, auth.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// frozen is the part of an order that never changes after checkout.
type frozen struct {
	Items                                    []gen.OrderItem
	Subtotal, Tax, Shipping, Discount, Total int64
	Currency, Number, Customer               string
	ShippingAddress, BillingAddress          gen.Address
}

func frozenOf(o gen.Order) frozen {
	return frozen{Items: o.Items, Subtotal: o.SubtotalCents, Tax: o.TaxCents, Shipping: o.ShippingCents,
		Discount: o.DiscountCents, Total: o.TotalCents, Currency: o.Currency, Number: o.OrderNumber,
		Customer: o.CustomerId, ShippingAddress: o.ShippingAddress, BillingAddress: o.BillingAddress}
}
