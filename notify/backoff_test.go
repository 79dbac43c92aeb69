package notify_test

import (
	"testing"
	"time"

	"github.com/shopd/shopd/notify"
)

// TestBackoffDoubles: each retry waits twice as long as the one before,
// from the configured base, and never more than six hours.
func TestBackoffDoubles(t *testing.T) {
	t.Parallel()
	o, err := notify.New(notify.Config{RetryBase: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 4: 80 * time.Millisecond, 40: 6 * time.Hour} {
		if got := o.Backoff(n); got != want {
			t.Errorf("after attempt %d: %s, want %s", n, got, want)
		}
	}
	d, err := notify.New(notify.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Backoff(1); got != notify.DefaultRetryBase {
		t.Errorf("default first retry after %s, want %s", got, notify.DefaultRetryBase)
	}
}
