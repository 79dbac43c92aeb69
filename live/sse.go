package live

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// writeWait bounds each write to a stream: a client that does not read
// for this long is cut off (and resumes with Last-Event-ID). It replaces
// the server's WriteTimeout, which would end every stream.
const writeWait = 10 * time.Second

// DefaultHeartbeat is the interval of the comment lines that keep idle
// streams (and the proxies between) alive.
const DefaultHeartbeat = 15 * time.Second

// Stream is one Server-Sent Event response.
type Stream struct {
	Hub *Hub
	Sub *Subscription
	// After is where the client resumes (its Last-Event-ID); nil starts
	// at the subscription's start.
	After     *Cursor
	Heartbeat time.Duration
	// Check, when set, is called at each heartbeat; an error ends the
	// stream (its user's account is gone or lost the role it opened with).
	Check func(context.Context) error
}

// Serve writes the stream to w until the client goes (ctx ends), the
// subscription ends (the hub's shutdown, or the stream fell behind), a
// write fails, or Check refuses. It first replays from the table what the client missed
// (after After, up to where the subscription starts), then the
// subscription's events; any event at or before the last one written is
// skipped, so the client sees each event once, in order. Once the
// response has started, errors can only end it.
func (s Stream) Serve(ctx context.Context, w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	// The server's ReadTimeout would cancel the request's context part way
	// through the stream; a client that goes is still noticed (its
	// connection's read returns).
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each event on as it comes
	w.WriteHeader(http.StatusOK)
	write := func(text string) error {
		if err := rc.SetWriteDeadline(time.Now().Add(writeWait)); err != nil {
			return err
		}
		if _, err := fmt.Fprint(w, text); err != nil {
			return err
		}
		return rc.Flush()
	}
	last := s.Sub.Start
	send := func(e *Event) error {
		if !e.Cursor.After(last) {
			return nil
		}
		data, err := e.Data()
		if err != nil {
			return err
		}
		if err := write(fmt.Sprintf("id: %s\nevent: %s\ndata: %s\n\n", e.Cursor, e.Type, data)); err != nil {
			return err
		}
		last = e.Cursor
		return nil
	}
	// retry: how long an EventSource waits before reconnecting.
	if err := write(": connected\nretry: 2000\n\n"); err != nil {
		return
	}
	if s.After != nil {
		if s.After.After(last) {
			last = *s.After // ahead of this instance's hub: skip what it sent
		} else {
			from := *s.After
			last = from
			if err := s.Hub.Replay(ctx, s.Sub.orderID, from, s.Sub.Start, func(e Event) error { return send(&e) }); err != nil {
				return
			}
		}
	}
	heartbeat := s.Heartbeat
	if heartbeat <= 0 {
		heartbeat = DefaultHeartbeat
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-s.Sub.Events():
			if !ok {
				return
			}
			if err := send(e); err != nil {
				return
			}
		case <-tick.C:
			if s.Check != nil && s.Check(ctx) != nil {
				return
			}
			if err := write(": heartbeat\n\n"); err != nil {
				return
			}
		}
	}
}
