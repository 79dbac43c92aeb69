package inventory_test

import (
	"context"
	"io"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/inventory"
	"github.com/shopd/shopd/jobs"
	"github.com/shopd/shopd/notify"
	"github.com/shopd/shopd/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// subjects are the subjects of the messages box received so far.
func subjects(box *shoptest.Inbox) []string {
	var out []string
	for _, raw := range box.Received() {
		if m, err := mail.ReadMessage(strings.NewReader(raw)); err == nil {
			out = append(out, m.Header.Get("Subject"))
		}
	}
	return out
}

// bodies are the raw bodies of the messages box received so far.
func bodies(box *shoptest.Inbox) []string {
	var out []string
	for _, raw := range box.Received() {
		if m, err := mail.ReadMessage(strings.NewReader(raw)); err == nil {
			body, _ := io.ReadAll(m.Body)
			out = append(out, string(body))
		}
	}
	return out
}

type bundle struct {
	db     *sqlx.DB
	st     *store.Store
	box    *shoptest.Inbox
	jobs   *jobs.Client
	stock  *inventory.Workflows
	outbox *notify.Outbox
}

// setup runs the inventory workflows on a fresh database with a real
// outbox sending to an in-process SMTP server and a started River client.
func setup(t *testing.T) bundle {
	t.Helper()
	ctx := context.Background()
	box := shoptest.NewInbox(t)
	sender, err := notify.NewSMTPSender("smtp://"+box.Addr, "shop@shop.example")
	if err != nil {
		t.Fatal(err)
	}
	db := pgtest.NewDB(t)
	outbox, err := notify.New(notify.Config{DB: db, Email: sender, StorefrontURL: "https://shop.example", RetryBase: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stock, err := inventory.New(inventory.Config{DB: db, Outbox: outbox, Recipient: "stock@shop.example", AlertEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	workers := river.NewWorkers()
	if err := outbox.AddWorkers(workers); err != nil {
		t.Fatal(err)
	}
	if err := stock.AddWorkers(workers); err != nil {
		t.Fatal(err)
	}
	c, err := jobs.New(db.DB, jobs.Config{PollInterval: 20 * time.Millisecond, Workers: workers, Periodic: stock.PeriodicJobs(), TestOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	outbox.SetJobs(c)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = jobs.Stop(context.Background(), c) })
	return bundle{db: db, st: store.New(db), box: box, jobs: c, stock: stock, outbox: outbox}
}

// waitSubjects waits until n received subjects contain want.
func waitSubjects(t *testing.T, box *shoptest.Inbox, want string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var got []string
		for _, s := range subjects(box) {
			if strings.Contains(s, want) {
				got = append(got, s)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d emails about %q, want %d; all: %q", len(got), want, n, subjects(box))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ptr[T any](v T) *T { return &v }

// TestConcurrentSalesCrossOnce: twenty concurrent decrements take a
// product from 20 through its threshold of 10 to 0; the database records
// exactly one crossing and one alert is sent. Restocking to 15 re-arms it:
// the next fall to 10 is the second crossing and the second alert.
func TestConcurrentSalesCrossOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	p := shoptest.Product(ctx, t, b.st, &shoptest.ProductOpts{Stock: ptr(20), LowStockThreshold: ptr(10)})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := b.st.AdjustStock(ctx, store.StockChange{ProductID: p.ID, QuantityChange: -1, Type: store.InventoryAdjustment}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	waitSubjects(t, b.box, "Low stock: "+p.SKU, 1)
	if _, err := b.st.AdjustStock(ctx, store.StockChange{ProductID: p.ID, QuantityChange: 15, Type: store.InventoryRestock}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.AdjustStock(ctx, store.StockChange{ProductID: p.ID, QuantityChange: -5, Type: store.InventoryAdjustment}); err != nil {
		t.Fatal(err)
	}
	got := waitSubjects(t, b.box, "Low stock: "+p.SKU, 2)
	if len(got) != 2 || !strings.Contains(got[0], "(10 left)") || !strings.Contains(got[1], "(10 left)") {
		t.Errorf("alerts %q: want two, each at the crossing to 10", got)
	}
	var crossings []int
	if err := b.db.SelectContext(ctx, &crossings, `SELECT crossing FROM low_stock_crossings WHERE product_id = $1 ORDER BY crossing`, p.ID); err != nil {
		t.Fatal(err)
	}
	if len(crossings) != 2 || crossings[0] != 1 || crossings[1] != 2 {
		t.Errorf("crossings %v, want [1 2]", crossings)
	}
}

// runReport inserts the report job of runAt and waits until it completed.
func runReport(t *testing.T, b bundle, runAt time.Time) {
	t.Helper()
	ctx := context.Background()
	res, err := b.jobs.Insert(ctx, inventory.ReportArgs{RunAt: runAt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		j, err := b.jobs.JobGet(ctx, res.Job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == rivertype.JobStateCompleted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("report job %d is %s, want completed; errors %v", j.ID, j.State, j.Errors)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDailyReport: a run with every product above its threshold sends
// nothing; a run with low products sends one report listing the active
// ones (not the healthy, not the archived); running the same run again
// sends no second report, while the next run sends its own.
func TestDailyReport(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	healthy := shoptest.Product(ctx, t, b.st, &shoptest.ProductOpts{Stock: ptr(50), LowStockThreshold: ptr(10)})
	quiet := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	runReport(t, b, quiet)

	low := shoptest.Product(ctx, t, b.st, &shoptest.ProductOpts{Stock: ptr(3), LowStockThreshold: ptr(5)})
	archived := shoptest.Product(ctx, t, b.st, &shoptest.ProductOpts{Stock: ptr(1), LowStockThreshold: ptr(5), IsActive: ptr(false)})
	first := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	runReport(t, b, first)
	runReport(t, b, first)
	// The same run again (a new leader enqueueing it, a retry): its key
	// is taken, so nothing is written.
	if id, err := b.stock.WriteReport(ctx, first); err != nil || id != "" {
		t.Errorf("second report of the same run: id %q, err %v; want none written", id, err)
	}
	second := time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)
	runReport(t, b, second)

	got := waitSubjects(t, b.box, "Inventory report", 2)
	if len(got) != 2 || !strings.Contains(got[0]+got[1], "2026-11-02 09:00 UTC") || !strings.Contains(got[0]+got[1], "2026-11-03 09:00 UTC") {
		t.Fatalf("reports %q: want one for each run with low stock", got)
	}
	if strings.Contains(strings.Join(got, " "), "2026-11-01") {
		t.Errorf("reports %q: the run with nothing low sent one", got)
	}
	for _, body := range bodies(b.box) {
		if !strings.Contains(body, low.SKU) {
			t.Errorf("report does not list the low product %s:\n%s", low.SKU, body)
		}
		if strings.Contains(body, healthy.SKU) || strings.Contains(body, archived.SKU) {
			t.Errorf("report lists the healthy %s or the archived %s:\n%s", healthy.SKU, archived.SKU, body)
		}
	}
	var n int
	if err := b.db.GetContext(ctx, &n, `SELECT count(*) FROM notifications WHERE template = 'daily-inventory-report'`); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d reports in the outbox, want 2", n)
	}
}

// TestReportCron: INVENTORY_REPORT_CRON is a 5-field cron read in UTC;
// anything else is refused.
func TestReportCron(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 11, 30, 10, 0, 0, 0, time.FixedZone("CET", 3600)) // 09:00 UTC
	for _, tc := range []struct {
		spec string
		next time.Time
	}{
		{inventory.DefaultReportCron, time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)},
		{"30 6 * * 1", time.Date(2026, 12, 7, 6, 30, 0, 0, time.UTC)},
	} {
		s, err := inventory.ParseReportCron(tc.spec)
		if err != nil {
			t.Fatalf("%q: %v", tc.spec, err)
		}
		if got := s.Next(from); !got.Equal(tc.next) {
			t.Errorf("%q: next after %v is %v, want %v", tc.spec, from, got, tc.next)
		}
	}
	for _, bad := range []string{"", "0 9 * *", "0 0 9 * * *", "61 9 * * *", "TZ=Europe/Paris 0 9 * * *"} {
		if _, err := inventory.ParseReportCron(bad); err == nil {
			t.Errorf("%q: accepted, want an error", bad)
		}
	}
}
