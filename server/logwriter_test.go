package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
)

// TestLogWriterKeepsRecordsWhole: concurrent records reach the underlying
// writer whole, each once, in the order of their writers, also when they
// overflow the buffer; Close writes out the rest.
func TestLogWriterKeepsRecordsWhole(t *testing.T) {
	t.Parallel()
	var out shoptest.SyncBuffer
	l := newLogWriter(&out, 256, time.Hour) // only size and Close flush
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				fmt.Fprintf(l, "{\"w\":%d,\"i\":%d,\"pad\":%q}\n", w, i, strings.Repeat("x", (w*31+i)%90))
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	for _, line := range lines {
		var rec struct{ W, I int }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a torn record: %q", line)
		}
		if rec.I != next[rec.W] {
			t.Fatalf("writer %d: record %d after %d", rec.W, rec.I, next[rec.W]-1)
		}
		next[rec.W]++
	}
	if len(lines) != writers*each {
		t.Errorf("%d records written out, want %d", len(lines), writers*each)
	}
}

// TestLogWriterFlushesOnItsTimer: a record reaches the writer without a
// Close, once the timer has run.
func TestLogWriterFlushesOnItsTimer(t *testing.T) {
	t.Parallel()
	var out shoptest.SyncBuffer
	l := newLogWriter(&out, 64<<10, 5*time.Millisecond)
	defer l.Close()
	fmt.Fprintln(l, "one line")
	deadline := time.Now().Add(10 * time.Second)
	for out.String() != "one line\n" {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s the writer holds %q", out.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestAccessLogCompleteAtShutdown: every request answered before a
// graceful shutdown has its access-log line on stderr once Run returns,
// however little time the buffer had to flush on its own.
func TestAccessLogCompleteAtShutdown(t *testing.T) {
	t.Parallel()
	s := start(t, map[string]string{"DATABASE_URL": pgtest.NewURL(t), "HTTP_ADDR": "127.0.0.1:0", "DATA_DIR": t.TempDir()})
	var ids []string
	for range 50 {
		res, err := http.Get(s.base + "/v1/products?limit=1")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("list products: %d", res.StatusCode)
		}
		ids = append(ids, res.Header.Get("X-Request-Id"))
	}
	s.stop(t)
	logged := map[string]bool{}
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		var rec struct {
			Msg       string `json:"msg"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "request" {
			logged[rec.RequestID] = true
		}
	}
	for _, id := range ids {
		if id == "" || !logged[id] {
			t.Fatalf("request %q has no access-log line after shutdown (%d of %d logged)", id, len(logged), len(ids))
		}
	}
}

// TestMetricsShowThePool: /metrics carries the database pool's series, so
// an operator (and make bench) sees whether it ever ran out.
func TestMetricsShowThePool(t *testing.T) {
	t.Parallel()
	s := start(t, map[string]string{"DATABASE_URL": pgtest.NewURL(t), "HTTP_ADDR": "127.0.0.1:0", "DATA_DIR": t.TempDir()})
	m := s.metrics(t)
	for _, series := range []string{`go_sql_max_open_connections{db_name="shopd"} 16`, `go_sql_in_use_connections{db_name="shopd"}`, `go_sql_wait_count_total{db_name="shopd"}`} {
		if !strings.Contains(m, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
}
