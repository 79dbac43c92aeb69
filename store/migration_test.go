package store

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/pgtest"
)

// TestCheckoutOutcomesMigration: keys that finished before 0003 stored the
// HTTP answer; afterwards they replay the same outcome from the shop's own
// terms: a 409 becomes its refusal, a 201 the order it answered (number,
// lines, money, addresses, intent and client secret). Keys still under way
// are left as they were.
func TestCheckoutOutcomesMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	conn, err := db.Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(query string, args ...any) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, query, args...); err != nil {
			t.Fatalf("%.60s...: %v", query, err)
		}
	}
	migration := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("..", "sql", "migrations", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// The schema as it was before 0003, beside the current one.
	exec(`CREATE SCHEMA legacy`)
	exec(`SET search_path = legacy, public`)
	defer exec(`RESET search_path`)
	exec(migration("0001_catalog.up.sql"))
	exec(migration("0002_orders.up.sql"))

	var userID string
	if err := conn.GetContext(ctx, &userID, `INSERT INTO users (email, password_hash, role, first_name, last_name)
		VALUES ('old@example.com', 'x', 'customer', 'Ada', 'Lovelace') RETURNING id`); err != nil {
		t.Fatal(err)
	}
	const created = `{"order": {"id": "6f9b1f4e-2f4c-4d59-9f1e-3c1f6c7f2a10", "orderNumber": "ORD-000123",
		"customerId": "c0ffee00-0000-4000-8000-000000000001", "email": "old@example.com", "status": "pending",
		"paymentStatus": "pending", "fulfillmentStatus": "unfulfilled",
		"items": [{"productId": "b0b0b0b0-0000-4000-8000-000000000002", "sku": "SKU-1", "name": "Mug",
			"unitPriceCents": 1500, "quantity": 2, "lineTotalCents": 3000}],
		"subtotalCents": 3000, "taxCents": 300, "shippingCents": 1000, "discountCents": 0, "totalCents": 4300,
		"refundedCents": 0, "currency": "usd",
		"shippingAddress": {"firstName": "Ada", "lastName": "Lovelace", "line1": "1 Road", "city": "London", "postalCode": "N1", "country": "GB"},
		"billingAddress": {"firstName": "Ada", "lastName": "Lovelace", "line1": "1 Road", "city": "London", "postalCode": "N1", "country": "GB"},
		"paymentIntentId": "pi_123", "trackingNumber": null, "shippedAt": null, "deliveredAt": null,
		"createdAt": "2025-01-02T03:04:05.123456Z", "updatedAt": "2025-01-02T03:04:06.5Z"},
		"payment": {"provider": "stripe", "paymentIntentId": "pi_123", "clientSecret": "pi_123_secret_abc"}}`
	const refused = `{"type": "https://shopd.dev/problems/conflict", "title": "Conflict", "status": 409,
		"detail": "Order ORD-000007 was cancelled before payment could start; check out again."}`
	exec(`INSERT INTO idempotency_keys (user_id, key, request_hash, recovery_point, response_status, response_body)
		VALUES ($1, 'created', 'h', 'finished', 201, $2), ($1, 'refused', 'h', 'finished', 409, $3),
			($1, 'started', 'h', 'started', NULL, NULL)`, userID, created, refused)

	exec(migration("0003_checkout_outcomes.up.sql"))
	// Later columns the store reads with every key.
	exec(migration("0012_checkout_lease.up.sql"))

	key := func(name string) IdempotencyKey {
		t.Helper()
		var k IdempotencyKey
		if err := conn.GetContext(ctx, &k, `SELECT `+keyColumns+` FROM idempotency_keys WHERE key = $1`, name); err != nil {
			t.Fatal(err)
		}
		return k
	}
	k := key("created")
	o, err := k.Order()
	if err != nil {
		t.Fatal(err)
	}
	if k.Outcome == nil || *k.Outcome != OutcomeCreated {
		t.Errorf("created key outcome = %v", k.Outcome)
	}
	if o.ID != "6f9b1f4e-2f4c-4d59-9f1e-3c1f6c7f2a10" || o.Number() != "ORD-000123" || o.TotalCents != 4300 || o.TaxCents != 300 ||
		o.Currency != "usd" || o.Status != shopd.StatusPending || len(o.Items) != 1 || o.Items[0].LineTotalCents != 3000 ||
		o.PaymentIntentID == nil || *o.PaymentIntentID != "pi_123" || o.ClientSecret == nil || *o.ClientSecret != "pi_123_secret_abc" ||
		o.TrackingNumber != nil || o.CreatedAt.UTC().Format("2006-01-02T15:04:05.999999Z") != "2025-01-02T03:04:05.123456Z" {
		t.Errorf("converted order = %+v", o)
	}
	var addr map[string]string
	if err := json.Unmarshal(o.ShippingAddress, &addr); err != nil || addr["line1"] != "1 Road" || addr["country"] != "GB" {
		t.Errorf("shipping address = %s (%v)", o.ShippingAddress, err)
	}

	k = key("refused")
	if k.Outcome == nil || *k.Outcome != OutcomeRefused || *k.RefusalCode != shopd.EConflict ||
		*k.RefusalMessage != "Order ORD-000007 was cancelled before payment could start; check out again." || (len(k.OrderSnapshot) != 0 && string(k.OrderSnapshot) != "null") {
		t.Errorf("refused key = %v %v %v %q", deref(k.Outcome), deref(k.RefusalCode), deref(k.RefusalMessage), k.OrderSnapshot)
	}
	if k = key("started"); k.RecoveryPoint != PointStarted || k.Outcome != nil {
		t.Errorf("key under way = %s, outcome %v", k.RecoveryPoint, k.Outcome)
	}
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
