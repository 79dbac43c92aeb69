package orders

import (
	"context"
	"sync"
	"time"
)

// backgroundGroup tracks work that outlives the request that started it,
// so that Shutdown can wait for it: no goroutine of the money path is left
// running, unseen, when the server stops and closes the database. Its zero
// value is ready to use.
type backgroundGroup struct {
	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup
	// abort cancels the running work when Shutdown runs out of time.
	abort    context.Context
	abortNow context.CancelFunc
}

// background runs fn on its own goroutine with a context that keeps ctx's
// values but not its cancellation (the request that asked for the work may
// end first), bounded by timeout and cancelled if Shutdown gives up
// waiting. It reports false, and runs nothing, once Shutdown has begun:
// the reconciler then finds what fn would have done.
func (s *Service) background(ctx context.Context, timeout time.Duration, fn func(ctx context.Context)) bool {
	g := &s.bg
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	if g.abort == nil {
		g.abort, g.abortNow = context.WithCancel(context.Background())
	}
	g.running.Add(1)
	go func() {
		defer g.running.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		stop := context.AfterFunc(g.abort, cancel)
		defer stop()
		fn(ctx)
	}()
	return true
}

// Shutdown refuses new background work and waits for the work under way.
// If ctx ends first, the work is cancelled (the reconciler redoes whatever
// it left unfinished) and Shutdown returns ctx's error once it has
// stopped. Call it after the HTTP server has stopped taking requests and
// before the store is closed.
func (s *Service) Shutdown(ctx context.Context) error {
	g := &s.bg
	g.mu.Lock()
	g.closed = true
	abortNow := g.abortNow
	g.mu.Unlock()

	done := make(chan struct{})
	go func() {
		g.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		if abortNow != nil {
			abortNow()
		}
		<-done
		return ctx.Err()
	}
}
