package shoptest

import (
	"errors"
	"fmt"
	"sync"
)

// ErrCrash is the error an armed Crash returns: the checkout stops there
// as if the process had died between two phases.
var ErrCrash = errors.New("injected crash")

// Crash is a hook for orders.Service.AfterPhase (set it to
// crash.AfterPhase). It fails checkouts at armed phases, runs a function
// exactly between two phases, and counts how often each phase was reached.
// The zero Crash lets every checkout through; it is safe for concurrent
// use.
type Crash struct {
	mu    sync.Mutex
	armed map[string]int    // phase -> how many more checkouts fail there
	hits  map[string]int    // phase -> how often it was reached
	calls map[string]func() // phase -> run once when next reached
}

// Arm makes the next times checkouts that reach phase fail there with
// ErrCrash.
func (c *Crash) Arm(phase string, times int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed == nil {
		c.armed = map[string]int{}
	}
	c.armed[phase] = times
}

// OnNext runs fn (once) when a checkout next reaches phase, before the
// checkout goes on: a way to act exactly between two phases.
func (c *Crash) OnNext(phase string, fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]func(){}
	}
	c.calls[phase] = fn
}

// AfterPhase is the hook: it runs what OnNext left for the phase, counts
// the hit, and returns ErrCrash while the phase is armed.
func (c *Crash) AfterPhase(phase string) error {
	c.mu.Lock()
	fn := c.calls[phase]
	delete(c.calls, phase)
	c.mu.Unlock()
	// Unlocked: fn may itself drive a checkout that reaches a phase.
	if fn != nil {
		fn()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hits == nil {
		c.hits = map[string]int{}
	}
	c.hits[phase]++
	if c.armed[phase] > 0 {
		c.armed[phase]--
		return fmt.Errorf("%w after %s", ErrCrash, phase)
	}
	return nil
}

// Hits is how many times checkouts have reached phase.
func (c *Crash) Hits(phase string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits[phase]
}
