package notify_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shopd/shopd/notify"
)

// TestSMTPURLs: the accepted SMTP_URL forms, and the refused ones named
// without their password.
func TestSMTPURLs(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"smtp://mail.example:2525", "smtp://user:pass@mail.example:587", "smtps://user:pass@mail.example", "smtp://mail.example"} {
		if _, err := notify.NewSMTPSender(ok, "shop@example.com"); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://user:hunter2@mail.example", "smtp://user:hunter2@mail.example:port", "mail.example:25", ""} {
		_, err := notify.NewSMTPSender(bad, "shop@example.com")
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the error shows the password: %v", bad, err)
		}
	}
}

// TestSMSProviderRefusal: a non-2xx answer from the SMS API is an error
// carrying the provider's status, so the send is retried.
func TestSMSProviderRefusal(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"code":21211,"message":"invalid To"}`, http.StatusBadRequest)
	}))
	defer srv.Close()
	s := &notify.SMSSender{APIURL: srv.URL, AccountSID: "AC1", AuthToken: "t", From: "+1"}
	err := s.Send(context.Background(), notify.Notification{ID: "n1", Channel: notify.ChannelSMS, Recipient: "+2", BodyText: "hi"})
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("send: %v, want the provider's 400", err)
	}
}
