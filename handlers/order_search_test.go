package handlers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/shopd/shopd/gen"
)

// TestAdminOrderSearch: q finds orders by number (exact, any case) or by
// the start of the customer's email (any case), combines with status and
// customerId, pages by keyset, takes LIKE's wildcards literally, and is
// refused to customers.
func TestAdminOrderSearch(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	p := s.product(t, s.admin, map[string]any{"stock": 50})
	ada, bob := s.newCustomer(t), s.newCustomer(t)
	var adaOrders []string // newest first
	for range 3 {
		adaOrders = slices.Insert(adaOrders, 0, s.placeOrder(t, ada, line{p.Id, 1}).Order.Id)
	}
	bobOrder := s.placeOrder(t, bob, line{p.Id, 1}).Order

	// list is every page of GET /v1/orders?<query> as token, in order.
	list := func(t *testing.T, token, query string) []string {
		t.Helper()
		var ids []string
		path := "/v1/orders?limit=2&" + query
		for {
			var page gen.OrderList
			s.do(t, http.MethodGet, path, token, nil).want(t, http.StatusOK).decode(t, &page)
			for _, o := range page.Items {
				ids = append(ids, o.Id)
			}
			if page.NextCursor.IsNull() || !page.NextCursor.IsSpecified() {
				return ids
			}
			path = "/v1/orders?limit=2&" + query + "&cursor=" + url.QueryEscape(page.NextCursor.MustGet())
		}
	}
	// The local part is unique per customer; the prefix stops short of it.
	adaPrefix := strings.ToUpper(ada.email[:strings.Index(ada.email, "@")-1])
	cases := []struct {
		name, query string
		want        []string
	}{
		{"email prefix, other case, over two pages", "q=" + url.QueryEscape(adaPrefix), adaOrders},
		{"whole email", "q=" + url.QueryEscape(ada.email), adaOrders},
		{"order number", "q=" + bobOrder.OrderNumber, []string{bobOrder.Id}},
		{"order number lower case", "q=" + strings.ToLower(bobOrder.OrderNumber), []string{bobOrder.Id}},
		{"order number is exact", "q=" + bobOrder.OrderNumber[:len(bobOrder.OrderNumber)-1], nil},
		{"with status", "status=pending&q=" + url.QueryEscape(adaPrefix), adaOrders},
		{"with another status", "status=cancelled&q=" + url.QueryEscape(adaPrefix), nil},
		{"with its customer", "customerId=" + ada.id + "&q=" + url.QueryEscape(adaPrefix), adaOrders},
		{"with another customer", "customerId=" + bob.id + "&q=" + url.QueryEscape(adaPrefix), nil},
		{"another customer's number", "customerId=" + ada.id + "&q=" + bobOrder.OrderNumber, nil},
		// Unescaped, "_" would match the "-" in every test email.
		{"underscore is literal", "q=user_", nil},
		{"percent is literal", "q=" + url.QueryEscape("%"), nil},
		{"no match", "q=nobody", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := list(t, s.admin, tc.query); !slices.Equal(got, tc.want) {
				t.Errorf("GET /v1/orders?%s = %v, want %v", tc.query, got, tc.want)
			}
		})
	}
	t.Run("customer", func(t *testing.T) {
		t.Parallel()
		expectProblem(t, s.do(t, http.MethodGet, "/v1/orders?q="+url.QueryEscape(ada.email), ada.token, nil), http.StatusForbidden)
		if got := list(t, ada.token, ""); !slices.Equal(got, adaOrders) {
			t.Errorf("customer's own list = %v, want %v", got, adaOrders)
		}
	})
	t.Run("order number format", func(t *testing.T) {
		t.Parallel()
		if want := fmt.Sprintf("ORD-%06d", 0); len(bobOrder.OrderNumber) != len(want) {
			t.Errorf("order number %q, want the form %q", bobOrder.OrderNumber, want)
		}
	})
}
