package server

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestStreamSlowConsumerDropped: a client that stops reading (with a small
// receive buffer, so that the server's writes to it block soon) is
// dropped once it falls a buffer behind; a client reading beside it gets
// every event meanwhile. The dropped client's stream ends after what was
// already on its way, and resuming with its last event's id gets exactly
// the rest.
func TestStreamSlowConsumerDropped(t *testing.T) {
	t.Parallel()
	servers, sh := startShops(t, 1, map[string]string{"STREAM_HEARTBEAT": "1h"})
	s := servers[0]
	fast := openStream(t, s.base, "/v1/admin/events", sh.admin, nil)

	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	slowClient := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, s.base+"/v1/admin/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+sh.admin)
	res, err := slowClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("slow stream: %d", res.StatusCode)
	}
	// Not read from here on, until the hub has dropped it.

	const dropped = `shopd_stream_slow_consumers_dropped_total{stream="admin"} 1`
	var all []string
	for burst := 0; !strings.Contains(s.metrics(t), dropped); burst++ {
		if burst == 10 {
			t.Fatalf("not dropped after %d events:\n%s", len(all), grepLines(s.metrics(t), "stream"))
		}
		want := sh.crossings(t, 2000)
		all = append(all, want...)
		// The reading client is not held up by the stalled one.
		if got := skusOf(fast.events(t, len(want))); !slices.Equal(got, want) {
			t.Fatalf("burst %d: the reading client got %d events, not the burst in order", burst, len(got))
		}
	}

	t.Logf("dropped after %d events", len(all))
	slow := &sseClient{res: res, items: make(chan sseItem, len(all)+10)}
	go slow.read()
	got, ended := slow.ended()
	if !ended {
		t.Fatal("the dropped stream did not end")
	}
	if len(got) == 0 || len(got) >= len(all) || !slices.Equal(skusOf(got), all[:len(got)]) {
		t.Fatalf("the dropped client read %d of %d events; want a proper prefix, in order", len(got), len(all))
	}
	again := openStream(t, s.base, "/v1/admin/events", sh.admin, map[string]string{"Last-Event-ID": got[len(got)-1].ID})
	rest := again.events(t, len(all)-len(got))
	if !slices.Equal(append(skusOf(got), skusOf(rest)...), all) {
		t.Errorf("resumed: %d + %d events, not every event once in order", len(got), len(rest))
	}
	if strings.Contains(s.metrics(t), `shopd_stream_slow_consumers_dropped_total{stream="admin"} 2`) {
		t.Error("the reading client was dropped too")
	}
}
