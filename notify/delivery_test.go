package notify_test

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/notify"
	"github.com/shopd/shopd/payments"
)

// TestConfirmationExactlyOnce: the same payment_intent.succeeded delivered
// five times, three of them concurrently, and the same payment under
// other event ids, write one confirmation and send one email.
func TestConfirmationExactlyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	in := b.insts[0]
	ctx := context.Background()
	userID, _ := b.customer(t, "Ada", "")
	o := b.order(t, in, userID)
	ev := succeeded(o, "evt_"+uuid.NewString())
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := in.svc.HandleEvent(ctx, ev); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, e := range []payments.Event{ev, ev, succeeded(o, "evt_"+uuid.NewString()), succeeded(o, "evt_"+uuid.NewString())} {
		if err := in.svc.HandleEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	rows := b.notifications(t, o.ID)
	if len(rows) != 1 || rows[0].Template != notify.TemplateOrderConfirmation {
		t.Fatalf("notifications %+v, want one order-confirmation", rows)
	}
	b.settled(t, rows[0].ID)
	// One more job would have run by the time a later one does: send a
	// second order's confirmation and wait for it before counting.
	o2 := b.order(t, in, userID)
	if err := in.svc.HandleEvent(ctx, succeeded(o2, "evt_"+uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	b.settled(t, b.notifications(t, o2.ID)[0].ID)
	if got := len(b.mail.received()); got != 2 {
		t.Fatalf("%d emails for two paid orders, want 2", got)
	}
}

// TestTwoInstancesSendEachMessageOnce: two instances on one database, each
// with its job client, take the same webhooks; every message is sent
// once.
func TestTwoInstancesSendEachMessageOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, options{instances: 2})
	ctx := context.Background()
	userID, _ := b.customer(t, "Ada", "")
	const n = 6
	var ids []string
	for i := range n {
		o := b.order(t, b.insts[i%2], userID)
		ev := succeeded(o, "evt_"+uuid.NewString())
		var wg sync.WaitGroup
		for _, in := range b.insts {
			wg.Go(func() {
				if err := in.svc.HandleEvent(ctx, ev); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		rows := b.notifications(t, o.ID)
		if len(rows) != 1 {
			t.Fatalf("order %d: %d notifications, want 1", i, len(rows))
		}
		ids = append(ids, rows[0].ID)
	}
	for _, id := range ids {
		if got := b.settled(t, id); got.Status != notify.StatusSent || got.Attempts != 1 {
			t.Errorf("notification %s: %s after %d attempts, want sent after 1", id, got.Status, got.Attempts)
		}
	}
	seen := map[string]int{}
	for _, r := range b.mail.received() {
		seen[parse(t, r).messageID]++
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s received %d times", id, c)
		}
	}
	counted(t, b.insts, "shopd_notifications_sent_total", notify.TemplateOrderConfirmation, notify.ChannelEmail, n)
}

// TestRetriedUntilSent: the SMTP server refuses the first three attempts;
// the fourth delivers, with the same Message-ID a first success would
// have had, and attempts is 4.
func TestRetriedUntilSent(t *testing.T) {
	t.Parallel()
	b := setup(t, options{maxAttempts: 8})
	in := b.insts[0]
	b.mail.setRefuse(3)
	userID, _ := b.customer(t, "Ada", "")
	o := b.order(t, in, userID)
	if err := in.svc.HandleEvent(context.Background(), succeeded(o, "evt_"+uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	id := b.notifications(t, o.ID)[0].ID
	got := b.settled(t, id)
	if got.Status != notify.StatusSent || got.Attempts != 4 || got.LastError != nil {
		t.Fatalf("%s after %d attempts (last error %v), want sent after 4", got.Status, got.Attempts, got.LastError)
	}
	msgs := b.mail.received()
	if len(msgs) != 1 {
		t.Fatalf("%d emails, want 1", len(msgs))
	}
	if m := parse(t, msgs[0]); m.messageID != "<notification-"+id+"@shop.example>" {
		t.Errorf("Message-ID %s, want one derived from %s", m.messageID, id)
	}
}

// TestFailedForGoodThenRetriedByAdmin: with the SMTP server refusing
// everything, the webhook still answers and the order is paid; the
// notification fails after NOTIFY_MAX_ATTEMPTS with the last error and is
// counted failed; an admin retry once the server is back sends it, and
// retrying a sent one is a conflict.
func TestFailedForGoodThenRetriedByAdmin(t *testing.T) {
	t.Parallel()
	b := setup(t, options{maxAttempts: 3})
	in := b.insts[0]
	ctx := context.Background()
	b.mail.setRefuse(-1)
	userID, _ := b.customer(t, "Ada", "")
	o := b.order(t, in, userID)
	if err := in.svc.HandleEvent(ctx, succeeded(o, "evt_"+uuid.NewString())); err != nil {
		t.Fatalf("webhook failed with the mail server down: %v", err)
	}
	if paid, err := b.st.Order(ctx, o.ID); err != nil || paid.PaymentStatus != shopd.PaymentPaid {
		t.Fatalf("order %s (%v), want paid", paid.PaymentStatus, err)
	}
	id := b.notifications(t, o.ID)[0].ID
	got := b.settled(t, id)
	if got.Status != notify.StatusFailed || got.Attempts != 3 || got.LastError == nil {
		t.Fatalf("%s after %d attempts (last error %v), want failed after 3 with an error", got.Status, got.Attempts, got.LastError)
	}
	counted(t, b.insts, "shopd_notifications_failed_total", notify.TemplateOrderConfirmation, notify.ChannelEmail, 1)

	b.mail.setRefuse(0)
	requeued, err := in.outbox.Retry(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if requeued.Status != notify.StatusPending {
		t.Errorf("retried notification is %s, want pending", requeued.Status)
	}
	got = b.settled(t, id)
	if got.Status != notify.StatusSent || got.Attempts != 4 || len(b.mail.received()) != 1 {
		t.Fatalf("after the retry: %s, %d attempts, %d emails; want sent, 4, 1", got.Status, got.Attempts, len(b.mail.received()))
	}
	if _, err := in.outbox.Retry(ctx, id); shopd.ErrorCode(err) != shopd.EConflict {
		t.Errorf("retry of a sent notification: %v, want a conflict", err)
	}
	if _, err := in.outbox.Retry(ctx, uuid.NewString()); shopd.ErrorCode(err) != shopd.ENotFound {
		t.Errorf("retry of an unknown notification: %v, want not found", err)
	}
}

// TestWebhookDoesNotWaitForMail: a mail server that accepts connections
// and never answers holds the send job, not the webhook: the event is
// applied and answered while the job is connected to it. Stopping the job
// client ends the stuck send (setup's cleanup fails the test when the
// stop times out).
func TestWebhookDoesNotWaitForMail(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	connected := make(chan struct{}, 16)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, silent
			mu.Unlock()
			connected <- struct{}{}
		}
	}()
	// Closed after the job client stops (cleanups run last first): the
	// stop must end the stuck send itself.
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	b := setup(t, options{smtpURL: "smtp://" + ln.Addr().String()})
	in := b.insts[0]
	userID, _ := b.customer(t, "Ada", "")
	o := b.order(t, in, userID)
	select {
	case <-connected:
		t.Fatal("the mail server was contacted before the payment arrived")
	default:
	}
	if err := in.svc.HandleEvent(context.Background(), succeeded(o, "evt_"+uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	<-connected // the job is now stuck on the silent server
	paid, err := b.st.Order(context.Background(), o.ID)
	if err != nil || paid.PaymentStatus != shopd.PaymentPaid {
		t.Fatalf("order %s (%v), want paid while the mail hangs", paid.PaymentStatus, err)
	}
	if rows := b.notifications(t, o.ID); len(rows) != 1 || rows[0].Status != notify.StatusPending || rows[0].Attempts != 1 {
		t.Fatalf("notifications %+v, want one pending in its first attempt", rows)
	}
}
