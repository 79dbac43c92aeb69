package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopd/shopd"

	"github.com/shopd/shopd/internal/pglisten"
)

// Channel is the PostgreSQL notification channel the stream_events
// triggers notify (migration 0010).
const Channel = "shopd_stream_events"

// ListenerApplicationName is the application_name of each instance's
// listening connection, to find it in pg_stat_activity.
const ListenerApplicationName = "shopd-stream-listener"

// Defaults of Config.
const (
	DefaultMaxStreams = 1000
	// DefaultMaxStreamsPerUser bounds one customer's streams open at once
	// on an instance (an order followed in a few tabs), so that one account
	// (anyone may register) cannot take every stream the instance may serve.
	DefaultMaxStreamsPerUser = 16
	// DefaultBuffer is how many events a subscriber may fall behind the
	// fan-out before it is dropped: a few pages, so that a burst committed
	// at once reaches subscribers that keep up.
	DefaultBuffer = 4 * pageSize
	// stallWindow is how long a subscriber short of room for the next
	// page may drain nothing before the hub stops waiting for it (and
	// drops it): what a stalled subscriber can cost the others, once.
	stallWindow = 50 * time.Millisecond
	// lagGrace bounds the hub's wait for room per page, however the
	// subscribers drain: one that needs longer than this to take a page
	// (a subscriber that keeps up takes one in milliseconds) is too slow
	// for the others to wait for, and is dropped.
	lagGrace = 250 * time.Millisecond
	// DefaultPollInterval is how often the hub reads the table without
	// being notified: a safety net, since a listener that reconnects
	// catches up by itself.
	DefaultPollInterval = 5 * time.Second
	// settleRetry is how soon the hub reads again when committed events
	// wait for an older transaction to finish; doubled up to a second
	// while they wait.
	settleRetry = 10 * time.Millisecond
	// retryAfterFull is what a client refused for want of room is told to
	// wait.
	retryAfterFull = 5 * time.Second
)

// Config configures a Hub.
type Config struct {
	DB *sqlx.DB
	// DatabaseURL is where the listening connection goes (the database DB
	// is on).
	DatabaseURL string
	// MaxStreams bounds the subscriptions open at once on this instance.
	MaxStreams int
	// MaxStreamsPerUser bounds one user's subscriptions open at once on
	// this instance (those Subscribe counts against a user).
	MaxStreamsPerUser int
	// Buffer is each subscriber's event buffer.
	Buffer int
	// PollInterval is how often the table is read without a notification.
	PollInterval time.Duration
	Registry     prometheus.Registerer
	Log          *slog.Logger
}

// Hub is one instance's fan-out: it follows stream_events from where it
// started and hands each new event to the subscriptions it concerns.
type Hub struct {
	db       *sqlx.DB
	listener *pq.Listener
	cfg      Config
	metrics  *metrics
	log      *slog.Logger
	stop     context.CancelFunc
	done     chan struct{}

	mu     sync.Mutex
	cursor Cursor // the last event fanned out (or the head it started at)
	subs   map[*Subscription]struct{}
	users  map[string]int // open subscriptions by user
	closed bool
}

// Start reads the head of the streams, connects the listener and starts
// following. Close stops it.
func Start(ctx context.Context, cfg Config) (*Hub, error) {
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.MaxStreamsPerUser <= 0 {
		cfg.MaxStreamsPerUser = DefaultMaxStreamsPerUser
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	start, err := head(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	h := &Hub{db: cfg.DB, cfg: cfg, metrics: m, log: cfg.Log, cursor: start,
		subs: make(map[*Subscription]struct{}), users: make(map[string]int), done: make(chan struct{})}
	if h.listener, err = pglisten.Listen(ctx, cfg.DatabaseURL, ListenerApplicationName, Channel, h.listenerEvent); err != nil {
		return nil, fmt.Errorf("stream events: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	h.stop = stop
	go h.run(runCtx)
	return h, nil
}

func (h *Hub) listenerEvent(ev pq.ListenerEventType, err error) {
	switch ev {
	case pq.ListenerEventDisconnected:
		h.log.Warn("stream listener disconnected; reconnecting", "err", err)
	case pq.ListenerEventReconnected:
		// pq also sends a nil notification: run reads what was missed.
		h.log.Info("stream listener reconnected; catching up from the table")
	case pq.ListenerEventConnectionAttemptFailed:
		h.log.Warn("stream listener cannot connect", "err", err)
	}
}

// run reads new events whenever notified, on a timer, and soon again
// while committed events wait for an older transaction.
func (h *Hub) run(ctx context.Context) {
	defer close(h.done)
	// A first read at once: events committed between reading the head and
	// the LISTEN taking effect were notified to no one.
	timer := time.NewTimer(0)
	defer timer.Stop()
	wait := settleRetry
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-h.listener.Notify:
			if !ok {
				return
			}
		case <-timer.C:
		}
		pending, err := h.catchUp(ctx)
		next := h.cfg.PollInterval
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			h.log.Error("read stream events", "err", err)
			next = time.Second
		case pending:
			next, wait = wait, min(2*wait, time.Second)
		default:
			wait = settleRetry
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// catchUp fans out every settled event after the hub's cursor, and tells
// whether committed events wait for older transactions.
func (h *Hub) catchUp(ctx context.Context) (pending bool, err error) {
	for {
		h.mu.Lock()
		from := h.cursor
		h.mu.Unlock()
		events, err := readSettled(ctx, h.db, "", from, maxCursor)
		if err != nil {
			return false, err
		}
		h.awaitRoom(ctx, len(events))
		h.fanOut(events)
		if len(events) < pageSize {
			break
		}
	}
	if err := sqlx.GetContext(ctx, h.db, &pending, unsettledSQL); err != nil {
		return false, fmt.Errorf("look for unsettled stream events: %w", err)
	}
	return pending, nil
}

// awaitRoom waits until every subscription has room for n more events,
// as long as the ones short of room are draining their buffers: a burst
// larger than the buffers (a transaction that records hundreds of events)
// then reaches every subscriber that keeps up, page by page, at the pace
// of the slowest of them, instead of dropping them all. A subscription
// that drains nothing for stallWindow is stalled: the hub stops waiting
// and fanOut drops it. Whatever the subscribers do, it waits at most
// lagGrace per page.
func (h *Hub) awaitRoom(ctx context.Context, n int) {
	deadline := time.Now().Add(lagGrace)
	lastProgress := time.Now()
	before := map[*Subscription]int{}
	for {
		h.mu.Lock()
		short := map[*Subscription]int{}
		for s := range h.subs {
			if cap(s.ch)-len(s.ch) < n {
				short[s] = len(s.ch)
			}
		}
		h.mu.Unlock()
		now := time.Now()
		for s, queued := range short {
			if prev, ok := before[s]; ok && queued < prev {
				lastProgress = now
			}
		}
		if len(short) == 0 || now.After(deadline) || now.Sub(lastProgress) > stallWindow {
			return
		}
		before = short
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// fanOut hands each event to the subscriptions it concerns without ever
// waiting: a subscription whose buffer is full is dropped (its stream
// ends; its client resumes with Last-Event-ID).
func (h *Hub) fanOut(events []Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range events {
		e := &events[i] // shared by every subscriber, read-only
		if !e.Cursor.After(h.cursor) {
			continue // fanned out already, by a read that overlapped this one
		}
		h.metrics.fannedOut(e.Type)
		for s := range h.subs {
			if s.orderID != "" && (e.OrderID == nil || *e.OrderID != s.orderID) {
				continue
			}
			select {
			case s.ch <- e:
			default:
				h.removeLocked(s)
				s.dropped = true
				h.metrics.dropped.WithLabelValues(s.kind()).Inc()
			}
		}
		h.cursor = e.Cursor
	}
}

// ErrClosed is Subscribe's answer once the hub is shutting down.
var ErrClosed = shopd.Errorf(shopd.EUnavailable, "This instance is shutting down; reconnect.")

// Subscribe opens a subscription to every event (orderID "") or to one
// order's, counted against userID's MaxStreamsPerUser unless userID is ""
// (staff, whom the instance's MaxStreams alone bounds). It starts after the last event the hub has fanned out
// (Subscription.Start); a client resuming from an earlier event reads the
// ones in between with Replay. EUnavailable, with a Retry-After, when the
// instance has MaxStreams open or is shutting down; ERateLimited, with a
// Retry-After, when userID has MaxStreamsPerUser open.
func (h *Hub) Subscribe(userID, orderID string) (*Subscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if len(h.subs) >= h.cfg.MaxStreams {
		return nil, &shopd.Error{Code: shopd.EUnavailable, RetryAfter: retryAfterFull,
			Message: "Too many open streams on this instance; retry later."}
	}
	if userID != "" && h.users[userID] >= h.cfg.MaxStreamsPerUser {
		return nil, &shopd.Error{Code: shopd.ERateLimited, RetryAfter: retryAfterFull,
			Message: fmt.Sprintf("At most %d streams open at once per customer; close one or retry later.", h.cfg.MaxStreamsPerUser)}
	}
	s := &Subscription{hub: h, userID: userID, orderID: orderID, ch: make(chan *Event, h.cfg.Buffer), Start: h.cursor}
	h.subs[s] = struct{}{}
	if userID != "" {
		h.users[userID]++
	}
	h.metrics.open.WithLabelValues(s.kind()).Inc()
	return s, nil
}

// Issued reports whether c's transaction has begun, as that of every event
// id the streams sent has; false for an id from the future, which would
// skip every event to come.
func (h *Hub) Issued(ctx context.Context, c Cursor) (bool, error) {
	return issued(ctx, h.db, c)
}

// Replay calls fn for each settled event after from and up to upTo, in
// order, of orderID's order when it is not "".
func (h *Hub) Replay(ctx context.Context, orderID string, from, upTo Cursor, fn func(Event) error) error {
	for {
		events, err := readSettled(ctx, h.db, orderID, from, upTo)
		if err != nil {
			return err
		}
		for _, e := range events {
			if err := fn(e); err != nil {
				return err
			}
			from = e.Cursor
		}
		if len(events) < pageSize {
			return nil
		}
	}
}

// Shutdown ends every subscription and refuses new ones: the streams end,
// so that the HTTP server's shutdown does not wait for them.
func (h *Hub) Shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		h.removeLocked(s)
	}
}

// Close shuts the hub down and closes its listening connection.
func (h *Hub) Close() error {
	h.Shutdown()
	h.stop()
	<-h.done
	if err := h.listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close stream listener: %w", err)
	}
	return nil
}

// removeLocked ends s; h.mu is held.
func (h *Hub) removeLocked(s *Subscription) {
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	if s.userID != "" {
		if h.users[s.userID]--; h.users[s.userID] == 0 {
			delete(h.users, s.userID)
		}
	}
	close(s.ch)
	h.metrics.open.WithLabelValues(s.kind()).Dec()
}

// Subscription is one stream's feed from the hub.
type Subscription struct {
	hub     *Hub
	userID  string // counted against MaxStreamsPerUser; "" is not
	orderID string
	ch      chan *Event
	// Start is the position the subscription starts after.
	Start Cursor
	// dropped is set, under the hub's lock, when the hub ended the
	// subscription because its buffer was full.
	dropped bool
}

// Events delivers the subscription's events, shared with the other
// subscriptions: read them, never change them. It is closed when the
// subscription ends (Close, a full buffer, the hub's shutdown). A
// pointer per buffered event keeps an idle subscription's buffer small.
func (s *Subscription) Events() <-chan *Event { return s.ch }

// Dropped reports whether the hub ended the subscription because the
// stream fell behind.
func (s *Subscription) Dropped() bool {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.dropped
}

// Close ends the subscription; closing it again does nothing.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.hub.removeLocked(s)
}

// kind is the subscription's metrics label.
func (s *Subscription) kind() string {
	if s.orderID == "" {
		return streamAdmin
	}
	return streamOrder
}
