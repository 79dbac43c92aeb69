package handlers_test

import (
	"context"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/internal/shoptest"
)

// orderOf decodes an Order response after checking its status.
func orderOf(t *testing.T, r *resp, status int) gen.Order {
	t.Helper()
	var o gen.Order
	r.want(t, status).decode(t, &o)
	return o
}

func TestOrderLifecycle(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	c := s.newCustomer(t)
	p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: 2000, Stock: new(20)})
	ctx := context.Background()

	t.Run("owner cancels a pending order", func(t *testing.T) {
		placed := s.placeOrder(t, c, line{p.ID, 3})
		id := placed.Order.Id
		if st := s.dbStock(t, p.ID); st != 17 {
			t.Fatalf("stock = %d, want 17", st)
		}
		o := orderOf(t, s.do(t, http.MethodPost, "/v1/orders/"+id+"/cancel", c.token, map[string]any{"reason": "Wrong size"}), http.StatusOK)
		if o.Status != gen.OrderStatusCancelled || o.PaymentStatus != gen.PaymentStatusCancelled || o.RefundedCents != 0 {
			t.Errorf("cancelled order = %s/%s refunded %d", o.Status, o.PaymentStatus, o.RefundedCents)
		}
		if !reflect.DeepEqual(frozenOf(o), frozenOf(placed.Order)) {
			t.Errorf("items or totals changed on cancel:\n got %+v\nwant %+v", frozenOf(o), frozenOf(placed.Order))
		}
		if st := s.dbStock(t, p.ID); st != 20 {
			t.Errorf("stock = %d after cancel, want 20", st)
		}
		if rows, units := s.ledgerFor(t, p.ID, id, "release"); rows != 1 || units != 3 {
			t.Errorf("release rows %d (%d units), want 1 (+3)", rows, units)
		}
		evs := s.events(t, c.token, id)
		if types := eventTypes(evs); !reflect.DeepEqual(types, []string{"placed", "payment_intent_created", "cancelled"}) {
			t.Fatalf("events = %v", types)
		}
		if e := evs[2]; e.Actor != gen.OrderEventActorCustomer || e.Note.MustGet() != "Wrong size" || e.Status != gen.OrderStatusCancelled {
			t.Errorf("cancel event = %+v", e)
		}
		expectProblem(t, s.do(t, http.MethodPost, "/v1/orders/"+id+"/cancel", c.token, nil), http.StatusConflict)
		expectProblem(t, s.do(t, http.MethodPost, "/v1/orders/"+id+"/cancel", s.admin, nil), http.StatusConflict)
		if st := s.dbStock(t, p.ID); st != 20 {
			t.Errorf("stock = %d after a refused second cancel, want 20", st)
		}
		if len(s.fake.Refunds()) != 0 {
			t.Errorf("an unpaid cancellation refunded something: %+v", s.fake.Refunds())
		}
		if in, _ := s.fake.Intent(placed.Payment.PaymentIntentId); in.Status != "canceled" {
			t.Errorf("the cancelled order's intent is %q at Stripe, want canceled (it could still be paid)", in.Status)
		}
	})

	t.Run("paid: owner may not cancel, admin cancels and refunds", func(t *testing.T) {
		placed := s.placeOrder(t, c, line{p.ID, 2})
		id := placed.Order.Id
		// Fulfilling an unpaid order is refused.
		expectProblem(t, s.do(t, http.MethodPost, "/v1/admin/orders/"+id+"/fulfill", s.admin, map[string]any{"trackingNumber": "1Z1"}), http.StatusConflict)
		// So is refunding one.
		expectProblem(t, s.do(t, http.MethodPost, "/v1/admin/orders/"+id+"/refund", s.admin, nil), http.StatusConflict)
		s.pay(t, placed)
		expectProblem(t, s.do(t, http.MethodPost, "/v1/orders/"+id+"/cancel", c.token, nil), http.StatusConflict)
		if o := s.storedOrder(t, id); o.Status != "processing" {
			t.Fatalf("a refused owner cancel changed the order to %s", o.Status)
		}
		before := len(s.fake.Refunds())
		o := orderOf(t, s.do(t, http.MethodPost, "/v1/orders/"+id+"/cancel", s.admin, nil), http.StatusOK)
		if o.Status != gen.OrderStatusCancelled || o.PaymentStatus != gen.PaymentStatusRefunded || o.RefundedCents != o.TotalCents {
			t.Errorf("admin-cancelled paid order = %s/%s refunded %d of %d", o.Status, o.PaymentStatus, o.RefundedCents, o.TotalCents)
		}
		refunds := s.fake.Refunds()
		if len(refunds) != before+1 || refunds[len(refunds)-1].PaymentIntentID != placed.Payment.PaymentIntentId ||
			refunds[len(refunds)-1].Amount != placed.Order.TotalCents {
			t.Errorf("refunds at Stripe = %+v, want one full refund of %s", refunds, placed.Payment.PaymentIntentId)
		}
		if st := s.dbStock(t, p.ID); st != 20 {
			t.Errorf("stock = %d, want 20", st)
		}
		types := eventTypes(s.events(t, s.admin, id))
		if !reflect.DeepEqual(types, []string{"placed", "payment_intent_created", "paid", "cancelled", "refunded"}) {
			t.Errorf("events = %v", types)
		}
		if !reflect.DeepEqual(frozenOf(o), frozenOf(placed.Order)) {
			t.Errorf("items or totals changed")
		}
		// Nothing left to refund.
		expectProblem(t, s.do(t, http.MethodPost, "/v1/admin/orders/"+id+"/refund", s.admin, map[string]any{"amountCents": 1}), http.StatusConflict)
	})

	t.Run("fulfil, then refund in parts", func(t *testing.T) {
		placed := s.placeOrder(t, c, line{p.ID, 4}) // 8000 + 800 + 1000 = 9800
		id, total := placed.Order.Id, placed.Order.TotalCents
		if total != 9800 {
			t.Fatalf("total = %d, want 9800", total)
		}
		s.pay(t, placed)
		expectProblem(t, s.do(t, http.MethodPost, "/v1/admin/orders/"+id+"/fulfill", s.admin, map[string]any{}), http.StatusBadRequest)
		o := orderOf(t, s.do(t, http.MethodPost, "/v1/admin/orders/"+id+"/fulfill", s.admin, map[string]any{"trackingNumber": "1Z999AA10123456784"}), http.StatusOK)
		if o.Status != gen.OrderStatusFulfilled || o.FulfillmentStatus != gen.FulfillmentStatusFulfilled || o.PaymentStatus != gen.PaymentStatusPaid ||
			o.TrackingNumber.MustGet() != "1Z999AA10123456784" || o.ShippedAt.IsNull() {
			t.Errorf("fulfilled order = %+v", o)
		} else if at := o.ShippedAt.MustGet(); time.Since(at) > time.Minute || time.Until(at) > time.Minute {
			t.Errorf("shippedAt = %v", at)
		}
		expectProblem(t, s.do(t, http.MethodPost, "/v1/admin/orders/"+id+"/fulfill", s.admin, map[string]any{"trackingNumber": "again"}), http.StatusConflict)
		expectProblem(t, s.do(t, http.MethodPost, "/v1/orders/"+id+"/cancel", s.admin, nil), http.StatusConflict)
		expectProblem(t, s.do(t, http.MethodPost, "/v1/orders/"+id+"/cancel", c.token, nil), http.StatusConflict)
		if st := s.dbStock(t, p.ID); st != 16 {
			t.Errorf("stock = %d, want 16 (a refused cancel releases nothing)", st)
		}

		o = orderOf(t, s.do(t, http.MethodPost, "/v1/admin/orders/"+id+"/refund", s.admin, map[string]any{"amountCents": 1000, "reason": "requested_by_customer"}), http.StatusOK)
		if o.PaymentStatus != gen.PaymentStatusPartiallyRefunded || o.RefundedCents != 1000 || o.Status != gen.OrderStatusFulfilled {
			t.Errorf("after a partial refund: %s/%s refunded %d", o.Status, o.PaymentStatus, o.RefundedCents)
		}
		expectProblem(t, s.do(t, http.MethodPost, "/v1/admin/orders/"+id+"/refund", s.admin, map[string]any{"amountCents": total - 1000 + 1}), http.StatusConflict)
		o = orderOf(t, s.do(t, http.MethodPost, "/v1/admin/orders/"+id+"/refund", s.admin, nil), http.StatusOK)
		if o.PaymentStatus != gen.PaymentStatusRefunded || o.RefundedCents != total || o.Status != gen.OrderStatusFulfilled {
			t.Errorf("after refunding the rest: %s/%s refunded %d", o.Status, o.PaymentStatus, o.RefundedCents)
		}
		expectProblem(t, s.do(t, http.MethodPost, "/v1/admin/orders/"+id+"/refund", s.admin, nil), http.StatusConflict)
		var atStripe int64
		for _, r := range s.fake.Refunds() {
			if r.PaymentIntentID == placed.Payment.PaymentIntentId {
				atStripe += r.Amount
			}
		}
		if atStripe != total {
			t.Errorf("refunded at Stripe %d, want %d", atStripe, total)
		}
		if st := s.dbStock(t, p.ID); st != 16 {
			t.Errorf("stock = %d, want 16 (refunds move no stock)", st)
		}
		evs := s.events(t, c.token, id)
		if types := eventTypes(evs); !reflect.DeepEqual(types, []string{"placed", "payment_intent_created", "paid", "fulfilled", "refunded", "refunded"}) {
			t.Errorf("events = %v", types)
		}
		for i := 1; i < len(evs); i++ {
			if evs[i].CreatedAt.Before(evs[i-1].CreatedAt) {
				t.Errorf("events out of order: %v then %v", evs[i-1].CreatedAt, evs[i].CreatedAt)
			}
		}
		if a := evs[4].AmountCents.MustGet(); a != 1000 || evs[4].Actor != gen.OrderEventActorAdmin {
			t.Errorf("first refund event = %+v", evs[4])
		}
		got := s.order(t, c.token, id)
		if !reflect.DeepEqual(frozenOf(got), frozenOf(placed.Order)) {
			t.Errorf("items or totals changed:\n got %+v\nwant %+v", frozenOf(got), frozenOf(placed.Order))
		}
	})

	t.Run("items and totals are immutable in the database", func(t *testing.T) {
		placed := s.placeOrder(t, c, line{p.ID, 1})
		id := placed.Order.Id
		db := s.Store.DB()
		for _, q := range []string{
			`UPDATE order_items SET quantity = quantity + 1, line_total_cents = unit_price_cents * (quantity + 1) WHERE order_id = $1`,
			`UPDATE order_items SET unit_price_cents = 1, line_total_cents = quantity WHERE order_id = $1`,
			`DELETE FROM order_items WHERE order_id = $1`,
			`UPDATE orders SET total_cents = total_cents + 1, subtotal_cents = subtotal_cents + 1 WHERE id = $1`,
			`UPDATE orders SET shipping_cents = 0, total_cents = subtotal_cents + tax_cents WHERE id = $1`,
			`UPDATE orders SET customer_id = customer_id, email = 'x' || email WHERE id = $1`,
			`DELETE FROM orders WHERE id = $1`,
			`UPDATE order_events SET status = 'fulfilled' WHERE order_id = $1`,
			`DELETE FROM order_events WHERE order_id = $1`,
		} {
			_, err := db.ExecContext(ctx, q, id)
			if err == nil || !strings.Contains(err.Error(), "immutable") {
				t.Errorf("%s: err = %v, want the immutability trigger", strings.Fields(q)[0]+" "+strings.Fields(q)[1], err)
			}
		}
		got := s.order(t, c.token, id)
		if !reflect.DeepEqual(frozenOf(got), frozenOf(placed.Order)) {
			t.Errorf("order changed: %+v", frozenOf(got))
		}
	})
}

// TestConcurrentRefunds: ten admins refund 30% of one order at once;
// exactly three fit, and Stripe never refunds more than was paid.
func TestConcurrentRefunds(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	c := s.newCustomer(t)
	a := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: 4500, Stock: new(5)})
	b := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: 2300, Stock: new(5)})
	placed := s.placeOrder(t, c, line{a.ID, 2}, line{b.ID, 1})
	total := placed.Order.TotalCents
	if total != 12430 {
		t.Fatalf("total = %d, want 12430", total)
	}
	s.pay(t, placed)
	part := total * 30 / 100
	s.fake.SetLatency(20 * time.Millisecond) // widen the race window

	reqs := make([]*http.Request, 10)
	for i := range reqs {
		reqs[i] = s.request(t, http.MethodPost, "/v1/admin/orders/"+placed.Order.Id+"/refund", s.admin, map[string]any{"amountCents": part})
	}
	res := s.sendAll(t, 60*time.Second, reqs)
	counts := statusCounts(res)
	if counts[http.StatusOK] != 3 || counts[http.StatusConflict] != 7 {
		t.Errorf("statuses %v, want 3 x 200 and 7 x 409", counts)
	}
	for _, r := range res {
		if r.status == http.StatusConflict {
			expectProblem(t, r, http.StatusConflict)
		}
	}
	s.fake.SetLatency(0)
	o := s.order(t, s.admin, placed.Order.Id)
	if o.RefundedCents != 3*part || o.PaymentStatus != gen.PaymentStatusPartiallyRefunded {
		t.Errorf("order refunded %d (%s), want %d", o.RefundedCents, o.PaymentStatus, 3*part)
	}
	var atStripe int64
	for _, r := range s.fake.Refunds() {
		atStripe += r.Amount
	}
	if atStripe != 3*part || atStripe > total {
		t.Errorf("refunded at Stripe %d, want %d (never over %d)", atStripe, 3*part, total)
	}
	var pending int
	if err := s.Store.DB().Get(&pending, `SELECT count(*) FROM refunds WHERE status <> 'succeeded'`); err != nil {
		t.Fatal(err)
	}
	if pending != 0 {
		t.Errorf("%d refunds not succeeded", pending)
	}
	// The rest, then nothing.
	o = orderOf(t, s.do(t, http.MethodPost, "/v1/admin/orders/"+o.Id+"/refund", s.admin, nil), http.StatusOK)
	if o.RefundedCents != total || o.PaymentStatus != gen.PaymentStatusRefunded {
		t.Errorf("after refunding the rest: %d %s", o.RefundedCents, o.PaymentStatus)
	}
	expectProblem(t, s.do(t, http.MethodPost, "/v1/admin/orders/"+o.Id+"/refund", s.admin, map[string]any{"amountCents": 1}), http.StatusConflict)
	if n := len(s.events(t, s.admin, o.Id)); n != 3+4 {
		t.Errorf("events = %d, want placed, intent, paid + 4 refunds", n)
	}
}

// TestOrderAuthorization sweeps every order and cart operation with the
// owner, another customer, an admin and no token.
func TestOrderAuthorization(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	owner, other := s.newCustomer(t), s.newCustomer(t)
	p := shoptest.Product(t.Context(), t, s.Store, &shoptest.ProductOpts{PriceCents: 1000, Stock: new(50)})
	pending := s.placeOrder(t, owner, line{p.ID, 1})
	paid := s.placeOrder(t, owner, line{p.ID, 2})
	s.pay(t, paid)
	theirs := s.placeOrder(t, other, line{p.ID, 1})
	const anon = ""

	// notFoundLikeUnknown checks a refused access looks exactly like an
	// unknown order and carries none of the order's data.
	unknown := "0c6f1f3e-2f4a-4b5c-8d6e-7f8091a2b3c4"
	notFoundLikeUnknown := func(t *testing.T, method, path string, body any, o gen.CheckoutResult) {
		t.Helper()
		r := s.do(t, method, path, other.token, body)
		got := expectProblem(t, r, http.StatusNotFound)
		ref := expectProblem(t, s.do(t, method, strings.Replace(path, o.Order.Id, unknown, 1), other.token, body), http.StatusNotFound)
		if got.Type != ref.Type || got.Title != ref.Title || strings.ReplaceAll(got.Detail, o.Order.Id, unknown) != ref.Detail {
			t.Errorf("%s %s: another's order answers %+v, an unknown one %+v", method, path, got, ref)
		}
		for _, secret := range []string{owner.email, o.Order.OrderNumber, o.Payment.PaymentIntentId, "totalCents"} {
			if strings.Contains(string(r.body), secret) {
				t.Errorf("%s %s: 404 body leaks %q: %s", method, path, secret, r.body)
			}
		}
	}

	for _, o := range []gen.CheckoutResult{pending, paid} {
		for _, path := range []string{"/v1/orders/" + o.Order.Id, "/v1/orders/" + o.Order.Id + "/events"} {
			s.do(t, http.MethodGet, path, owner.token, nil).want(t, http.StatusOK)
			s.do(t, http.MethodGet, path, s.admin, nil).want(t, http.StatusOK)
			expectProblem(t, s.do(t, http.MethodGet, path, anon, nil), http.StatusUnauthorized)
			notFoundLikeUnknown(t, http.MethodGet, path, nil, o)
		}
		cancel := "/v1/orders/" + o.Order.Id + "/cancel"
		expectProblem(t, s.do(t, http.MethodPost, cancel, anon, nil), http.StatusUnauthorized)
		notFoundLikeUnknown(t, http.MethodPost, cancel, nil, o)
		for path, body := range map[string]any{
			"/v1/admin/orders/" + o.Order.Id + "/fulfill": map[string]any{"trackingNumber": "1Z1"},
			"/v1/admin/orders/" + o.Order.Id + "/refund":  map[string]any{"amountCents": 100},
		} {
			expectProblem(t, s.do(t, http.MethodPost, path, anon, body), http.StatusUnauthorized)
			expectProblem(t, s.do(t, http.MethodPost, path, owner.token, body), http.StatusForbidden)
			expectProblem(t, s.do(t, http.MethodPost, path, other.token, body), http.StatusForbidden)
		}
	}
	// None of that changed anything.
	if o := s.storedOrder(t, pending.Order.Id); o.Status != "pending" || o.PaymentStatus != "pending" {
		t.Errorf("pending order is now %s/%s", o.Status, o.PaymentStatus)
	}
	if o := s.storedOrder(t, paid.Order.Id); o.Status != "processing" || o.RefundedCents != 0 || o.FulfillmentStatus != "unfulfilled" {
		t.Errorf("paid order is now %s/%s/%s refunded %d", o.Status, o.PaymentStatus, o.FulfillmentStatus, o.RefundedCents)
	}
	if n := len(s.fake.Refunds()); n != 0 {
		t.Errorf("refunds at Stripe: %d", n)
	}

	// What the owner and the admin may do.
	s.do(t, http.MethodPost, "/v1/admin/orders/"+paid.Order.Id+"/refund", s.admin, map[string]any{"amountCents": 100}).want(t, http.StatusOK)
	s.do(t, http.MethodPost, "/v1/admin/orders/"+paid.Order.Id+"/fulfill", s.admin, map[string]any{"trackingNumber": "1Z1"}).want(t, http.StatusOK)
	s.do(t, http.MethodPost, "/v1/orders/"+pending.Order.Id+"/cancel", owner.token, nil).want(t, http.StatusOK)
	s.do(t, http.MethodPost, "/v1/orders/"+theirs.Order.Id+"/cancel", s.admin, nil).want(t, http.StatusOK)
	expectProblem(t, s.do(t, http.MethodGet, "/v1/orders/"+unknown, s.admin, nil), http.StatusNotFound)

	// Lists.
	list := func(token, query string) []string {
		var l gen.OrderList
		s.do(t, http.MethodGet, "/v1/orders"+query, token, nil).want(t, http.StatusOK).decode(t, &l)
		ids := make([]string, len(l.Items))
		for i, o := range l.Items {
			ids[i] = o.Id
		}
		slices.Sort(ids)
		return ids
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	ownerIDs := sorted(pending.Order.Id, paid.Order.Id)
	if got := list(owner.token, ""); !reflect.DeepEqual(got, ownerIDs) {
		t.Errorf("owner's list = %v, want %v", got, ownerIDs)
	}
	if got := list(other.token, ""); !reflect.DeepEqual(got, []string{theirs.Order.Id}) {
		t.Errorf("other's list = %v", got)
	}
	if got := list(other.token, "?customerId="+owner.id); !reflect.DeepEqual(got, []string{theirs.Order.Id}) {
		t.Errorf("customerId of another customer was honoured for a customer: %v", got)
	}
	if got := list(owner.token, "?status=cancelled&customerId="+other.id); !reflect.DeepEqual(got, []string{pending.Order.Id}) {
		t.Errorf("owner's cancelled orders = %v", got)
	}
	if got := list(s.admin, "?customerId="+owner.id); !reflect.DeepEqual(got, ownerIDs) {
		t.Errorf("admin's list for the owner = %v", got)
	}
	if got := list(s.admin, ""); len(got) != 3 {
		t.Errorf("admin's list = %v, want all 3", got)
	}
	expectProblem(t, s.do(t, http.MethodGet, "/v1/orders", anon, nil), http.StatusUnauthorized)

	// Carts: each caller only ever touches their own.
	s.fillCart(t, owner.token, line{p.ID, 2})
	for _, op := range []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, "/v1/cart", nil},
		{http.MethodPost, "/v1/cart/items", addToCart(p.ID, 1)},
		{http.MethodPut, "/v1/cart/items/" + p.ID, map[string]any{"quantity": 3}},
		{http.MethodDelete, "/v1/cart/items/" + p.ID, nil},
		{http.MethodDelete, "/v1/cart", nil},
	} {
		expectProblem(t, s.do(t, op.method, op.path, anon, op.body), http.StatusUnauthorized)
	}
	expectProblem(t, s.send(t, s.checkoutRequest(t, anon, newKey(), checkoutBody())), http.StatusUnauthorized)
	// Another customer cannot reach the owner's lines.
	if c := cartOf(t, s.do(t, http.MethodGet, "/v1/cart", other.token, nil), http.StatusOK); len(c.Items) != 0 {
		t.Errorf("other's cart shows %+v", c.Items)
	}
	expectProblem(t, s.do(t, http.MethodPut, "/v1/cart/items/"+p.ID, other.token, map[string]any{"quantity": 9}), http.StatusNotFound)
	expectProblem(t, s.do(t, http.MethodDelete, "/v1/cart/items/"+p.ID, other.token, nil), http.StatusNotFound)
	s.do(t, http.MethodDelete, "/v1/cart", other.token, nil).want(t, http.StatusOK)
	if q := cartQuantities(cartOf(t, s.do(t, http.MethodGet, "/v1/cart", owner.token, nil), http.StatusOK)); q[p.ID] != 2 || len(q) != 1 {
		t.Errorf("owner's cart after the other's attempts = %v", q)
	}
	// The admin has a cart of their own and may check out.
	cartOf(t, s.do(t, http.MethodPost, "/v1/cart/items", s.admin, addToCart(p.ID, 1)), http.StatusCreated)
	cartOf(t, s.do(t, http.MethodPut, "/v1/cart/items/"+p.ID, s.admin, map[string]any{"quantity": 2}), http.StatusOK)
	var adminOrder gen.CheckoutResult
	s.checkout(t, s.admin, newKey()).want(t, http.StatusCreated).decode(t, &adminOrder)
	if adminOrder.Order.Items[0].Quantity != 2 {
		t.Errorf("admin's order = %+v", adminOrder.Order.Items)
	}
	if q := cartQuantities(cartOf(t, s.do(t, http.MethodGet, "/v1/cart", owner.token, nil), http.StatusOK)); q[p.ID] != 2 {
		t.Errorf("the admin's checkout touched the owner's cart: %v", q)
	}
	// The owner's own cart operations work.
	cartOf(t, s.do(t, http.MethodPut, "/v1/cart/items/"+p.ID, owner.token, map[string]any{"quantity": 3}), http.StatusOK)
	cartOf(t, s.do(t, http.MethodDelete, "/v1/cart/items/"+p.ID, owner.token, nil), http.StatusOK)
	cartOf(t, s.do(t, http.MethodDelete, "/v1/cart", owner.token, nil), http.StatusOK)
}
