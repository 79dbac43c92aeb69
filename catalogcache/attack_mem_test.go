package catalogcache_test

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/shopd/shopd/catalogcache"
)

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestAttackDistinctQueriesKeepMemoryBound: a caller who sends a million
// list reads with distinct query strings (unknown parameters are allowed)
// churns the cache through small entries. The heap the cache holds must
// stay near MaxBytes, and emptying it must give the memory back: Go's
// maps keep the room of deleted keys, and with a plain delete they grew
// to twice the bound (8.5 MiB for a 4 MiB cache, 5.9 MiB still held once
// emptied). Not parallel: it measures the process's heap, so nothing else
// may allocate meanwhile (parallel tests wait for the sequential ones).
func TestAttackDistinctQueriesKeepMemoryBound(t *testing.T) {
	const maxBytes = 4 << 20
	h := start(t, maxBytes)
	entry := catalogcache.Entry{
		Body: []byte(`{"items":[],"nextCursor":null}`), ContentType: "application/json",
		ETag: `"0000000000000000000000000000000000000000000000000000000000000000"`, ExpiresAt: time.Now().Add(time.Hour),
	}
	before := liveHeap()
	for i := range 1_000_000 {
		k := catalogcache.Key{List: "/v1/products?maxPriceCents=0&x=" + strconv.Itoa(i)}
		e := entry
		e.Body = append([]byte(nil), entry.Body...) // each answer is a body of its own
		h.cache.Put(h.cache.Begin(k), e)
	}
	if h.cache.Len() == 0 {
		t.Fatal("nothing kept: the test measures nothing")
	}
	if held := liveHeap() - before; held > maxBytes*5/4 {
		t.Errorf("%d entries kept in %d bytes of heap, bound %d", h.cache.Len(), held, maxBytes)
	}
	h.cache.InvalidateAll()
	if held := liveHeap() - before; held > maxBytes/8 {
		t.Errorf("emptied, the cache still holds %d bytes of heap", held)
	}
}

// TestAttackBytesGaugeFollowsExpiries: shopd_catalog_cache_bytes is what
// the entries take; an entry dropped because it expired takes nothing
// (the gauge kept counting it until the next Put or change).
func TestAttackBytesGaugeFollowsExpiries(t *testing.T) {
	t.Parallel()
	h := start(t, 1<<20)
	k := catalogcache.Key{List: "/v1/products?limit=3"}
	e := catalogcache.Entry{Body: []byte(`{"items":[]}`), ExpiresAt: time.Now().Add(time.Minute)}
	h.cache.Put(h.cache.Begin(k), e)
	if got := counter(t, h.reg, "shopd_catalog_cache_bytes"); got <= 0 {
		t.Fatalf("one entry kept, the gauge says %v bytes", got)
	}
	if _, ok := h.cache.Get(k, e.ExpiresAt); ok {
		t.Fatal("served at its expiry")
	}
	if got := counter(t, h.reg, "shopd_catalog_cache_bytes"); got != 0 || h.cache.Len() != 0 {
		t.Errorf("its only entry expired and dropped, the gauge says %v bytes (%d entries)", got, h.cache.Len())
	}
}
