package store

import (
	"context"
	"testing"

	"github.com/shopd/shopd/internal/pgtest"
)

// TestCheckoutLockSessionKeepsAlive: the session holding a checkout lock
// probes its peer every few seconds, so a vanished host's lock is freed in
// about 25 s (10 s idle + 3 probes 5 s apart), not the kernel's 2 hours.
func TestCheckoutLockSessionKeepsAlive(t *testing.T) {
	t.Parallel()
	s := New(pgtest.NewDB(t))
	ctx := context.Background()
	pinned, err := s.Pin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Release()
	lock, ok, err := pinned.TryLockCheckout(ctx, newCartUser(t, s), "k")
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	defer lock.Unlock()
	for setting, want := range map[string]string{"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"} {
		var got string
		if err := pinned.conn.GetContext(ctx, &got, "SELECT current_setting($1)", setting); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %s on the lock's session, want %s", setting, got, want)
		}
	}
}
