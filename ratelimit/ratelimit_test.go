package ratelimit

import (
	"context"
	"testing"
	"time"
)

func TestMemory(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewMemory(func() time.Time { return now })
	ctx := context.Background()
	l := PerMinute(3)
	for i := 0; i < 3; i++ {
		r, _ := m.Allow(ctx, "k", l)
		if !r.Allowed {
			t.Fatalf("event %d refused", i+1)
		}
		if r.Remaining != 2-i {
			t.Fatalf("event %d: remaining = %d, want %d", i+1, r.Remaining, 2-i)
		}
	}
	if r, _ := m.Peek(ctx, "k", l); r.Allowed {
		t.Fatal("peek after the limit says allowed")
	}
	r, _ := m.Allow(ctx, "k", l)
	if r.Allowed || r.RetryAfter != 20*time.Second {
		t.Fatalf("4th event: %+v, want refused with retry after 20s", r)
	}
	if r, _ := m.Allow(ctx, "other", l); !r.Allowed {
		t.Fatal("another key is limited too")
	}
	now = now.Add(20 * time.Second)
	if r, _ := m.Peek(ctx, "k", l); !r.Allowed {
		t.Fatal("peek after waiting refused")
	}
	if r, _ := m.Allow(ctx, "k", l); !r.Allowed {
		t.Fatal("event after waiting refused")
	}
	if r, _ := m.Allow(ctx, "k", Limit{}); !r.Allowed {
		t.Fatal("unlimited refused")
	}

	// A refund after most of the state has decayed drops the key: the
	// full allowance is back, and no more.
	for range 3 {
		m.Allow(ctx, "r", l)
	}
	now = now.Add(50 * time.Second)
	if err := m.Refund(ctx, "r", l); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.tat["r"]; ok {
		t.Error("a refund down to the present kept the key")
	}
	for i := range 4 {
		r, _ := m.Allow(ctx, "r", l)
		if r.Allowed != (i < 3) {
			t.Fatalf("event %d after the refund: allowed = %v", i+1, r.Allowed)
		}
	}
}
