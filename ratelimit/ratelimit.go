// Package ratelimit counts events per key against a limit per period, with
// the generic cell rate algorithm (GCRA): smooth, one timestamp per key.
package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Limit allows Count events per Period, all of which may come at once.
type Limit struct {
	Count  int
	Period time.Duration
}

// PerMinute builds a limit of n a minute.
func PerMinute(n int) Limit { return Limit{Count: n, Period: time.Minute} }

// PerHour builds a limit of n an hour.
func PerHour(n int) Limit { return Limit{Count: n, Period: time.Hour} }

// Unlimited reports whether the limit is off (a zero count).
func (l Limit) Unlimited() bool { return l.Count <= 0 }

// Result says whether an event may happen and, if not, when it may.
type Result struct {
	Allowed    bool
	Remaining  int
	RetryAfter time.Duration
}

// Limiter counts events per key. Allow records an event when it is within
// the limit; Peek only looks; Refund takes back one event Allow recorded.
//
// Allow is atomic per key: however many callers race, at most the limit's
// count is allowed. To limit something that is known to count only after
// it has happened (a failed login), Allow first and Refund when it turns
// out not to count: checking with Peek and recording afterwards would let
// every concurrent caller pass the check.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit) (Result, error)
	Peek(ctx context.Context, key string, l Limit) (Result, error)
	// Refund gives back one event of key under l. Events that have already
	// decayed cannot be refunded: a refund never gives credit beyond an
	// idle key's full allowance.
	Refund(ctx context.Context, key string, l Limit) error
}

// Memory is an in-process Limiter: right for one instance; several
// instances each count on their own (use a shared store for those).
type Memory struct {
	mu    sync.Mutex
	tat   map[string]time.Time // theoretical arrival time per key
	now   func() time.Time
	sweep time.Time
}

// NewMemory returns an empty in-process limiter. now may be nil.
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{tat: map[string]time.Time{}, now: now}
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, key string, l Limit) (Result, error) {
	return m.take(key, l, 1), nil
}

// Peek implements Limiter.
func (m *Memory) Peek(_ context.Context, key string, l Limit) (Result, error) {
	return m.take(key, l, 0), nil
}

// Refund implements Limiter.
func (m *Memory) Refund(_ context.Context, key string, l Limit) error {
	if l.Unlimited() {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	tat, ok := m.tat[key]
	if !ok {
		return nil
	}
	tat = tat.Add(-l.Period / time.Duration(l.Count))
	if !tat.After(m.now()) {
		delete(m.tat, key)
		return nil
	}
	m.tat[key] = tat
	return nil
}

func (m *Memory) take(key string, l Limit, n int) Result {
	if l.Unlimited() {
		return Result{Allowed: true, Remaining: -1}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.forgetIdle(now, l.Period)
	interval := l.Period / time.Duration(l.Count)
	tat := m.tat[key]
	if tat.Before(now) {
		tat = now
	}
	newTAT := tat.Add(time.Duration(n) * interval)
	// With n = 0 (a peek) the next event is what must fit.
	probe := newTAT
	if n == 0 {
		probe = tat.Add(interval)
	}
	allowAt := probe.Add(-l.Period)
	if now.Before(allowAt) {
		return Result{Allowed: false, RetryAfter: allowAt.Sub(now)}
	}
	if n > 0 {
		m.tat[key] = newTAT
	}
	remaining := int(now.Sub(newTAT.Add(-l.Period)) / interval)
	return Result{Allowed: true, Remaining: remaining}
}

// forgetIdle drops keys whose state has fully decayed, at most once a period.
func (m *Memory) forgetIdle(now time.Time, period time.Duration) {
	if now.Sub(m.sweep) < period {
		return
	}
	m.sweep = now
	for k, t := range m.tat {
		if t.Before(now) {
			delete(m.tat, k)
		}
	}
}
