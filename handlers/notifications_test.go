package handlers_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/google/uuid"

	"github.com/shopd/shopd/gen"
)

// TestAdminNotifications: the admins' outbox list filters by status,
// template, order and customer, pages with its cursor, refuses a cursor it
// cannot read and non-admins; a retry re-queues a failed notification
// only (409 otherwise, 404 for an unknown one).
func TestAdminNotifications(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.admin(t)
	customerToken, customerID := a.customer(t)
	insert := func(template, status, dedupe string, customer *string) string {
		t.Helper()
		var id string
		if err := a.Store.DB().Get(&id, `INSERT INTO notifications
			(channel, template, recipient, subject, body_text, status, attempts, last_error, customer_id, dedupe_key)
			VALUES ('email', $1, 'ada@example.com', 'Subject', 'Body', $2, 1, CASE WHEN $2 = 'failed' THEN 'refused' END, $3, $4)
			RETURNING id`, template, status, customer, dedupe); err != nil {
			t.Fatal(err)
		}
		return id
	}
	failed := insert("order-confirmation", "failed", "a:"+uuid.NewString(), &customerID)
	sent := insert("order-shipped", "sent", "b:"+uuid.NewString(), &customerID)
	insert("order-confirmation", "pending", "c:"+uuid.NewString(), nil)

	list := func(q url.Values) gen.NotificationList {
		t.Helper()
		var out gen.NotificationList
		a.do(t, http.MethodGet, "/v1/admin/notifications?"+q.Encode(), admin, nil).want(t, http.StatusOK).decode(t, &out)
		return out
	}
	for _, tc := range []struct {
		query url.Values
		want  int
	}{
		{url.Values{}, 3},
		{url.Values{"status": {"failed"}}, 1},
		{url.Values{"template": {"order-confirmation"}}, 2},
		{url.Values{"customerId": {customerID}}, 2},
		{url.Values{"customerId": {customerID}, "status": {"sent"}}, 1},
		{url.Values{"orderId": {uuid.NewString()}}, 0},
	} {
		if got := list(tc.query); len(got.Items) != tc.want {
			t.Errorf("?%s: %d items, want %d", tc.query.Encode(), len(got.Items), tc.want)
		}
	}
	got := list(url.Values{"status": {"failed"}}).Items[0]
	if got.Id != failed || got.Attempts != 1 || got.LastError.MustGet() != "refused" || got.CustomerId.MustGet() != customerID {
		t.Errorf("failed notification as listed: %+v", got)
	}

	seen := map[string]bool{}
	page := list(url.Values{"limit": {"2"}})
	for _, n := range page.Items {
		seen[n.Id] = true
	}
	if !page.NextCursor.IsSpecified() || page.NextCursor.IsNull() {
		t.Fatal("a first page of 2 out of 3 has no nextCursor")
	}
	rest := list(url.Values{"limit": {"2"}, "cursor": {page.NextCursor.MustGet()}})
	for _, n := range rest.Items {
		seen[n.Id] = true
	}
	if len(seen) != 3 || !rest.NextCursor.IsNull() {
		t.Errorf("two pages saw %d notifications (last nextCursor null: %v), want 3 and the end", len(seen), rest.NextCursor.IsNull())
	}
	expectProblem(t, a.do(t, http.MethodGet, "/v1/admin/notifications?cursor=bm90LWEtY3Vyc29y", admin, nil), http.StatusBadRequest)
	expectProblem(t, a.do(t, http.MethodGet, "/v1/admin/notifications", customerToken, nil), http.StatusForbidden)

	var retried gen.Notification
	a.do(t, http.MethodPost, "/v1/admin/notifications/"+failed+"/retry", admin, nil).want(t, http.StatusOK).decode(t, &retried)
	if retried.Status != gen.NotificationStatusPending {
		t.Errorf("retried notification is %s, want pending", retried.Status)
	}
	expectProblem(t, a.do(t, http.MethodPost, "/v1/admin/notifications/"+failed+"/retry", admin, nil), http.StatusConflict)
	expectProblem(t, a.do(t, http.MethodPost, "/v1/admin/notifications/"+sent+"/retry", admin, nil), http.StatusConflict)
	expectProblem(t, a.do(t, http.MethodPost, "/v1/admin/notifications/"+uuid.NewString()+"/retry", admin, nil), http.StatusNotFound)
	expectProblem(t, a.do(t, http.MethodPost, "/v1/admin/notifications/"+failed+"/retry", customerToken, nil), http.StatusForbidden)
}
