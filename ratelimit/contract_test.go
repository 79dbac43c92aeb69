package ratelimit

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestLimiters runs one contract against every implementation, on real
// time: a limit of 3 a minute allows exactly 3, then refuses with a
// retry-after within the emission interval.
func TestLimiters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	impls := map[string]Limiter{"memory": NewMemory(nil), "redis": startRedis(t)}
	for name, l := range impls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			lim := PerMinute(3)
			key := fmt.Sprintf("contract-%d", time.Now().UnixNano())
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
		})
	}
}

// startRedis runs a private redis-server on a free loopback port.
func startRedis(t *testing.T) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (make test installs it; or apt-get install redis-server): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
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
