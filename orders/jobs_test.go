package orders_test

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/jobs"
	"github.com/shopd/shopd/orders"
	"github.com/shopd/shopd/payments"
	"github.com/shopd/shopd/store"
)

// Delays of the workflows in these tests: milliseconds, not minutes. The
// payment window leaves a test time to pay or cancel an order it has just
// placed before its expiry can run, even on a busy machine.
const (
	testWindow      = 2 * time.Second
	testPoll        = 20 * time.Millisecond
	testResumeAfter = 150 * time.Millisecond
	testRefundAfter = 150 * time.Millisecond
	testRecheck     = 50 * time.Millisecond
)

// instance is one server's money path with its own job client, on the
// env's database and Stripe double.
type instance struct {
	svc    *orders.Service
	client *jobs.Client
}

// instanceOpts adjust an instance before its client is built.
type instanceOpts struct {
	window      time.Duration // PaymentWindow (0: testWindow)
	stopTimeout time.Duration
	noStart     bool
}

// newInstance builds a service and a River client the way the server
// does (workers registered on the service, the service inserting with the
// client) and starts the client; it is stopped at cleanup.
func (b *testBundle) newInstance(t *testing.T, o instanceOpts) *instance {
	t.Helper()
	window := testWindow
	if o.window > 0 {
		window = o.window
	}
	svc := &orders.Service{
		Store:               b.store,
		Payments:            payments.New(payments.Config{SecretKey: "sk_test_x", APIBase: b.fake.URL, MaxNetworkRetries: -1}),
		Pricing:             shopd.DefaultPricing,
		PaymentWindow:       window,
		Log:                 testLog(),
		Now:                 b.clock.Now,
		ResumeCheckoutAfter: testResumeAfter,
		RefundRetryAfter:    testRefundAfter,
		PaymentRecheckAfter: testRecheck,
		AfterPhase:          b.svc.AfterPhase,
	}
	workers := river.NewWorkers()
	if err := orders.AddWorkers(workers, svc); err != nil {
		t.Fatal(err)
	}
	c, err := jobs.New(b.store.DB().DB, jobs.Config{
		PollInterval: testPoll, Workers: workers, Kinds: orders.JobKinds(),
		StopTimeout: o.stopTimeout, TestOnly: true, Log: testLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Jobs = c
	in := &instance{svc: svc, client: c}
	if !o.noStart {
		in.start(t)
	}
	return in
}

// start starts the instance's client; it is stopped at cleanup, before
// the database goes.
func (in *instance) start(t *testing.T) {
	t.Helper()
	if err := in.client.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := jobs.Stop(ctx, in.client); err != nil {
			t.Errorf("stop job client: %v", err)
		}
	})
}

// testLog shows the service's and River's logs with SHOPD_TEST_LOG set.
func testLog() *slog.Logger {
	if os.Getenv("SHOPD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// placedOn is a checked-out order placed through the instance.
func (b *testBundle) placedOn(t *testing.T, in *instance, p store.Product, qty int) store.Order {
	t.Helper()
	userID := shoptest.User(context.Background(), t, b.store, nil).ID
	if _, err := b.store.AddToCart(context.Background(), userID, p.ID, qty); err != nil {
		t.Fatal(err)
	}
	addr := []byte(`{"firstName":"Ada","lastName":"Lovelace","line1":"1 Road","city":"London","postalCode":"N1","country":"GB"}`)
	placed, err := in.svc.Checkout(context.Background(), orders.CheckoutRequest{
		UserID: userID, Key: "key-" + uuid.NewString(), RequestHash: "h", ShippingAddress: addr, BillingAddress: addr,
	})
	if err != nil {
		t.Fatalf("checkout: %v", err)
	}
	return placed.Order
}

// jobRow is what the tests read of a river_job row.
type jobRow struct {
	ID          int64     `db:"id"`
	State       string    `db:"state"`
	Attempt     int       `db:"attempt"`
	ScheduledAt time.Time `db:"scheduled_at"`
}

// jobsOf are the jobs of kind whose args field key equals value, oldest first.
func (b *testBundle) jobsOf(t *testing.T, kind, key, value string) []jobRow {
	t.Helper()
	var rows []jobRow
	err := b.store.DB().Select(&rows, `
		SELECT id, state, attempt, scheduled_at
		FROM river_job
		WHERE kind = $1
			AND args->>$2 = $3
		ORDER BY id`, kind, key, value)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// eventually fails the test unless cond holds within 30 s, checking every
// 10 ms; what says what was waited for. Jobs scheduled for later are made
// available by River's scheduler on the leader, every 5 s (not
// configurable), so a scheduled job runs up to about 5 s after its time;
// the deadline leaves room for that on a busy machine.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventTypes are the order's event types, oldest first.
func (b *testBundle) eventTypes(t *testing.T, orderID string) []string {
	t.Helper()
	var types []string
	if err := b.store.DB().Select(&types, `SELECT type FROM order_events WHERE order_id = $1 ORDER BY id`, orderID); err != nil {
		t.Fatal(err)
	}
	return types
}

func count(xs []string, x string) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

// paidAfterCancelOn cancels an unpaid order as its owner, then delivers,
// through the instance, the payment Stripe took anyway (event eventID).
func (b *testBundle) paidAfterCancelOn(t *testing.T, in *instance, o store.Order, eventID string) {
	t.Helper()
	ctx := context.Background()
	if _, err := in.svc.Cancel(ctx, o.ID, store.Actor{Kind: store.ActorCustomer, ID: o.CustomerID}, ""); err != nil {
		t.Fatal(err)
	}
	b.fake.SetIntentStatus(*o.PaymentIntentID, "succeeded")
	b.deliverPayment(t, in, o, eventID)
}

// deliverPayment hands the instance a payment_intent.succeeded for o.
func (b *testBundle) deliverPayment(t *testing.T, in *instance, o store.Order, eventID string) {
	t.Helper()
	err := in.svc.HandleEvent(context.Background(), payments.Event{
		ID: eventID, Type: "payment_intent.succeeded",
		PaymentIntent: &payments.PaymentIntentEvent{ID: *o.PaymentIntentID, OrderID: o.ID, Currency: o.Currency,
			Status: "succeeded", AmountCents: o.TotalCents},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestExpireOrderJob: the checkout's order transaction schedules the
// expiry at payment_due_at; it cancels the unpaid order, releases its
// stock and cancels its intent at Stripe, and leaves alone an order paid
// before its window closed.
func TestExpireOrderJob(t *testing.T) {
	t.Parallel()
	_, bundle := setup(t)
	in := bundle.newInstance(t, instanceOpts{})
	p := bundle.product(t, 1000, 10)
	unpaid := bundle.placedOn(t, in, p, 2)
	paid := bundle.placedOn(t, in, p, 3)

	jobs := bundle.jobsOf(t, orders.KindExpireOrder, "order_id", unpaid.ID)
	if len(jobs) != 1 || !jobs[0].ScheduledAt.Equal(unpaid.PaymentDueAt) {
		t.Fatalf("expire jobs of the order = %+v, want one at its due time %s", jobs, unpaid.PaymentDueAt)
	}
	bundle.pay(t, paid)

	eventually(t, "the unpaid order to expire", func() bool { return bundle.order(t, unpaid.ID).Status == shopd.StatusCancelled })
	eventually(t, "both expire jobs to complete", func() bool {
		a, b := bundle.jobsOf(t, orders.KindExpireOrder, "order_id", unpaid.ID), bundle.jobsOf(t, orders.KindExpireOrder, "order_id", paid.ID)
		return len(a) == 1 && a[0].State == "completed" && len(b) == 1 && b[0].State == "completed"
	})
	if got := bundle.stock(t, p.ID); got != 7 {
		t.Errorf("stock = %d, want 7 (2 released, 3 sold)", got)
	}
	if in, _ := bundle.fake.Intent(*unpaid.PaymentIntentID); in.Status != "canceled" {
		t.Errorf("intent of the expired order is %q at Stripe, want canceled", in.Status)
	}
	if got := bundle.order(t, paid.ID); got.Status == shopd.StatusCancelled || got.PaymentStatus != shopd.PaymentPaid {
		t.Errorf("order paid in time = %s/%s after its expiry job, want paid, not cancelled", got.Status, got.PaymentStatus)
	}
	if types := bundle.eventTypes(t, paid.ID); count(types, shopd.EventCancelled) != 0 {
		t.Errorf("paid order's events = %v, want no cancellation", types)
	}
}

// TestJobsRollBackWithTheirCause: a checkout refused inside its order
// transaction (a total no payment can take) leaves no order and no jobs.
func TestJobsRollBackWithTheirCause(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	in := b.newInstance(t, instanceOpts{noStart: true})
	in.svc.MaxChargeCents = 100
	userID := shoptest.User(context.Background(), t, b.store, nil).ID
	p := b.product(t, 1000, 10)
	if _, err := b.store.AddToCart(context.Background(), userID, p.ID, 1); err != nil {
		t.Fatal(err)
	}
	_, err := in.svc.Checkout(context.Background(), orders.CheckoutRequest{UserID: userID, Key: "k", RequestHash: "h",
		ShippingAddress: []byte(`{}`), BillingAddress: []byte(`{}`)})
	if shopd.ErrorCode(err) != shopd.EPaymentRefused {
		t.Fatalf("checkout over the limit: %v, want payment refused", err)
	}
	var n int
	if err := b.store.DB().Get(&n, `SELECT count(*) FROM river_job`); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("jobs after a rolled-back order transaction = %d, want 0", n)
	}
	// The same path committed inserts both jobs: the count above could fail.
	in.svc.MaxChargeCents = 0
	o := b.placedOn(t, in, p, 1)
	if len(b.jobsOf(t, orders.KindExpireOrder, "order_id", o.ID)) != 1 {
		t.Errorf("no expire job for a committed order")
	}
	if err := b.store.DB().Get(&n, `SELECT count(*) FROM river_job WHERE kind = $1`, orders.KindResumeCheckout); err != nil || n != 1 {
		t.Errorf("resume jobs = %d (%v), want 1", n, err)
	}
}

// TestExpiryWaitsForProcessingPayment: an overdue order whose payment
// Stripe is still processing is not dropped: the job snoozes and, once
// the payment succeeded, applies it instead of expiring the order.
func TestExpiryWaitsForProcessingPayment(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	in := b.newInstance(t, instanceOpts{})
	p := b.product(t, 1000, 10)
	o := b.placedOn(t, in, p, 1)
	b.fake.SetIntentStatus(*o.PaymentIntentID, "processing")

	eventually(t, "the expiry to see the processing payment", func() bool {
		return b.fake.Calls("GET", "/v1/payment_intents/"+*o.PaymentIntentID) >= 2
	})
	if got := b.order(t, o.ID); got.Status != shopd.StatusPending {
		t.Fatalf("order with a payment in progress = %s, want pending", got.Status)
	}
	if js := b.jobsOf(t, orders.KindExpireOrder, "order_id", o.ID); len(js) != 1 || js[0].State == "completed" {
		t.Fatalf("expire job = %+v, want one, still to run again", js)
	}
	b.fake.SetIntentStatus(*o.PaymentIntentID, "succeeded")
	eventually(t, "the payment to be applied", func() bool { return b.order(t, o.ID).PaymentStatus == shopd.PaymentPaid })
	if got := b.order(t, o.ID); got.Status == shopd.StatusCancelled {
		t.Errorf("order = %s, want paid, not cancelled", got.Status)
	}
	if got := b.stock(t, p.ID); got != 9 {
		t.Errorf("stock = %d, want 9", got)
	}
}

// TestResumeCheckoutJob: a checkout whose process died after the order
// transaction is finished by its resume job (the intent created, the key
// answered); one that finished by itself is left alone.
func TestResumeCheckoutJob(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	// A long window: the expiry must not cancel the stuck order first.
	in := b.newInstance(t, instanceOpts{window: time.Hour})
	p := b.product(t, 1000, 10)
	done := b.placedOn(t, in, p, 1)

	b.crash.Arm(store.PointOrderCreated, 1)
	userID := shoptest.User(context.Background(), t, b.store, nil).ID
	if _, err := b.store.AddToCart(context.Background(), userID, p.ID, 1); err != nil {
		t.Fatal(err)
	}
	_, err := in.svc.Checkout(context.Background(), orders.CheckoutRequest{UserID: userID, Key: "k", RequestHash: "h",
		ShippingAddress: []byte(`{}`), BillingAddress: []byte(`{}`)})
	if err == nil {
		t.Fatal("checkout did not crash")
	}
	stuck := b.orderOf(t, userID)
	if stuck.PaymentIntentID != nil {
		t.Fatalf("crashed checkout has intent %s", *stuck.PaymentIntentID)
	}
	keyPoint := func() string {
		var point string
		if err := b.store.DB().Get(&point, `SELECT recovery_point FROM idempotency_keys WHERE user_id = $1`, userID); err != nil {
			t.Fatal(err)
		}
		return point
	}
	eventually(t, "the stuck checkout to be finished", func() bool { return keyPoint() == store.PointFinished })
	if got := b.order(t, stuck.ID); got.PaymentIntentID == nil {
		t.Errorf("resumed order has no intent")
	}
	eventually(t, "both resume jobs to complete", func() bool {
		var n int
		_ = b.store.DB().Get(&n, `SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'`, orders.KindResumeCheckout)
		return n == 2
	})
	if got := len(b.fake.IntentsForOrder(done.ID)); got != 1 {
		t.Errorf("intents of the finished checkout = %d, want 1 (its resume job did nothing)", got)
	}
	if got := len(b.fake.IntentsForOrder(stuck.ID)); got != 1 {
		t.Errorf("intents of the resumed checkout = %d, want 1", got)
	}
}

// TestSettleRefundJob: Stripe refunded but its answer was lost; the refund
// row's settle job, enqueued with it, asks again with the same key and
// records the one refund. A refund that was answered is left alone.
func TestSettleRefundJob(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	in := b.newInstance(t, instanceOpts{})
	ctx := context.Background()
	o := b.pay(t, b.placedOn(t, in, b.product(t, 5000, 5), 1))

	if _, err := in.svc.Refund(ctx, o.ID, 500, "", admin); err != nil {
		t.Fatalf("answered refund: %v", err)
	}
	b.fake.LoseNextResponse("/v1/refunds", 1)
	if _, err := in.svc.Refund(ctx, o.ID, 1000, "", admin); shopd.ErrorCode(err) != shopd.EUnavailable {
		t.Fatalf("refund with a lost answer: %v, want unavailable", err)
	}
	eventually(t, "the lost refund to be settled", func() bool {
		rs := b.refunds(t, o.ID)
		return len(rs) == 2 && rs[1].Status == "succeeded"
	})
	rs := b.refunds(t, o.ID)
	for _, r := range rs {
		eventually(t, "settle job of refund "+r.ID, func() bool {
			js := b.jobsOf(t, orders.KindSettleRefund, "refund_id", r.ID)
			return len(js) == 1 && js[0].State == "completed"
		})
	}
	if calls := b.fake.Calls("POST", "/v1/refunds"); calls != 3 {
		t.Errorf("refund calls at Stripe = %d, want 3 (one answered, one lost, its one retry)", calls)
	}
	fake := b.fake.Refunds()
	if len(fake) != 2 || fake[1].IdempotencyKey != "refund-"+rs[1].ID {
		t.Errorf("Stripe refunds = %+v, want two, the second under refund-%s", fake, rs[1].ID)
	}
	if got := b.order(t, o.ID); got.RefundedCents != 1500 {
		t.Errorf("refunded = %d, want 1500", got.RefundedCents)
	}
}

// TestRefundCancelledOrderJob: money that arrives for a cancelled order is
// refunded by a job enqueued with the event; the webhook does not wait for
// Stripe's refund, and the order ends refunded once.
func TestRefundCancelledOrderJob(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	in := b.newInstance(t, instanceOpts{})
	o := b.placedOn(t, in, b.product(t, 1000, 10), 1)
	b.paidAfterCancelOn(t, in, o, "evt_"+uuid.NewString())

	eventually(t, "the cancelled order to be refunded", func() bool {
		return b.order(t, o.ID).PaymentStatus == shopd.PaymentRefunded
	})
	eventually(t, "the refund job to complete", func() bool {
		js := b.jobsOf(t, orders.KindRefundCancelledOrder, "order_id", o.ID)
		return len(js) == 1 && js[0].State == "completed"
	})
	// Enqueued again (as the sweep might), it finds nothing left to refund.
	if res, err := in.client.Insert(context.Background(), orders.RefundCancelledOrderArgs{OrderID: o.ID}, nil); err != nil || res.UniqueSkippedAsDuplicate {
		t.Fatalf("enqueue again: %+v, %v", res, err)
	}
	eventually(t, "the repeat to complete", func() bool {
		js := b.jobsOf(t, orders.KindRefundCancelledOrder, "order_id", o.ID)
		return len(js) == 2 && js[1].State == "completed"
	})
	if n := b.fake.Calls("POST", "/v1/refunds"); n != 1 {
		t.Errorf("refund calls at Stripe = %d, want 1", n)
	}
	if got := b.order(t, o.ID); got.RefundedCents != got.TotalCents || got.Status != shopd.StatusCancelled {
		t.Errorf("order = %s/%s refunded %d of %d", got.Status, got.PaymentStatus, got.RefundedCents, got.TotalCents)
	}
}

// TestJobsExactlyOnceAcrossInstances: two instances, each with its own
// job client, on one database. Orders placed through either expire once
// each (one cancelled event, their stock released once); payments for
// cancelled orders, delivered to both instances and enqueued by both, are
// refunded once each at Stripe.
func TestJobsExactlyOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	_, bundle := setup(t)
	a, b := bundle.newInstance(t, instanceOpts{}), bundle.newInstance(t, instanceOpts{})
	const n = 8
	p := bundle.product(t, 1000, 100)
	var expiring []store.Order
	for i := range n {
		on := a
		if i%2 == 1 {
			on = b
		}
		expiring = append(expiring, bundle.placedOn(t, on, p, 2))
	}
	var refunding []store.Order
	for range n / 2 {
		o := bundle.placedOn(t, a, p, 1)
		bundle.paidAfterCancelOn(t, a, o, "evt_"+uuid.NewString())
		refunding = append(refunding, o)
	}
	// The same orders, as both instances' sweeps and a redelivered event
	// would have them: every path to a second refund at once.
	var wg sync.WaitGroup
	for _, o := range refunding {
		for _, in := range []*instance{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := in.client.Insert(context.Background(), orders.RefundCancelledOrderArgs{OrderID: o.ID}, nil); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	eventually(t, "every order to expire", func() bool {
		for _, o := range expiring {
			if bundle.order(t, o.ID).Status != shopd.StatusCancelled {
				return false
			}
		}
		return true
	})
	eventually(t, "every cancelled order to be refunded", func() bool {
		for _, o := range refunding {
			if bundle.order(t, o.ID).PaymentStatus != shopd.PaymentRefunded {
				return false
			}
		}
		return true
	})
	// Let every job still queued run out before counting.
	eventually(t, "the queue to drain", func() bool {
		var left int
		_ = bundle.store.DB().Get(&left, `SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'discarded', 'cancelled')
			AND kind <> $1`, orders.KindResumeCheckout)
		return left == 0
	})
	for _, o := range expiring {
		if types := bundle.eventTypes(t, o.ID); count(types, shopd.EventCancelled) != 1 {
			t.Errorf("order %s events = %v, want one cancellation", o.ID, types)
		}
		var releases int
		if err := bundle.store.DB().Get(&releases, `SELECT count(*) FROM inventory_transactions WHERE reference_id = $1 AND type = 'release'`, o.ID); err != nil {
			t.Fatal(err)
		}
		if releases != 1 {
			t.Errorf("order %s stock releases = %d, want 1", o.ID, releases)
		}
	}
	if got := bundle.stock(t, p.ID); got != 100 {
		t.Errorf("stock = %d, want 100 (every order released once)", got)
	}
	if calls, refunds := bundle.fake.Calls("POST", "/v1/refunds"), len(bundle.fake.Refunds()); calls != n/2 || refunds != n/2 {
		t.Errorf("refund calls at Stripe = %d, refunds = %d, want %d each", calls, refunds, n/2)
	}
	keys := map[string]int{}
	for _, r := range bundle.fake.Refunds() {
		keys[r.IdempotencyKey]++
	}
	if len(keys) != n/2 {
		t.Errorf("refund idempotency keys = %v, want %d distinct", keys, n/2)
	}
}

// TestJobRunsAfterCrash: a job committed with its cause survives its
// client: stopped before the job was due, nothing runs it; a client
// started later (another instance, or this one restarted) does.
func TestJobRunsAfterCrash(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	first := b.newInstance(t, instanceOpts{noStart: true})
	p := b.product(t, 1000, 10)
	o := b.placedOn(t, first, p, 4)
	// The only client that could have run the job never ran: wait past
	// the due time and check nothing happened.
	time.Sleep(2 * testWindow)
	if got := b.order(t, o.ID); got.Status != shopd.StatusPending {
		t.Fatalf("order = %s with no client running, want pending", got.Status)
	}
	if js := b.jobsOf(t, orders.KindExpireOrder, "order_id", o.ID); len(js) != 1 || js[0].State != "scheduled" {
		t.Fatalf("expire job = %+v, want one still scheduled", js)
	}
	b.newInstance(t, instanceOpts{})
	eventually(t, "the new client to expire the order", func() bool { return b.order(t, o.ID).Status == shopd.StatusCancelled })
	if got := b.stock(t, p.ID); got != 10 {
		t.Errorf("stock = %d, want 10", got)
	}
}

// TestStopWaitsForRunningJob: stopping a client lets the job it runs
// finish (a refund Stripe is slow to answer); a job still running when the
// stop timeout ends is cancelled, stays pending, and is finished by a
// later client.
func TestStopWaitsForRunningJob(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	ctx := context.Background()
	// Long windows: only refunds are at stake here.
	in := b.newInstance(t, instanceOpts{window: time.Hour, stopTimeout: 5 * time.Second})
	o := b.placedOn(t, in, b.product(t, 1000, 10), 1)
	b.fake.SetLatency(300 * time.Millisecond)
	b.paidAfterCancelOn(t, in, o, "evt_"+uuid.NewString())
	eventually(t, "the refund job to start", func() bool {
		js := b.jobsOf(t, orders.KindRefundCancelledOrder, "order_id", o.ID)
		return len(js) == 1 && js[0].State == "running"
	})
	if err := jobs.Stop(ctx, in.client); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// Stop returned: the refund is done, nothing of it still running.
	if got := b.order(t, o.ID); got.PaymentStatus != shopd.PaymentRefunded {
		t.Errorf("after stop: order %s, want refunded", got.PaymentStatus)
	}
	if rs := b.refunds(t, o.ID); len(rs) != 1 || rs[0].Status != "succeeded" {
		t.Errorf("refund rows = %+v, want one succeeded", rs)
	}

	// Bounded: a Stripe that never answers in time.
	impatient := b.newInstance(t, instanceOpts{window: time.Hour, stopTimeout: 100 * time.Millisecond})
	b.fake.SetLatency(0)
	o2 := b.placedOn(t, impatient, b.product(t, 1000, 10), 1)
	b.fake.SetLatency(time.Minute)
	b.paidAfterCancelOn(t, impatient, o2, "evt_"+uuid.NewString())
	eventually(t, "the second refund to reach Stripe", func() bool { return b.fake.Calls("POST", "/v1/refunds") == 2 })
	if err := jobs.Stop(ctx, impatient.client); err != nil {
		t.Fatalf("stop with a stuck job: %v", err)
	}
	if rs := b.refunds(t, o2.ID); len(rs) != 1 || rs[0].Status != "pending" {
		t.Fatalf("refund rows = %+v, want one left pending", rs)
	}
	b.fake.SetLatency(0)
	b.newInstance(t, instanceOpts{window: time.Hour})
	eventually(t, "a later client to settle the refund", func() bool {
		return b.order(t, o2.ID).PaymentStatus == shopd.PaymentRefunded
	})
	if n := len(b.fake.Refunds()); n != 2 {
		t.Errorf("refunds at Stripe = %d, want 2 (one per order)", n)
	}
}

// TestSweepCoversOrdersWithoutJobs: orders from before jobs existed (placed
// by a service with no job inserter) are found by the sweep, which
// enqueues their expiry; purge runs as its own job.
func TestSweepCoversOrdersWithoutJobs(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	svc.PaymentWindow = testWindow
	p := b.product(t, 1000, 10)
	old := b.placed(t, p, 3) // svc has no job inserter
	var n int
	if err := b.store.DB().Get(&n, `SELECT count(*) FROM river_job`); err != nil || n != 0 {
		t.Fatalf("jobs for an order placed without a job client = %d (%v), want 0", n, err)
	}
	in := b.newInstance(t, instanceOpts{})
	time.Sleep(testWindow) // overdue now
	if _, err := in.client.Insert(context.Background(), orders.SweepArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the swept order to expire", func() bool { return b.order(t, old.ID).Status == shopd.StatusCancelled })
	if js := b.jobsOf(t, orders.KindExpireOrder, "order_id", old.ID); len(js) != 1 {
		t.Errorf("expire jobs = %+v, want the one the sweep enqueued", js)
	}
	if got := b.stock(t, p.ID); got != 10 {
		t.Errorf("stock = %d, want 10", got)
	}
}

// TestRefundJobsOnlyWithTheirCause: a refund refused under the order's
// lock leaves no settle job, one begun has exactly one; a redelivered
// payment event for a cancelled order enqueues no second refund job.
func TestRefundJobsOnlyWithTheirCause(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	in := b.newInstance(t, instanceOpts{window: time.Hour, noStart: true})
	ctx := context.Background()
	p := b.product(t, 1000, 10)
	paid := b.placedOn(t, in, p, 1)
	b.deliverPayment(t, in, paid, "evt_"+uuid.NewString())
	settleJobs := func() int {
		var n int
		if err := b.store.DB().Get(&n, `SELECT count(*) FROM river_job WHERE kind = $1`, orders.KindSettleRefund); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := in.svc.Refund(ctx, paid.ID, paid.TotalCents+1, "", admin); shopd.ErrorCode(err) != shopd.EInvalidTransition {
		t.Fatalf("refund of more than was paid: %v, want invalid transition", err)
	}
	if n := settleJobs(); n != 0 {
		t.Errorf("settle jobs after a refused refund = %d, want 0", n)
	}
	if _, err := in.svc.Refund(ctx, paid.ID, 100, "", admin); err != nil {
		t.Fatal(err)
	}
	if n := settleJobs(); n != 1 {
		t.Errorf("settle jobs after a refund = %d, want 1", n)
	}

	cancelled := b.placedOn(t, in, p, 1)
	evt := "evt_" + uuid.NewString()
	b.paidAfterCancelOn(t, in, cancelled, evt)
	b.deliverPayment(t, in, cancelled, evt) // Stripe delivers again
	if js := b.jobsOf(t, orders.KindRefundCancelledOrder, "order_id", cancelled.ID); len(js) != 1 {
		t.Errorf("refund jobs = %+v, want 1", js)
	}
	if js := b.jobsOf(t, orders.KindRefundCancelledOrder, "order_id", paid.ID); len(js) != 0 {
		t.Errorf("refund jobs for an order paid in time = %+v, want none", js)
	}
}

// TestPurgeKeysJob: the purge job deletes a finished key past its
// retention and keeps a younger one.
func TestPurgeKeysJob(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	b.store.Now = b.clock.Now
	in := b.newInstance(t, instanceOpts{window: 48 * time.Hour})
	p := b.product(t, 1000, 10)
	old := b.placedOn(t, in, p, 1)
	b.clock.Advance(orders.KeyRetention + time.Minute)
	young := b.placedOn(t, in, p, 1)
	keys := func(userID string) int {
		var n int
		if err := b.store.DB().Get(&n, `SELECT count(*) FROM idempotency_keys WHERE user_id = $1`, userID); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if keys(old.CustomerID) != 1 || keys(young.CustomerID) != 1 {
		t.Fatal("keys missing before the purge")
	}
	if _, err := in.client.Insert(context.Background(), orders.PurgeKeysArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the old key to be purged", func() bool { return keys(old.CustomerID) == 0 })
	if keys(young.CustomerID) != 1 {
		t.Error("a key younger than its retention was purged")
	}
}
