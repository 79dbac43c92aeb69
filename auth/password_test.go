package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/shopd/shopd/internal/shoptest"
)

// TestHashGateBoundsConcurrency: however many callers race, no more than
// the gate's slots are inside at once, and every caller gets in eventually.
func TestHashGateBoundsConcurrency(t *testing.T) {
	t.Parallel()
	const slots, callers = 2, 40
	g := newHashGate(slots, callers)
	var inside, most, done atomic.Int64
	shoptest.Concurrently(t, callers, 60*time.Second, func(int) {
		if err := g.enter(context.Background()); err != nil {
			t.Error(err)
			return
		}
		n := inside.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		inside.Add(-1)
		g.leave()
		done.Add(1)
	})
	if m := most.Load(); m > slots {
		t.Errorf("%d callers inside at once, want at most %d", m, slots)
	}
	if n := done.Load(); n != callers {
		t.Errorf("%d of %d callers got in", n, callers)
	}
}

// TestHashGateBoundsWaiters: with every slot taken and maxWaiters waiting,
// the next caller is refused at once with ErrHashingBusy; a waiter whose
// context ends stops waiting and frees its place.
func TestHashGateBoundsWaiters(t *testing.T) {
	t.Parallel()
	const waiters = 3
	g := newHashGate(1, waiters)
	if err := g.enter(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, waiters)
	for range waiters {
		go func() { errs <- g.enter(ctx) }()
	}
	for g.waiters.Load() != waiters {
		time.Sleep(time.Millisecond)
	}
	if err := g.enter(context.Background()); !errors.Is(err, ErrHashingBusy) {
		t.Fatalf("enter with %d waiting = %v, want ErrHashingBusy", waiters, err)
	}

	cancel()
	for range waiters {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled waiter: %v, want context.Canceled", err)
		}
	}
	if n := g.waiters.Load(); n != 0 {
		t.Errorf("%d waiters left after cancelling all", n)
	}
	// Their places are free again: a new waiter waits, and gets the slot.
	got := make(chan error, 1)
	go func() { got <- g.enter(context.Background()) }()
	g.leave()
	if err := <-got; err != nil {
		t.Fatalf("waiter after the cancellations: %v", err)
	}
	g.leave()
}

// TestCheckPasswordRefusesForeignParameters: a stored hash asking for more
// memory than the service's parameters is refused without being computed:
// the hashing gate's memory budget assumes ours.
func TestCheckPasswordRefusesForeignParameters(t *testing.T) {
	t.Parallel()
	huge := "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	if ok, err := CheckPassword(context.Background(), huge, "anything"); ok || err == nil {
		t.Errorf("CheckPassword with m=4 GiB = %v, %v; want an error", ok, err)
	}
}

// TestOlderHashesStillVerify: hashes made with the parameters used before
// (OWASP's 19 MiB, 2 passes) verify; new hashes use 7 MiB, 5 passes.
func TestOlderHashesStillVerify(t *testing.T) {
	t.Parallel()
	salt := []byte("older-hash-salt!")
	key := argon2.IDKey([]byte("a-long-password"), salt, 2, 19*1024, 1, 32)
	older := fmt.Sprintf("$argon2id$v=%d$m=%d,t=2,p=1$%s$%s", argon2.Version, 19*1024, b64.EncodeToString(salt), b64.EncodeToString(key))
	for pw, want := range map[string]bool{"a-long-password": true, "another-password": false} {
		if ok, err := CheckPassword(context.Background(), older, pw); ok != want || err != nil {
			t.Errorf("CheckPassword(19 MiB hash, %q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	h, err := HashPassword("a-long-password")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h, "$m=7168,t=5,p=1$") {
		t.Errorf("new hash %s: want m=7168,t=5,p=1", h)
	}
}

// TestDummyHashCostsARealCheck: the hash an unknown email is checked
// against has exactly the parameters, salt and key sizes of a real one, so
// it costs the same, and it matches nothing.
func TestDummyHashCostsARealCheck(t *testing.T) {
	t.Parallel()
	real, err := HashPassword("a-long-password")
	if err != nil {
		t.Fatal(err)
	}
	shape := func(h string) string {
		parts := strings.Split(h, "$")
		if len(parts) != 6 {
			t.Fatalf("hash %q has %d parts", h, len(parts))
		}
		salt, err1 := b64.DecodeString(parts[4])
		key, err2 := b64.DecodeString(parts[5])
		if err1 != nil || err2 != nil {
			t.Fatalf("hash %q: %v %v", h, err1, err2)
		}
		return fmt.Sprintf("%s$%s$%s salt %d key %d", parts[1], parts[2], parts[3], len(salt), len(key))
	}
	if got, want := shape(dummyHash), shape(real); got != want {
		t.Errorf("dummy hash is %s, a real one %s", got, want)
	}
	for _, pw := range []string{"", "a-long-password", "not a real password, only for timing"} {
		if ok, err := CheckPassword(context.Background(), "", pw); ok || err != nil {
			t.Errorf("unknown user with %q: %v %v", pw, ok, err)
		}
	}
}
