package auth

import (
	"sync"
	"time"
)

// expiringCache maps keys to values until each one's expiry. It holds at
// most size entries, so a flood of new keys cannot grow it without bound:
// when a new key finds it full, expired entries go first, then arbitrary
// ones (map order), an eighth of the cache at a time, so that a flood
// costs O(1) per put on average; an evicted entry is merely worked out
// again.
type expiringCache[V any] struct {
	mu      sync.Mutex
	size    int
	entries map[string]expiring[V]
}

type expiring[V any] struct {
	value   V
	expires time.Time
}

func newExpiringCache[V any](size int) *expiringCache[V] {
	return &expiringCache[V]{size: size, entries: make(map[string]expiring[V])}
}

// get returns key's value unless it has expired at now.
func (c *expiringCache[V]) get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		var zero V
		return zero, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, key)
		var zero V
		return zero, false
	}
	return e.value, true
}

// put keeps v for key until expires.
func (c *expiringCache[V]) put(key string, v V, expires, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.size {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		keep := c.size - max(1, c.size/8)
		for k := range c.entries {
			if len(c.entries) <= keep {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = expiring[V]{value: v, expires: expires}
}

// len is the number of entries held, expired or not.
func (c *expiringCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
