// Package pglisten opens the PostgreSQL connections that LISTEN for
// notifications (lib/pq's Listener): named for pg_stat_activity, and
// given a bounded time to connect at start-up, after which pq keeps
// reconnecting by itself.
package pglisten

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/lib/pq"
)

// Timeout bounds the wait for the first connection.
const Timeout = 30 * time.Second

// Listen connects a listener named appName (its application_name) to dsn
// and listens on channel; onEvent hears of its connection's changes. It
// returns once LISTEN has taken effect, or fails after Timeout or when
// ctx ends.
func Listen(ctx context.Context, dsn, appName, channel string, onEvent pq.EventCallbackType) (*pq.Listener, error) {
	l := pq.NewListener(withApplicationName(dsn, appName), 10*time.Millisecond, time.Second, onEvent)
	// Listen waits for a connection as long as it takes (pq retries);
	// start-up does not.
	listening := make(chan error, 1)
	go func() { listening <- l.Listen(channel) }()
	var err error
	select {
	case err = <-listening:
	case <-ctx.Done():
		err = ctx.Err()
	case <-time.After(Timeout):
		err = fmt.Errorf("no connection within %v", Timeout)
	}
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("listen on %s: %w", channel, err)
	}
	return l, nil
}

// withApplicationName sets application_name in a URL or key=value DSN.
func withApplicationName(dsn, name string) string {
	if !strings.Contains(dsn, "://") {
		return dsn + " application_name=" + name
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn // pq reports it
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}
