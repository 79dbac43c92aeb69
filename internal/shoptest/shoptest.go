// Package shoptest holds what tests across shopd share, so that each
// package does not grow its own copy: a clock the test moves (Clock), a
// crash hook for the money path's phases (Crash, ErrCrash), a start gate
// for goroutines that must race (Concurrently), a buffer goroutines may
// write to together (SyncBuffer), and builders and probes for rows on a
// real store in River's testfactory style (User, Product, Stock).
//
// It is test support: only _test.go files import it, and the production
// binary must not link it (cmd/shopd's TestBinaryCarriesNoDevTooling).
package shoptest

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Clock is real time plus an offset the test advances: payment windows,
// staleness cut-offs and cache TTLs pass at once while the database, which
// stamps rows with its own clock, keeps running in real time. The zero
// Clock is the real time; it is safe for concurrent use.
type Clock struct{ offset atomic.Int64 }

// Now is the real time plus every Advance so far.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Concurrently runs fn(0), ..., fn(n-1) on n goroutines and waits for them.
// The goroutines are released together by one start gate once every one
// of them is waiting at it, so they really race. If they have not all
// returned within limit the test fails: a deadlock must not hang the run.
// fn runs off the test's goroutine, so it reports with t.Error, not
// t.Fatal; a test that needs what each call returned stores it in a slice
// at index i.
func Concurrently(t testing.TB, n int, limit time.Duration, fn func(i int)) {
	t.Helper()
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	for i := range n {
		done.Go(func() {
			ready.Done()
			<-start
			fn(i)
		})
	}
	ready.Wait()
	close(start)
	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(limit):
		t.Fatalf("%d concurrent calls did not finish within %v (deadlock?)", n, limit)
	}
}

// SyncBuffer is a bytes.Buffer that several goroutines may write to at
// once, such as a program's output or a logger's sink, and that a test
// reads while they write. The zero SyncBuffer is empty and ready.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
