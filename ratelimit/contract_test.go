package ratelimit

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopd/shopd/internal/pgcluster"
	"github.com/shopd/shopd/internal/shoptest"
)

// TestLimiters runs one contract against every implementation, on real
// time: a limit of 3 a minute allows exactly 3, then refuses with a
// retry-after within the emission interval; a refund gives one back but
// never more than an idle key's allowance; racing callers never get more
// than the limit between them.
func TestLimiters(t *testing.T) {
	t.Parallel()
	impls := map[string]Limiter{"memory": NewMemory(nil), "redis": startRedis(t)}
	for name, l := range impls {
		t.Run(name+"/allow and peek", func(t *testing.T) {
			t.Parallel()
			testAllowAndPeek(t, l)
		})
		t.Run(name+"/refund", func(t *testing.T) {
			t.Parallel()
			testRefund(t, l)
		})
		t.Run(name+"/concurrent", func(t *testing.T) {
			t.Parallel()
			testConcurrent(t, l)
		})
	}
}

// uniqueKey is a key no other test uses (the Redis one is shared).
func uniqueKey(t *testing.T) string {
	return fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
}

func testAllowAndPeek(t *testing.T, l Limiter) {
	ctx := context.Background()
	lim := PerMinute(3)
	key := uniqueKey(t)
	if r, err := l.Peek(ctx, key, lim); err != nil || !r.Allowed {
		t.Fatalf("fresh peek: %+v, %v", r, err)
	}
	for i := 0; i < 3; i++ {
		r, err := l.Allow(ctx, key, lim)
		if err != nil || !r.Allowed {
			t.Fatalf("event %d refused: %+v, %v", i+1, r, err)
		}
	}
	r, err := l.Peek(ctx, key, lim)
	if err != nil || r.Allowed {
		t.Fatalf("peek after 3: %+v, %v; want refused", r, err)
	}
	r, err = l.Allow(ctx, key, lim)
	if err != nil || r.Allowed {
		t.Fatalf("4th event: %+v, %v; want refused", r, err)
	}
	if r.RetryAfter <= 0 || r.RetryAfter > 20*time.Second {
		t.Fatalf("retry after %v; want within (0, 20s]", r.RetryAfter)
	}
	if r, _ := l.Allow(ctx, key+"-other", lim); !r.Allowed {
		t.Fatal("another key is limited too")
	}
	if r, _ := l.Allow(ctx, key, Limit{}); !r.Allowed {
		t.Fatal("an unlimited limit refused")
	}
}

func testRefund(t *testing.T, l Limiter) {
	ctx := context.Background()
	lim := PerMinute(3)
	allowed := func(key string, n int) int {
		t.Helper()
		got := 0
		for range n {
			r, err := l.Allow(ctx, key, lim)
			if err != nil {
				t.Fatal(err)
			}
			if r.Allowed {
				got++
			}
		}
		return got
	}

	key := uniqueKey(t)
	if got := allowed(key, 3); got != 3 {
		t.Fatalf("%d of 3 allowed", got)
	}
	if err := l.Refund(ctx, key, lim); err != nil {
		t.Fatal(err)
	}
	if got := allowed(key, 2); got != 1 {
		t.Errorf("after one refund %d more allowed, want 1", got)
	}

	// Refunds on an idle key, or more refunds than events, bank nothing.
	idle := uniqueKey(t) + "-idle"
	for range 3 {
		if err := l.Refund(ctx, idle, lim); err != nil {
			t.Fatal(err)
		}
	}
	if got := allowed(idle, 1); got != 1 {
		t.Fatal("first event refused")
	}
	for range 3 {
		if err := l.Refund(ctx, idle, lim); err != nil {
			t.Fatal(err)
		}
	}
	if got := allowed(idle, 5); got != 3 {
		t.Errorf("after surplus refunds %d of 5 allowed, want the limit 3", got)
	}
	if err := l.Refund(ctx, idle, Limit{}); err != nil {
		t.Errorf("refund under an unlimited limit: %v", err)
	}
}

func testConcurrent(t *testing.T, l Limiter) {
	ctx := context.Background()
	const limit, callers = 10, 64
	lim := PerMinute(limit)
	key := uniqueKey(t)
	var allowed atomic.Int64
	shoptest.Concurrently(t, callers, 60*time.Second, func(int) {
		r, err := l.Allow(ctx, key, lim)
		if err != nil {
			t.Error(err)
			return
		}
		if r.Allowed {
			allowed.Add(1)
		}
	})
	if n := allowed.Load(); n != limit {
		t.Errorf("%d of %d racing callers allowed, want exactly %d", n, callers, limit)
	}
}

// startRedis runs a private redis-server on a free loopback port.
func startRedis(t *testing.T) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (make test installs it; or apt-get install redis-server): %v", err)
	}
	// redis-server takes a port number; port 0 would turn TCP off.
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if strings.Contains(s.Text(), "Ready to accept connections") {
				close(ready)
				break
			}
		}
		for s.Scan() {
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("redis-server did not start")
	}
	r, closeFn, err := NewRedis(context.Background(), fmt.Sprintf("redis://127.0.0.1:%d/0", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFn() })
	return r
}
