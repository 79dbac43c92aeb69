package notify_test

import (
	"context"
	"strings"
	"testing"

	"github.com/shopd/shopd/notify"
)

// TestSMTPPasswordNeverInClear: SMTP_URL's password is only sent over an
// encrypted connection. A server that offers no STARTTLS and only AUTH
// PLAIN gets no login attempt and no message: the send fails (and is
// retried) instead of leaking the password.
func TestSMTPPasswordNeverInClear(t *testing.T) {
	t.Parallel()
	srv := newMailServerWithAuth(t, "shop", "s3cret")
	sender, err := notify.NewSMTPSender("smtp://shop:s3cret@"+strings.TrimPrefix(srv.url, "smtp://"), mailFrom)
	if err != nil {
		t.Fatal(err)
	}
	n := notify.Notification{ID: "6b1f0c2e-0000-4000-8000-000000000001", Channel: notify.ChannelEmail,
		Recipient: "ada@example.com", Subject: "Order ORD-000001 confirmed", BodyText: "Hello", BodyHTML: "<p>Hello</p>"}
	if err := sender.Send(context.Background(), n); err == nil {
		t.Fatal("sent after logging in over a plain connection")
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.logins != 0 || len(srv.msgs) != 0 {
		t.Errorf("%d login attempts and %d messages over a plain connection, want none", srv.logins, len(srv.msgs))
	}
}
