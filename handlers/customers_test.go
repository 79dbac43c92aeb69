package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shopd/shopd/auth"
	"github.com/shopd/shopd/gen"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/store"
)

// me is GET /v1/me as token: 200.
func (a *api) me(t *testing.T, token string) gen.Customer {
	t.Helper()
	var c gen.Customer
	a.do(t, http.MethodGet, "/v1/me", token, nil).want(t, http.StatusOK).decode(t, &c)
	return c
}

// saveAddress is POST /v1/me/addresses: 201.
func (a *api) saveAddress(t *testing.T, token string, body map[string]any) gen.SavedAddress {
	t.Helper()
	var out gen.SavedAddress
	a.do(t, http.MethodPost, "/v1/me/addresses", token, body).want(t, http.StatusCreated).decode(t, &out)
	return out
}

// defaults is the ids of the user's default addresses, read from the
// database (the API shows one at most by construction).
func (a *api) defaults(t *testing.T, userID string) (all int, defaults []string) {
	t.Helper()
	db := a.Store.DB()
	if err := db.Get(&all, `SELECT count(*) FROM customer_addresses WHERE user_id = $1`, userID); err != nil {
		t.Fatal(err)
	}
	if err := db.Select(&defaults, `SELECT id FROM customer_addresses WHERE user_id = $1 AND is_default`, userID); err != nil {
		t.Fatal(err)
	}
	return all, defaults
}

func with(base map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestMeShowsTheCustomer(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.newCustomer(t)
	got := a.me(t, c.token)
	if got.Id != c.id || string(got.Email) != c.email || got.Role != gen.CustomerRoleCustomer || got.FirstName != "Ada" {
		t.Errorf("profile = %+v", got)
	}
	if got.MarketingOptIn || got.TotalOrders != 0 || got.TotalSpentCents != 0 || got.Currency != "usd" ||
		got.Addresses == nil || len(got.Addresses) != 0 || !got.Phone.IsNull() {
		t.Errorf("a new account's profile = %+v, want no opt-in, no addresses, no orders, usd, null phone", got)
	}
}

func TestUpdateMe(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.newCustomer(t)
	var got gen.Customer
	a.do(t, http.MethodPatch, "/v1/me", c.token, map[string]any{
		"firstName": " Grace ", "lastName": "Hopper", "phone": "+15555550123", "marketingOptIn": true,
	}).want(t, http.StatusOK).decode(t, &got)
	if got.FirstName != "Grace" || got.LastName != "Hopper" || got.Phone.MustGet() != "+15555550123" || !got.MarketingOptIn {
		t.Fatalf("after PATCH: %+v", got)
	}
	// Absent fields stay; null clears the phone.
	a.do(t, http.MethodPatch, "/v1/me", c.token, map[string]any{"phone": nil}).want(t, http.StatusOK).decode(t, &got)
	if !got.Phone.IsNull() || got.FirstName != "Grace" || !got.MarketingOptIn {
		t.Fatalf("after clearing the phone: %+v", got)
	}
	if me := a.me(t, c.token); !me.Phone.IsNull() || me.LastName != "Hopper" || string(me.Email) != c.email {
		t.Errorf("GET /v1/me after PATCH: %+v", me)
	}

	for _, tc := range []struct {
		name  string
		body  any
		field string // the field error expected, if any
	}{
		{"blank first name", map[string]any{"firstName": "   "}, "firstName"},
		{"blank last name", map[string]any{"lastName": "\t"}, "lastName"},
		{"empty first name", map[string]any{"firstName": ""}, ""},
		{"email", map[string]any{"email": "new@example.com"}, ""},
		{"role", map[string]any{"role": "admin"}, ""},
		{"totalOrders", map[string]any{"totalOrders": 99}, ""},
		{"totalSpentCents", map[string]any{"totalSpentCents": 0}, ""},
		{"currency", map[string]any{"currency": "eur"}, ""},
		{"id", map[string]any{"id": c.id}, ""},
		{"addresses", map[string]any{"addresses": []any{}}, ""},
		{"createdAt", map[string]any{"createdAt": "2026-05-04T10:15:30Z"}, ""},
		{"role with a valid field", map[string]any{"firstName": "Eve", "role": "admin"}, ""},
		{"bad phone", map[string]any{"phone": "12345"}, ""},
		{"nothing", map[string]any{}, ""},
	} {
		r := a.do(t, http.MethodPatch, "/v1/me", c.token, tc.body)
		p := expectProblem(t, r, http.StatusBadRequest)
		if tc.field != "" && !p.hasFieldError(tc.field) {
			t.Errorf("%s: no field error for %s: %s", tc.name, tc.field, r.body)
		}
	}
	// Nothing above changed anything.
	if me := a.me(t, c.token); me.FirstName != "Grace" || me.Role != gen.CustomerRoleCustomer || me.TotalOrders != 0 || string(me.Email) != c.email {
		t.Errorf("refused PATCHes changed the profile: %+v", me)
	}
}

func TestAddressBook(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.newCustomer(t)

	// The first address is the default even when asked otherwise.
	home := a.saveAddress(t, c.token, with(testAddress("London"), "isDefault", false, "line2", "Flat 1", "region", "Greater London", "phone", "+447700900123"))
	if !home.IsDefault || home.Line2.MustGet() != "Flat 1" || home.Region.MustGet() != "Greater London" || home.City != "London" {
		t.Fatalf("first address = %+v, want the default with its fields", home)
	}
	work := a.saveAddress(t, c.token, testAddress("Paris"))
	if work.IsDefault || !work.Line2.IsNull() || !work.Phone.IsNull() {
		t.Fatalf("second address = %+v, want not default, null optional fields", work)
	}
	// isDefault on a new address moves the default.
	cottage := a.saveAddress(t, c.token, with(testAddress("York"), "isDefault", true))
	me := a.me(t, c.token)
	if len(me.Addresses) != 3 || me.Addresses[0].Id != cottage.Id || !me.Addresses[0].IsDefault ||
		me.Addresses[1].IsDefault || me.Addresses[2].IsDefault {
		t.Fatalf("addresses = %+v, want York first and the only default", me.Addresses)
	}

	// isDefault false on the default is refused; on another it changes nothing.
	r := a.do(t, http.MethodPatch, "/v1/me/addresses/"+cottage.Id, c.token, map[string]any{"isDefault": false})
	if p := expectProblem(t, r, http.StatusConflict); !strings.HasSuffix(p.Type, "/conflict") {
		t.Errorf("problem type %s, want conflict", p.Type)
	}
	var got gen.SavedAddress
	a.do(t, http.MethodPatch, "/v1/me/addresses/"+work.Id, c.token, map[string]any{"isDefault": false}).want(t, http.StatusOK).decode(t, &got)
	if got.IsDefault {
		t.Errorf("isDefault false on a non-default made it default")
	}
	// A partial change; null clears; isDefault true moves the default.
	a.do(t, http.MethodPatch, "/v1/me/addresses/"+home.Id, c.token, map[string]any{
		"line1": "1 New Street", "line2": nil, "phone": nil, "isDefault": true,
	}).want(t, http.StatusOK).decode(t, &got)
	if got.Line1 != "1 New Street" || !got.Line2.IsNull() || !got.Phone.IsNull() || got.Region.MustGet() != "Greater London" ||
		got.City != "London" || !got.IsDefault {
		t.Fatalf("after PATCH: %+v", got)
	}
	if all, defs := a.defaults(t, c.id); all != 3 || len(defs) != 1 || defs[0] != home.Id {
		t.Fatalf("%d addresses, defaults %v, want 3 and only %s", all, defs, home.Id)
	}
	for _, bad := range []map[string]any{{"city": " "}, {"country": "gb"}, {"id": home.Id}, {}, {"createdAt": "2026-05-04T10:15:30Z"}} {
		expectProblem(t, a.do(t, http.MethodPatch, "/v1/me/addresses/"+home.Id, c.token, bad), http.StatusBadRequest)
	}
	expectProblem(t, a.do(t, http.MethodPost, "/v1/me/addresses", c.token, with(testAddress("Rome"), "city", "  ")), http.StatusBadRequest)
	expectProblem(t, a.do(t, http.MethodPost, "/v1/me/addresses", c.token, with(testAddress("Rome"), "id", home.Id)), http.StatusBadRequest)

	// Deleting the default promotes the newest remaining address.
	a.do(t, http.MethodDelete, "/v1/me/addresses/"+home.Id, c.token, nil).want(t, http.StatusNoContent)
	if all, defs := a.defaults(t, c.id); all != 2 || len(defs) != 1 || defs[0] != cottage.Id {
		t.Fatalf("after deleting the default: %d addresses, defaults %v, want %s", all, defs, cottage.Id)
	}
	expectProblem(t, a.do(t, http.MethodDelete, "/v1/me/addresses/"+home.Id, c.token, nil), http.StatusNotFound)
	a.do(t, http.MethodDelete, "/v1/me/addresses/"+work.Id, c.token, nil).want(t, http.StatusNoContent)
	a.do(t, http.MethodDelete, "/v1/me/addresses/"+cottage.Id, c.token, nil).want(t, http.StatusNoContent)
	if me := a.me(t, c.token); len(me.Addresses) != 0 {
		t.Errorf("addresses after deleting all = %+v", me.Addresses)
	}
	// The next one is the default again.
	if again := a.saveAddress(t, c.token, testAddress("Oslo")); !again.IsDefault {
		t.Errorf("first address of an emptied book is not the default")
	}
}

// TestAddressLimitUnderConcurrency: 25 creates at once for a customer with
// none: exactly 20 are kept, the other 5 are 409, and one is the default.
func TestAddressLimitUnderConcurrency(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.newCustomer(t)
	reqs := make([]*http.Request, 25)
	for i := range reqs {
		reqs[i] = a.request(t, http.MethodPost, "/v1/me/addresses", c.token, testAddress(fmt.Sprintf("City %d", i)))
	}
	counts := statusCounts(a.sendAll(t, 30*time.Second, reqs))
	if counts[http.StatusCreated] != store.MaxSavedAddresses || counts[http.StatusConflict] != 5 || len(counts) != 2 {
		t.Errorf("statuses = %v, want 20 x 201 and 5 x 409", counts)
	}
	if all, defs := a.defaults(t, c.id); all != 20 || len(defs) != 1 {
		t.Errorf("%d addresses kept, %d defaults; want 20 and 1", all, len(defs))
	}
	p := expectProblem(t, a.do(t, http.MethodPost, "/v1/me/addresses", c.token, testAddress("One more")), http.StatusConflict)
	if !strings.HasSuffix(p.Type, "/conflict") {
		t.Errorf("over the limit: type %s, want conflict", p.Type)
	}
}

// TestConcurrentMakeDefault: every address made the default at once ends
// with exactly one default, and every request succeeds.
func TestConcurrentMakeDefault(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.newCustomer(t)
	var reqs []*http.Request
	for i := range 10 {
		ad := a.saveAddress(t, c.token, testAddress(fmt.Sprintf("Town %d", i)))
		reqs = append(reqs, a.request(t, http.MethodPatch, "/v1/me/addresses/"+ad.Id, c.token, map[string]any{"isDefault": true}))
	}
	counts := statusCounts(a.sendAll(t, 30*time.Second, reqs))
	if counts[http.StatusOK] != 10 {
		t.Errorf("statuses = %v, want 10 x 200", counts)
	}
	if all, defs := a.defaults(t, c.id); all != 10 || len(defs) != 1 {
		t.Errorf("%d addresses, defaults %v; want 10 and exactly one", all, defs)
	}
	me := a.me(t, c.token)
	n := 0
	for _, ad := range me.Addresses {
		if ad.IsDefault {
			n++
		}
	}
	if n != 1 || !me.Addresses[0].IsDefault {
		t.Errorf("GET /v1/me shows %d defaults (first is default: %v)", n, me.Addresses[0].IsDefault)
	}
}

// TestCustomerRoutesAuthorization sweeps every customer route as the
// owner, another customer, an admin and an anonymous caller.
func TestCustomerRoutesAuthorization(t *testing.T) {
	t.Parallel()
	a := setup(t)
	owner, other := a.newCustomer(t), a.newCustomer(t)
	admin := a.quickUser(t, auth.RoleAdmin)
	addr := a.saveAddress(t, owner.token, testAddress("London"))
	a.saveAddress(t, owner.token, testAddress("Leeds")) // so the first may be deleted and still leave one
	const unknown = "00000000-0000-4000-8000-000000000000"
	patch := map[string]any{"city": "Bath"}
	type call struct {
		method, path string
		body         any
	}
	for _, tc := range []struct {
		name string
		call call
		want map[string]int // caller -> status
	}{
		{"get me", call{http.MethodGet, "/v1/me", nil},
			map[string]int{"owner": 200, "other": 200, "admin": 200, "anonymous": 401}},
		{"patch me", call{http.MethodPatch, "/v1/me", map[string]any{"marketingOptIn": true}},
			map[string]int{"owner": 200, "other": 200, "admin": 200, "anonymous": 401}},
		{"create address", call{http.MethodPost, "/v1/me/addresses", testAddress("Hull")},
			map[string]int{"owner": 201, "other": 201, "admin": 201, "anonymous": 401}},
		{"patch the owner's address", call{http.MethodPatch, "/v1/me/addresses/" + addr.Id, patch},
			map[string]int{"other": 404, "admin": 404, "anonymous": 401, "owner": 200}},
		{"patch an unknown address", call{http.MethodPatch, "/v1/me/addresses/" + unknown, patch},
			map[string]int{"owner": 404, "anonymous": 401}},
		{"patch a malformed address id", call{http.MethodPatch, "/v1/me/addresses/not-an-id", patch},
			map[string]int{"owner": 404}},
		{"delete the owner's address", call{http.MethodDelete, "/v1/me/addresses/" + addr.Id, nil},
			map[string]int{"other": 404, "admin": 404, "anonymous": 401, "owner": 204}},
		{"list customers", call{http.MethodGet, "/v1/admin/customers", nil},
			map[string]int{"owner": 403, "other": 403, "anonymous": 401, "admin": 200}},
		{"get a customer", call{http.MethodGet, "/v1/admin/customers/" + owner.id, nil},
			map[string]int{"owner": 403, "other": 403, "anonymous": 401, "admin": 200}},
		{"get an unknown customer", call{http.MethodGet, "/v1/admin/customers/" + unknown, nil},
			map[string]int{"owner": 403, "admin": 404}},
		{"get an admin as a customer", call{http.MethodGet, "/v1/admin/customers/" + admin.id, nil},
			map[string]int{"admin": 404}},
	} {
		// Refusals first: the owner's call may change or delete the address.
		for _, who := range []string{"anonymous", "other", "admin", "owner"} {
			want, ok := tc.want[who]
			if !ok {
				continue
			}
			token := map[string]string{"owner": owner.token, "other": other.token, "admin": admin.token}[who]
			r := a.do(t, tc.call.method, tc.call.path, token, tc.call.body)
			if r.status != want {
				t.Errorf("%s as %s: %d, want %d\nbody: %s", tc.name, who, r.status, want, r.body)
			}
			if want >= 400 {
				expectProblem(t, r, want)
			}
		}
	}
	// The other customer's and the admin's attempts changed nothing.
	if all, _ := a.defaults(t, owner.id); all != 2 { // London deleted by its owner, Leeds and Hull left
		t.Errorf("owner has %d addresses, want 2", all)
	}
}

func TestAdminCustomerSearch(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.quickUser(t, auth.RoleAdmin)
	ctx := context.Background()
	people := []struct{ email, first, last string }{
		{"grace@navy.example.com", "Grace", "Hopper"},
		{"ada@engine.example.com", "Ada", "Lovelace"},
		{"alan@bletchley.example.com", "Alan", "Turing"},
		{"edsger@eindhoven.example.com", "Edsger", "Dijkstra"},
		{"barbara@mit.example.com", "Barbara", "Liskov"},
	}
	ids := map[string]string{}
	for _, p := range people {
		u, err := a.Store.CreateUser(ctx, store.NewUser{Email: p.email, PasswordHash: "x", Role: auth.RoleCustomer, FirstName: p.first, LastName: p.last})
		if err != nil {
			t.Fatal(err)
		}
		ids[p.email] = u.ID
	}
	list := func(query url.Values) gen.CustomerList {
		t.Helper()
		var out gen.CustomerList
		a.do(t, http.MethodGet, "/v1/admin/customers?"+query.Encode(), admin.token, nil).want(t, http.StatusOK).decode(t, &out)
		return out
	}
	emails := func(l gen.CustomerList) []string {
		var out []string
		for _, c := range l.Items {
			out = append(out, string(c.Email))
		}
		return out
	}
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"HOPPER", []string{"grace@navy.example.com"}},
		{"ada lovelace", []string{"ada@engine.example.com"}},
		{"BLETCHLEY.example", []string{"alan@bletchley.example.com"}},
		{"a", nil}, // every one: checked by count below
		{"100%", []string{}},
		{"_", []string{}},
	} {
		got := emails(list(url.Values{"q": {tc.q}}))
		if tc.want == nil {
			if len(got) != len(people) {
				t.Errorf("q=%q: %v, want all %d customers and no admin", tc.q, got, len(people))
			}
			continue
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("q=%q: %v, want %v", tc.q, got, tc.want)
		}
	}
	// Pages of 2 walk every customer once, newest first, and never an admin.
	var seen []string
	q := url.Values{"limit": {"2"}}
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		l := list(q)
		seen = append(seen, emails(l)...)
		if l.NextCursor.IsNull() {
			break
		}
		q.Set("cursor", l.NextCursor.MustGet())
	}
	want := []string{people[4].email, people[3].email, people[2].email, people[1].email, people[0].email}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("paged = %v, want %v", seen, want)
	}
	expectProblem(t, a.do(t, http.MethodGet, "/v1/admin/customers?cursor=bm90LWEtY3Vyc29y", admin.token, nil), http.StatusBadRequest)
	expectProblem(t, a.do(t, http.MethodGet, "/v1/admin/customers?limit=0", admin.token, nil), http.StatusBadRequest)

	var one gen.AdminCustomer
	a.do(t, http.MethodGet, "/v1/admin/customers/"+ids["ada@engine.example.com"], admin.token, nil).want(t, http.StatusOK).decode(t, &one)
	if one.FirstName != "Ada" || !one.LastOrderAt.IsNull() || !one.StripeCustomerId.IsNull() || one.TotalOrders != 0 {
		t.Errorf("customer = %+v", one)
	}
}

// stats is the customer's statistics as GET /v1/me shows them.
func (s *shop) stats(t *testing.T, c account) (orders int32, spentCents int64) {
	t.Helper()
	me := s.me(t, c.token)
	return me.TotalOrders, me.TotalSpentCents
}

func (s *shop) wantStats(t *testing.T, c account, orders int32, spentCents int64, when string) {
	t.Helper()
	if n, spent := s.stats(t, c); n != orders || spent != spentCents {
		t.Errorf("%s: totalOrders %d, totalSpentCents %d; want %d, %d", when, n, spent, orders, spentCents)
	}
}

// deliverAll delivers the payloads, signed, all at once.
func (s *shop) deliverAll(t *testing.T, payloads ...[]byte) {
	t.Helper()
	reqs := make([]*http.Request, len(payloads))
	for i, p := range payloads {
		reqs[i] = s.request(t, http.MethodPost, "/v1/webhooks/stripe", "", p)
		reqs[i].Header.Set("Stripe-Signature", payments.SignWebhook(p, testWebhookSecret, time.Now()))
	}
	if counts := statusCounts(s.sendAll(t, 30*time.Second, reqs)); counts[http.StatusOK] != len(payloads) {
		t.Fatalf("webhook statuses = %v, want all 200", counts)
	}
}

// TestStatsCountAPaymentOnce: the same payment_intent.succeeded delivered
// five times at once, then five times more one by one, and another event
// id reporting the same success, count one order and its total once.
func TestStatsCountAPaymentOnce(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	o := s.webhookOrder(t)
	s.wantStats(t, o.c, 0, 0, "unpaid")
	success := intentEvent(newEventID(), "payment_intent.succeeded", o.intent(), o.id(), o.total(), "usd")
	s.deliverAll(t, success, success, success, success, success)
	s.wantStats(t, o.c, 1, o.total(), "after 5 concurrent deliveries")
	for range 5 {
		s.deliver(t, success).want(t, http.StatusOK)
	}
	s.deliver(t, intentEvent(newEventID(), "payment_intent.succeeded", o.intent(), o.id(), o.total(), "usd")).want(t, http.StatusOK)
	s.wantStats(t, o.c, 1, o.total(), "after redeliveries")

	var admin gen.AdminCustomer
	s.do(t, http.MethodGet, "/v1/admin/customers/"+o.c.id, s.admin, nil).want(t, http.StatusOK).decode(t, &admin)
	if admin.TotalOrders != 1 || admin.TotalSpentCents != o.total() || admin.LastOrderAt.IsNull() ||
		!admin.LastOrderAt.MustGet().Equal(o.out.Order.CreatedAt) || admin.StripeCustomerId.IsNull() {
		t.Errorf("admin view = %+v, want the stats, lastOrderAt %v and a Stripe customer", admin, o.out.Order.CreatedAt)
	}
}

// TestStatsRefundBeforeSuccess: Stripe reports a partial refund before the
// payment; the refund counts once the payment does, and redeliveries of
// either change nothing.
func TestStatsRefundBeforeSuccess(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	o := s.webhookOrder(t)
	refund := chargeRefundedEvent(newEventID(), o.intent(), o.id(), o.total(), 500, "usd")
	s.deliver(t, refund).want(t, http.StatusOK)
	s.wantStats(t, o.c, 0, 0, "refund reported before the payment")
	success := intentEvent(newEventID(), "payment_intent.succeeded", o.intent(), o.id(), o.total(), "usd")
	s.deliverAll(t, success, success, refund)
	s.wantStats(t, o.c, 1, o.total()-500, "paid after an early refund")
	s.deliver(t, refund).want(t, http.StatusOK)
	s.deliver(t, success).want(t, http.StatusOK)
	s.wantStats(t, o.c, 1, o.total()-500, "after redeliveries")
	full := chargeRefundedEvent(newEventID(), o.intent(), o.id(), o.total(), o.total(), "usd")
	s.deliverAll(t, full, full, full)
	s.wantStats(t, o.c, 1, 0, "fully refunded")
}

// TestStatsPartialRefunds: refunds an admin makes through Stripe count
// when they succeed; Stripe's charge.refunded echo of them does not count
// them again; a second order adds up.
func TestStatsPartialRefunds(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	o := s.webhookOrder(t)
	s.pay(t, o.out)
	for range 2 {
		s.do(t, http.MethodPost, "/v1/admin/orders/"+o.id()+"/refund", s.admin, map[string]any{"amountCents": 1000}).want(t, http.StatusOK)
	}
	s.wantStats(t, o.c, 1, o.total()-2000, "after two partial refunds")
	echo := chargeRefundedEvent(newEventID(), o.intent(), o.id(), o.total(), 2000, "usd")
	s.deliverAll(t, echo, echo)
	s.wantStats(t, o.c, 1, o.total()-2000, "after Stripe's report of the same refunds")

	second := s.placeOrder(t, o.c, line{o.p.Id, 1})
	s.wantStats(t, o.c, 1, o.total()-2000, "a second order, unpaid")
	s.pay(t, second)
	s.wantStats(t, o.c, 2, o.total()-2000+second.Order.TotalCents, "both paid")
}

// TestStatsCancelledThenPaidThenRefunded: a payment that arrives for an
// order the customer cancelled is refunded in the background; the order
// was paid once, and nothing stays spent.
func TestStatsCancelledThenPaidThenRefunded(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	o := s.webhookOrder(t)
	s.do(t, http.MethodPost, "/v1/orders/"+o.id()+"/cancel", o.c.token, nil).want(t, http.StatusOK)
	s.wantStats(t, o.c, 0, 0, "cancelled unpaid")
	s.fake.SetIntentStatus(o.intent(), "succeeded")
	success := intentEvent(newEventID(), "payment_intent.succeeded", o.intent(), o.id(), o.total(), "usd")
	s.deliverAll(t, success, success)
	eventually(t, 30*time.Second, "the late payment is refunded", func() bool {
		return s.storedOrder(t, o.id()).PaymentStatus == "refunded"
	})
	s.deliver(t, success).want(t, http.StatusOK)
	s.deliver(t, chargeRefundedEvent(newEventID(), o.intent(), o.id(), o.total(), o.total(), "usd")).want(t, http.StatusOK)
	s.wantStats(t, o.c, 1, 0, "cancelled, paid, refunded")
}

// TestStatsConcurrentOrdersOfOneCustomer: payments for several orders of
// one customer applied at once all count: each recount runs under the
// customer's row lock, after the others committed.
func TestStatsConcurrentOrdersOfOneCustomer(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	c := s.newCustomer(t)
	p := s.product(t, s.admin, map[string]any{"stock": 50, "priceCents": 1500})
	var payloads [][]byte
	var sum int64
	for i := range 6 {
		o := s.placeOrder(t, c, line{p.Id, i + 1})
		sum += o.Order.TotalCents
		payloads = append(payloads, intentEvent(newEventID(), "payment_intent.succeeded", o.Payment.PaymentIntentId, o.Order.Id, o.Order.TotalCents, "usd"))
	}
	s.deliverAll(t, payloads...)
	s.wantStats(t, c, 6, sum, "six orders paid at once")
}
