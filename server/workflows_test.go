package server

import (
	"net/http"
	"net/mail"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/internal/stripefake"
	"github.com/shopd/shopd/notify"
)

// followUpJobsSQL counts an order's follow-up jobs, and those of them not
// yet finished.
const followUpJobsSQL = `
SELECT count(*), count(*) FILTER (WHERE state NOT IN ('completed', 'discarded', 'cancelled'))
FROM river_job
WHERE kind IN ('fulfillment_reminder', 'review_request', 'delivery_followup')
	AND args->>'order_id' = $1`

// scheduledFollowUpsSQL counts an order's follow-up jobs still waiting for
// their time.
const scheduledFollowUpsSQL = `
SELECT count(*)
FROM river_job
WHERE kind IN ('fulfillment_reminder', 'review_request')
	AND args->>'order_id' = $1
	AND state = 'scheduled'`

// TestOrderFollowUps runs the real server with an SMTP server and the
// follow-up delays in milliseconds. A paid, unfulfilled order of an
// opted-in customer gets the warehouse's fulfilment reminder and the
// review request; a shipped order of a customer who did not opt in gets
// the delivery confirmation only; an order cancelled (and refunded) or
// fully refunded after payment gets neither reminder nor review. The
// negative controls are asserted only after the positive ones arrived
// and after every follow-up job of those orders has run.
func TestOrderFollowUps(t *testing.T) {
	t.Parallel()
	box := shoptest.NewInbox(t)
	const secret = "whsec_followups"
	const warehouse = "packing@shop.example"
	fake := stripefake.New(t)
	dbURL := pgtest.NewURL(t)
	s := start(t, shopEnv(t, fake.URL, secret, map[string]string{
		"DATABASE_URL": dbURL,
		"SMTP_URL":     "smtp://" + box.Addr, "MAIL_FROM": "shop@shop.example", "WAREHOUSE_EMAIL": warehouse,
		"STOREFRONT_URL": "https://shop.example", "JOB_POLL_INTERVAL": "20ms", "NOTIFY_RETRY_BASE": "10ms",
		// Long enough for the test to ship, cancel or refund the negative
		// controls first (checked below), short enough to wait for.
		"FULFILLMENT_REMINDER_AFTER": "5s", "REVIEW_REQUEST_AFTER": "5s", "DELIVERY_FOLLOWUP_AFTER": "200ms",
	}))
	db, err := sqlx.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	admin := s.token(t, "boss@example.com", "bootstrap-password")
	optIn := func(email string) {
		t.Helper()
		tok := s.token(t, email, "a-long-password")
		if st := s.call(t, http.MethodPatch, "/v1/me", tok, map[string]any{"marketingOptIn": true}, nil); st != http.StatusOK {
			t.Fatalf("opt in: %d", st)
		}
	}
	post := func(path string, body any) {
		t.Helper()
		if st := s.call(t, http.MethodPost, path, admin, body, nil); st != http.StatusOK {
			t.Fatalf("POST %s: %d", path, st)
		}
	}
	// stillScheduled checks the precondition of a negative control right
	// after its order changed: its reminder and review request were still
	// waiting for their time, so when they run they see the change.
	stillScheduled := func(id string) {
		t.Helper()
		var n int
		if err := db.Get(&n, scheduledFollowUpsSQL, id); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Fatalf("order %s has %d follow-ups still scheduled after it changed, want 2 (this machine took longer than FULFILLMENT_REMINDER_AFTER)", id, n)
		}
	}

	// Negative controls first, so their jobs are due before the positive
	// control's.
	shipped, shippedEmail := s.placeOrder(t, admin) // did not opt in
	s.deliver(t, paidEvent(shipped), secret)
	post("/v1/admin/orders/"+shipped.Order.ID+"/fulfill", map[string]any{"trackingNumber": "1Z999AA10123456784"})
	stillScheduled(shipped.Order.ID)

	cancelled, cancelledEmail := s.placeOrder(t, admin)
	optIn(cancelledEmail)
	s.deliver(t, paidEvent(cancelled), secret)
	post("/v1/orders/"+cancelled.Order.ID+"/cancel", nil)
	stillScheduled(cancelled.Order.ID)

	refunded, refundedEmail := s.placeOrder(t, admin)
	optIn(refundedEmail)
	s.deliver(t, paidEvent(refunded), secret)
	post("/v1/admin/orders/"+refunded.Order.ID+"/refund", nil)
	stillScheduled(refunded.Order.ID)

	waiting, waitingEmail := s.placeOrder(t, admin) // opted in, never shipped
	optIn(waitingEmail)
	s.deliver(t, paidEvent(waiting), secret)

	// Positive controls.
	got := waitForTemplates(t, s, admin, waiting.Order.ID,
		notify.TemplateOrderConfirmation, notify.TemplateFulfillmentReminder, notify.TemplateReviewRequest)
	if r := got[notify.TemplateFulfillmentReminder]; r.Recipient != warehouse || !strings.Contains(r.Subject, waiting.Order.OrderNumber) {
		t.Errorf("reminder %+v: want it to %s naming %s", r, warehouse, waiting.Order.OrderNumber)
	}
	if r := got[notify.TemplateReviewRequest]; r.Recipient != waitingEmail || !strings.Contains(r.Subject, waiting.Order.OrderNumber) {
		t.Errorf("review request %+v: want it to %s naming %s", r, waitingEmail, waiting.Order.OrderNumber)
	}
	got = waitForTemplates(t, s, admin, shipped.Order.ID, notify.TemplateDeliveryConfirmation)
	if r := got[notify.TemplateDeliveryConfirmation]; r.Recipient != shippedEmail || !strings.Contains(r.Subject, shipped.Order.OrderNumber) {
		t.Errorf("delivery confirmation %+v: want it to %s naming %s", r, shippedEmail, shipped.Order.OrderNumber)
	}
	wantMail(t, box, warehouse, waiting.Order.OrderNumber, "still waiting to ship")
	wantMail(t, box, waitingEmail, waiting.Order.OrderNumber, "How was order")
	wantMail(t, box, shippedEmail, shipped.Order.OrderNumber, "arrived")

	// Negative controls: every follow-up job of these orders has run, and
	// wrote nothing.
	for _, id := range []string{shipped.Order.ID, cancelled.Order.ID, refunded.Order.ID} {
		waitFollowUpsDone(t, db, id)
	}
	for _, c := range []struct {
		name, id string
		want     []string
	}{
		{"shipped, not opted in", shipped.Order.ID, []string{notify.TemplateDeliveryConfirmation, notify.TemplateOrderConfirmation, notify.TemplateOrderShipped}},
		{"cancelled after payment", cancelled.Order.ID, []string{notify.TemplateOrderCancelled, notify.TemplateOrderConfirmation, notify.TemplateOrderRefunded}},
		{"fully refunded", refunded.Order.ID, []string{notify.TemplateOrderConfirmation, notify.TemplateOrderRefunded}},
	} {
		var names []string
		for _, n := range s.notificationsOf(t, admin, c.id) {
			names = append(names, n.Template)
		}
		sort.Strings(names)
		if !slices.Equal(names, c.want) {
			t.Errorf("%s order: notifications %v, want %v", c.name, names, c.want)
		}
	}
	if got := s.notificationsOf(t, admin, waiting.Order.ID); len(got) != 3 {
		t.Errorf("the waiting order has %d notifications, want 3 (each follow-up once)", len(got))
	}
}

// waitForTemplates waits until the order has a sent notification of each
// template and returns them by template.
func waitForTemplates(t *testing.T, s *server, admin, orderID string, templates ...string) map[string]listedNotification {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var list struct {
			Items []listedNotification `json:"items"`
		}
		if st := s.call(t, http.MethodGet, "/v1/admin/notifications?orderId="+orderID, admin, nil, &list); st != http.StatusOK {
			t.Fatalf("list notifications: %d", st)
		}
		sent := map[string]listedNotification{}
		for _, n := range list.Items {
			if n.Status == notify.StatusSent {
				sent[n.Template] = n
			}
		}
		missing := slices.DeleteFunc(slices.Clone(templates), func(tpl string) bool { _, ok := sent[tpl]; return ok })
		if len(missing) == 0 {
			return sent
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s: %v not sent within 30s; notifications %+v", orderID, missing, list.Items)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFollowUpsDone waits until the order has follow-up jobs and all of
// them have finished.
func waitFollowUpsDone(t *testing.T, db *sqlx.DB, orderID string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var total, open int
		if err := db.QueryRow(followUpJobsSQL, orderID).Scan(&total, &open); err != nil {
			t.Fatal(err)
		}
		if total > 0 && open == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s: %d follow-up jobs, %d not finished after 30s", orderID, total, open)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantMail fails unless the SMTP server received a message to to whose
// subject names the order and contains phrase.
func wantMail(t *testing.T, box *shoptest.Inbox, to, orderNumber, phrase string) {
	t.Helper()
	for _, raw := range box.Received() {
		m, err := mail.ReadMessage(strings.NewReader(raw))
		if err != nil {
			continue
		}
		subject := m.Header.Get("Subject")
		if strings.Contains(m.Header.Get("To"), to) && strings.Contains(subject, orderNumber) && strings.Contains(subject, phrase) {
			return
		}
	}
	t.Errorf("no email to %s about %s (%q) received", to, orderNumber, phrase)
}

// TestFollowUpConfig: the follow-up delays' defaults, overrides and
// refusals.
func TestFollowUpConfig(t *testing.T) {
	t.Parallel()
	c, err := LoadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.FulfillmentReminderAfter != 2*time.Hour || c.ReviewRequestAfter != 168*time.Hour || c.DeliveryFollowUpAfter != 72*time.Hour {
		t.Errorf("defaults: %v %v %v", c.FulfillmentReminderAfter, c.ReviewRequestAfter, c.DeliveryFollowUpAfter)
	}
	env := map[string]string{"FULFILLMENT_REMINDER_AFTER": "30m", "REVIEW_REQUEST_AFTER": "48h", "DELIVERY_FOLLOWUP_AFTER": "250ms"}
	if c, err = LoadConfig(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.FulfillmentReminderAfter != 30*time.Minute || c.ReviewRequestAfter != 48*time.Hour || c.DeliveryFollowUpAfter != 250*time.Millisecond {
		t.Errorf("overrides: %v %v %v", c.FulfillmentReminderAfter, c.ReviewRequestAfter, c.DeliveryFollowUpAfter)
	}
	for _, k := range []string{"FULFILLMENT_REMINDER_AFTER", "REVIEW_REQUEST_AFTER", "DELIVERY_FOLLOWUP_AFTER"} {
		for _, bad := range []string{"0s", "-1h", "soon"} {
			if _, err := LoadConfig(func(key string) string { return map[string]string{k: bad}[key] }); err == nil {
				t.Errorf("%s=%s accepted", k, bad)
			}
		}
	}
}
