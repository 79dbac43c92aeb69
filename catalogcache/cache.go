// Package catalogcache keeps the catalog's public reads (a product, a page
// of products) in memory, exactly: every change to a product or its images
// anywhere (any instance, a job, psql) drops what it affects, through
// PostgreSQL LISTEN/NOTIFY (migrations 0013, 0014), and a change made through
// this instance drops it before that request is answered.
//
// # How stale a read can be
//
// An entry is dropped when this instance's listener reads the
// notification of the commit that changed its product: a read may be as
// old as that delay (the notification delay: the commit, PostgreSQL's
// delivery to the listening connection, and this process reading it;
// well under a millisecond on one host when the listener keeps up). A
// page of products is dropped by a change to any product. Reads are never
// kept longer than the image URLs in them stay the same (ExpiresAt).
//
// Should the listening connection fail, notifications may be lost: the
// cache is emptied and bypassed from the moment the failure is seen until
// the listener is connected (and listening) again. A closed connection is
// seen at once; one that silently stops answering, by the next ping
// (PingInterval, answer within PingTimeout): that is the bound when the
// network between this instance and PostgreSQL breaks without a reset.
//
// # Filling without racing a change
//
// A miss takes a ticket (Begin) before it reads the database and offers
// the read with it (Put). The read is kept only if no invalidation that
// concerns it has happened since the ticket: a read whose snapshot
// predates a change can never be stored after that change's notification
// was applied. Invalidations are counted per product in 64 stripes, per
// list as one count, and for all at once (emptying, connection changes).
//
// # Memory
//
// Entries are kept in least-recently-used order within MaxBytes (their
// bodies and keys plus a fixed overhead each); an entry larger than an
// eighth of it is not kept. The maps are made afresh as entries come and
// go (compactLocked), so the room they keep stays within that overhead.
package catalogcache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopd/shopd/internal/pglisten"
)

// Channel is the notification channel migration 0013's triggers notify
// with a product's id.
const Channel = "shopd_catalog"

// EverythingChanged is the payload migration 0014's TRUNCATE triggers
// notify with: every product may have changed.
const EverythingChanged = "*"

// ListenerApplicationName is the application_name of the listening
// connection (in pg_stat_activity).
const ListenerApplicationName = "shopd-catalog-listener"

// Defaults of Config.
const (
	DefaultPingInterval = 2 * time.Second
	DefaultPingTimeout  = 2 * time.Second
	// entryOverhead is what an entry costs besides its key and body: the
	// list element, map slot and header fields, roughly.
	entryOverhead = 256
	stripes       = 64
	// minCompaction is the fewest removals compactLocked makes the maps
	// afresh for.
	minCompaction = 1024
)

// Config configures a Cache.
type Config struct {
	// DatabaseURL is where the listener connects (its own connection).
	DatabaseURL string
	// MaxBytes bounds the entries' size; it must be positive.
	MaxBytes int64
	// PingInterval and PingTimeout: how often the listening connection is
	// checked, and how long it may take to answer.
	PingInterval, PingTimeout time.Duration
	Registry                  prometheus.Registerer
	Log                       *slog.Logger
}

// Key names a cached read: a product (Product, its canonical id) or a
// list (List, the request's path and query).
type Key struct {
	Product string
	List    string
}

// Entry is a cached answer.
type Entry struct {
	Body        []byte
	ETag        string
	ContentType string
	// ExpiresAt is when the entry stops being served: the answer holds
	// signed image URLs that are made afresh from then on.
	ExpiresAt time.Time
	// Version is the product's version (migration 0015) the answer
	// shows; 0 for a list. Of two reads of one product the cache keeps
	// the newer, and it remembers the newest it was offered (the
	// product's floor) after dropping the answer itself.
	Version int64
}

func (e Entry) size(k Key) int64 {
	return int64(len(e.Body) + len(e.ETag) + len(e.ContentType) + len(k.Product) + len(k.List) + entryOverhead)
}

// Ticket is a miss's position in the invalidations, taken before it reads.
type Ticket struct {
	key   Key
	all   uint64
	part  uint64 // the product's stripe or the lists' count
	valid bool
}

// item is a kept answer, or (kept false) only its product's floor: the
// newest version of it this instance has answered, below which no read of
// it is kept again, so no later reader is answered an older product.
type item struct {
	key   Key
	entry Entry
	kept  bool
	floor int64
	size  int64
}

// Cache is one instance's cache of catalog reads. A nil *Cache is off:
// every Get misses and Put keeps nothing.
type Cache struct {
	cfg      Config
	listener *pq.Listener
	metrics  *metrics
	log      *slog.Logger
	seed     maphash.Seed
	stop     chan struct{}
	done     chan struct{}
	// pending is the answer of a ping still unanswered (pings only).
	pending chan error

	mu sync.Mutex
	// connected is true while the listener is connected and listening
	// (pq's events say), answering while its pings are answered: only
	// when both are may entries be served or kept.
	connected, answering bool
	listening            bool
	// Invalidation counts (see Ticket).
	all     uint64
	listGen uint64
	product [stripes]uint64
	lru     *list.List // of *item, most recent first
	items   map[Key]*list.Element
	// listItems are the lists among items: every change drops them all.
	listItems map[Key]*list.Element
	bytes     int64
	// removed counts the entries taken out of the maps since they were
	// made: Go's maps never give back the room of deleted keys, so a
	// stream of distinct keys (query strings) coming and going grew them
	// to twice the bound; they are made afresh once removals outnumber
	// what they hold (compactLocked).
	removed int
}

// Start connects the listener and returns the cache, serving once LISTEN
// has taken effect. Close stops it.
func Start(ctx context.Context, cfg Config) (*Cache, error) {
	if cfg.MaxBytes <= 0 {
		return nil, errors.New("catalogcache: MaxBytes must be positive")
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = DefaultPingTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	c := &Cache{cfg: cfg, metrics: m, log: cfg.Log, seed: maphash.MakeSeed(),
		stop: make(chan struct{}), done: make(chan struct{}),
		lru: list.New(), items: make(map[Key]*list.Element), listItems: make(map[Key]*list.Element)}
	if c.listener, err = pglisten.Listen(ctx, cfg.DatabaseURL, ListenerApplicationName, Channel, c.listenerEvent); err != nil {
		return nil, fmt.Errorf("catalog changes: %w", err)
	}
	c.setState(func() { c.connected, c.answering = true, true })
	go c.run()
	go c.pings()
	return c, nil
}

// listenerEvent runs on the listener's goroutine as its connection
// changes: before pq delivers anything that arrived on a new connection,
// and as soon as it sees the old one fail.
func (c *Cache) listenerEvent(ev pq.ListenerEventType, err error) {
	switch ev {
	case pq.ListenerEventDisconnected:
		c.setState(func() { c.connected = false })
		c.log.Warn("catalog cache listener disconnected: cache bypassed until it reconnects", "err", err)
	case pq.ListenerEventConnectionAttemptFailed:
		c.setState(func() { c.connected = false })
	case pq.ListenerEventReconnected:
		// pq has listened again on the new connection: from here on no
		// change goes unnoticed, and what was kept before is dropped.
		c.setState(func() { c.connected, c.answering = true, true })
		c.log.Info("catalog cache listener reconnected")
	}
}

// setState changes the listener's state with change, empties the cache
// and moves every ticket on.
func (c *Cache) setState(change func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	change()
	c.listening = c.connected && c.answering
	c.clearLocked()
}

// run applies notifications as they come.
func (c *Cache) run() {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		case n, ok := <-c.listener.Notify:
			if !ok {
				return
			}
			if n == nil {
				// After a reconnect: listenerEvent has emptied the cache.
				continue
			}
			if n.Extra == EverythingChanged {
				c.InvalidateAll()
			} else {
				c.Invalidate(n.Extra)
			}
			c.metrics.notifications.Inc()
		}
	}
}

// pings checks the listening connection every PingInterval, apart from
// run, so a slow answer never holds notifications back.
func (c *Cache) pings() {
	t := time.NewTicker(c.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.ping()
		}
	}
}

// ping checks that the listening connection answers within PingTimeout;
// while it does not, the cache is bypassed (a silent connection may be
// losing notifications).
func (c *Cache) ping() {
	if c.pending == nil {
		// No ping is still waiting for its answer: send one.
		c.pending = make(chan error, 1)
		go func(answer chan<- error) { answer <- c.listener.Ping() }(c.pending)
	}
	var err error
	select {
	case err = <-c.pending:
		c.pending = nil
	case <-time.After(c.cfg.PingTimeout):
		err = fmt.Errorf("no answer within %v", c.cfg.PingTimeout)
	case <-c.stop:
		return
	}
	c.mu.Lock()
	was := c.answering
	c.mu.Unlock()
	switch {
	case err != nil && was:
		c.setState(func() { c.answering = false })
		c.log.Warn("catalog cache listener does not answer: cache bypassed", "err", err)
	case err == nil && !was:
		// Answering again (a new connection reports through
		// listenerEvent): what was kept is dropped all the same.
		c.setState(func() { c.answering = true })
	}
}

// Close stops listening; the cache then keeps nothing.
func (c *Cache) Close() error {
	if c == nil {
		return nil
	}
	c.setState(func() { c.connected = false })
	close(c.stop)
	err := c.listener.Close()
	<-c.done
	return err
}

// Get returns the entry for k, if one is kept and current.
func (c *Cache) Get(k Key, now time.Time) (Entry, bool) {
	if c == nil {
		return Entry{}, false
	}
	c.mu.Lock()
	el, ok := c.items[k]
	if ok && !c.listening {
		ok = false
	}
	var e Entry
	if ok {
		it := el.Value.(*item)
		switch {
		case !it.kept:
			ok = false
		case now.Before(it.entry.ExpiresAt):
			c.lru.MoveToFront(el)
			e = it.entry
		default:
			c.dropAnswerLocked(el)
			c.metrics.bytes.Set(float64(c.bytes))
			ok = false
		}
	}
	c.mu.Unlock()
	if ok {
		c.metrics.hits.Inc()
	} else {
		c.metrics.misses.Inc()
	}
	return e, ok
}

// Begin takes the ticket a miss offers its read with: call it before
// reading the database.
func (c *Cache) Begin(k Key) Ticket {
	if c == nil {
		return Ticket{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.listening {
		return Ticket{}
	}
	return Ticket{key: k, all: c.all, part: c.partLocked(k), valid: true}
}

// Put keeps e for t's key unless something it depends on was invalidated
// since t was taken, it is too large, or (a product) it is older than a
// read of the product already offered. An answer not kept still raises
// its product's floor: it was answered, so nothing older is kept after it.
func (c *Cache) Put(t Ticket, e Entry) {
	if c == nil || !t.valid {
		return
	}
	size := e.size(t.key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.listening {
		c.metrics.refused.Inc()
		return
	}
	var floor int64
	if el, ok := c.items[t.key]; ok {
		floor = el.Value.(*item).floor
	}
	if e.Version > 0 && e.Version < floor {
		// Older than a read of the product already answered.
		c.metrics.refused.Inc()
		return
	}
	if c.all != t.all || c.partLocked(t.key) != t.part {
		// It may predate a change applied meanwhile, but it was answered:
		// nothing older than it may be kept from now on.
		c.raiseFloorLocked(t.key, e.Version)
		c.metrics.refused.Inc()
		return
	}
	if size > c.cfg.MaxBytes/8 {
		c.raiseFloorLocked(t.key, e.Version) // too large to keep
		return
	}
	if el, ok := c.items[t.key]; ok {
		c.removeLocked(el)
	}
	el := c.lru.PushFront(&item{key: t.key, entry: e, kept: true, floor: max(floor, e.Version), size: size})
	c.items[t.key] = el
	if t.key.List != "" {
		c.listItems[t.key] = el
	}
	c.bytes += size
	for c.bytes > c.cfg.MaxBytes {
		c.removeLocked(c.lru.Back())
	}
	c.compactLocked()
	c.metrics.bytes.Set(float64(c.bytes))
}

// Invalidate drops product id and every list, and refuses the reads of
// them in flight.
func (c *Cache) Invalidate(id string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.product[c.stripe(id)]++
	if el, ok := c.items[Key{Product: id}]; ok {
		c.dropAnswerLocked(el)
	}
	c.dropListsLocked()
}

// InvalidateLists drops every list (a product was added) and refuses the
// reads of lists in flight.
func (c *Cache) InvalidateLists() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropListsLocked()
}

func (c *Cache) dropListsLocked() {
	c.listGen++
	for _, el := range c.listItems {
		c.removeLocked(el)
	}
	c.compactLocked()
	c.metrics.bytes.Set(float64(c.bytes))
}

// InvalidateAll drops everything and refuses every read in flight.
func (c *Cache) InvalidateAll() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
}

func (c *Cache) clearLocked() {
	c.all++
	c.lru.Init()
	// New maps rather than clear: cleared maps keep their room.
	c.items = make(map[Key]*list.Element)
	c.listItems = make(map[Key]*list.Element)
	c.removed = 0
	c.bytes = 0
	c.metrics.bytes.Set(0)
}

// dropAnswerLocked drops an item's answer and keeps its product's floor
// (a list's item goes whole).
func (c *Cache) dropAnswerLocked(el *list.Element) {
	it := el.Value.(*item)
	if it.key.Product == "" || it.floor == 0 {
		c.removeLocked(el)
		c.compactLocked()
		return
	}
	if !it.kept {
		return
	}
	floorSize := int64(len(it.key.Product) + entryOverhead)
	c.bytes -= it.size - floorSize
	it.entry, it.kept, it.size = Entry{}, false, floorSize
}

// raiseFloorLocked remembers that version v of the product k names was
// answered: a kept answer older than it is dropped.
func (c *Cache) raiseFloorLocked(k Key, v int64) {
	if k.Product == "" || v == 0 {
		return
	}
	if el, ok := c.items[k]; ok {
		it := el.Value.(*item)
		if v <= it.floor {
			return
		}
		it.floor = v
		if it.kept && it.entry.Version < v {
			c.dropAnswerLocked(el)
		}
		c.metrics.bytes.Set(float64(c.bytes))
		return
	}
	size := int64(len(k.Product) + entryOverhead)
	c.items[k] = c.lru.PushFront(&item{key: k, floor: v, size: size})
	c.bytes += size
	for c.bytes > c.cfg.MaxBytes {
		c.removeLocked(c.lru.Back())
	}
	c.compactLocked()
	c.metrics.bytes.Set(float64(c.bytes))
}

func (c *Cache) removeLocked(el *list.Element) {
	it := c.lru.Remove(el).(*item)
	delete(c.items, it.key)
	delete(c.listItems, it.key)
	c.bytes -= it.size
	c.removed++
}

// compactLocked makes the maps afresh, with what they hold, once more
// entries have been removed from them than they hold (and not for a
// handful): each entry is copied once per as many removals, so it costs
// O(1) a removal, and the maps' room stays in proportion to the entries
// the memory bound counts. Not within a range over them.
func (c *Cache) compactLocked() {
	if c.removed < minCompaction || c.removed < 2*len(c.items) {
		return
	}
	items := make(map[Key]*list.Element, len(c.items))
	maps.Copy(items, c.items)
	lists := make(map[Key]*list.Element, len(c.listItems))
	maps.Copy(lists, c.listItems)
	c.items, c.listItems, c.removed = items, lists, 0
}

func (c *Cache) partLocked(k Key) uint64 {
	if k.Product != "" {
		return c.product[c.stripe(k.Product)]
	}
	return c.listGen
}

func (c *Cache) stripe(id string) int {
	return int(maphash.String(c.seed, id) % stripes)
}

// Len is how many entries are kept.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}
