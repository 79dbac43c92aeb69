package notify_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopd/shopd/notify"
	"github.com/shopd/shopd/store"
)

var byAdmin = store.Actor{Kind: store.ActorAdmin}

// TestOrderMessagesReachTheCustomer drives an order through payment,
// shipping and two partial refunds and checks what the SMTP server and
// the SMS endpoint received: recipients, the order number in every
// subject, both MIME parts, a Message-ID derived from the notification,
// the SMS form and its basic auth, and a customer-supplied name escaped
// in HTML.
func TestOrderMessagesReachTheCustomer(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	in := b.insts[0]
	ctx := context.Background()
	const evil = "<script>alert(1)</script>"
	userID, email := b.customer(t, evil, "+447700900123")
	o := b.order(t, in, userID)
	if err := in.svc.HandleEvent(ctx, succeeded(o, "evt_"+uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	if _, err := in.svc.Fulfill(ctx, o.ID, "TRACK-42", byAdmin); err != nil {
		t.Fatal(err)
	}
	for _, amount := range []int64{500, 700} {
		if _, err := in.svc.Refund(ctx, o.ID, amount, "", byAdmin); err != nil {
			t.Fatal(err)
		}
	}
	number := o.Number()
	wantTemplates := []string{notify.TemplateOrderConfirmation, notify.TemplateOrderShipped, notify.TemplateOrderShippedSMS,
		notify.TemplateOrderRefunded, notify.TemplateOrderRefunded}
	var rows []notify.Notification
	eventually(t, "5 messages sent", func() bool {
		rows = b.notifications(t, o.ID)
		sent := 0
		for _, n := range rows {
			if n.Status == notify.StatusSent {
				sent++
			}
		}
		return sent == len(wantTemplates) && len(b.mail.received()) == 4
	})
	if len(rows) != len(wantTemplates) {
		t.Fatalf("%d notifications, want %d", len(rows), len(wantTemplates))
	}
	byID := map[string]notify.Notification{}
	for i, n := range rows {
		if n.Template != wantTemplates[i] {
			t.Errorf("notification %d is %s, want %s", i, n.Template, wantTemplates[i])
		}
		if n.Attempts != 1 || n.SentAt == nil || n.LastError != nil {
			t.Errorf("%s: attempts %d, sentAt %v, lastError %v; want one clean attempt", n.Template, n.Attempts, n.SentAt, n.LastError)
		}
		if n.CustomerID == nil || *n.CustomerID != userID {
			t.Errorf("%s: customerId %v, want %s", n.Template, n.CustomerID, userID)
		}
		byID[n.ID] = n
	}

	for _, r := range b.mail.received() {
		m := parse(t, r)
		id := strings.TrimSuffix(strings.TrimPrefix(m.messageID, "<notification-"), "@shop.example>")
		n, ok := byID[id]
		if !ok {
			t.Fatalf("Message-ID %q names no notification of the order", m.messageID)
		}
		if m.to != email || r.from != mailFrom || !strings.Contains(m.from, mailFrom) {
			t.Errorf("%s: envelope %s -> %s, From %q; want %s -> %s", n.Template, r.from, m.to, m.from, mailFrom, email)
		}
		if !strings.Contains(m.subject, number) || m.subject != n.Subject {
			t.Errorf("%s: subject %q, want the stored one (%q) naming %s", n.Template, m.subject, n.Subject, number)
		}
		if !strings.Contains(m.text, number) || !strings.Contains(m.html, number) {
			t.Errorf("%s: a part lacks the order number\ntext: %s\nhtml: %s", n.Template, m.text, m.html)
		}
		if !strings.Contains(m.text, evil) {
			t.Errorf("%s: text part does not greet %q as it is: %s", n.Template, evil, m.text)
		}
		if strings.Contains(m.html, "<script>") || !strings.Contains(m.html, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s: HTML part does not escape the customer's name: %s", n.Template, m.html)
		}
		if !strings.Contains(m.html, storefront+"/orders/"+o.ID) {
			t.Errorf("%s: HTML part lacks the order link", n.Template)
		}
		if n.Template == notify.TemplateOrderConfirmation && (!strings.Contains(m.text, "2 x Teapot  30.00 USD") || !strings.Contains(m.html, "Teapot")) {
			t.Errorf("confirmation lacks its line (2 x Teapot, 30.00 USD):\ntext: %s\nhtml: %s", m.text, m.html)
		}
		if n.Template == notify.TemplateOrderShipped && !strings.Contains(m.text, "TRACK-42") {
			t.Errorf("shipping mail lacks the tracking number: %s", m.text)
		}
	}

	sms, auth := b.sms.messages()
	if len(sms) != 1 {
		t.Fatalf("%d SMS, want 1", len(sms))
	}
	if got := sms[0]; got.Get("To") != "+447700900123" || got.Get("From") != smsFrom ||
		!strings.Contains(got.Get("Body"), number) || !strings.Contains(got.Get("Body"), "TRACK-42") {
		t.Errorf("SMS %v: want To the profile's phone, From %s, a body with %s and the tracking number", got, smsFrom, number)
	}
	if auth[0] != smsSID+":"+smsToken {
		t.Errorf("SMS basic auth %q", auth[0])
	}
	counted(t, []*instance{in}, "shopd_notifications_sent_total", notify.TemplateOrderRefunded, notify.ChannelEmail, 2)
}
