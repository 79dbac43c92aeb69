package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The idle-streams scenario opens -streams live streams (GET
// /v1/admin/events, as the admin, each on its own connection), waits until
// each has said it is connected and the server's /metrics counts them all
// open, and reports the server's resident memory before and after: what an
// idle stream costs (its goroutine, its connection's buffers, its event
// buffer). `make bench BENCH_FLAGS=-scenarios=idle-streams` runs it alone.

// streamsResult is what the idle-streams scenario measured.
type streamsResult struct {
	streams int
	// beforeRSS and afterRSS are the server's VmRSS (KiB) before the
	// streams were opened and with all of them open.
	beforeRSS, afterRSS int64
	opened              time.Duration
	err                 error
}

func (r streamsResult) print(out io.Writer) {
	fmt.Fprintf(out, "\nidle streams: %d open GET /v1/admin/events streams (opened in %v)\n", r.streams, r.opened.Round(10*time.Millisecond))
	if r.err != nil {
		fmt.Fprintf(out, "  failed: %v\n", r.err)
		return
	}
	delta := r.afterRSS - r.beforeRSS
	fmt.Fprintf(out, "  server RSS before %.1f MiB, with the streams open %.1f MiB: +%.1f MiB, %.1f KiB per stream\n",
		mib(r.beforeRSS), mib(r.afterRSS), mib(delta), float64(delta)/float64(r.streams))
}

// idleStreams opens n streams as the admin and measures the server's RSS
// around them; it closes them before returning.
func idleStreams(ctx context.Context, a api, pid, n int) streamsResult {
	r := streamsResult{streams: n}
	admin, err := a.login(ctx, adminEmail, adminPassword)
	if err != nil {
		r.err = fmt.Errorf("admin login: %w", err)
		return r
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: n, DisableCompression: true}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // closes the streams

	_, r.beforeRSS, _ = memoryKiB(pid)
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bodies []io.Closer
	errs := make(chan error, n)
	// At most 50 being opened at once: a storm of connects is not what is
	// measured.
	sem := make(chan struct{}, 50)
	for range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/v1/admin/events", nil)
			if err != nil {
				errs <- err
				return
			}
			req.Header.Set("Authorization", "Bearer "+admin)
			res, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			if res.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(io.LimitReader(res.Body, 500))
				res.Body.Close()
				errs <- fmt.Errorf("status %d: %s", res.StatusCode, b)
				return
			}
			line, err := bufio.NewReader(res.Body).ReadString('\n')
			if err != nil || line != ": connected\n" {
				res.Body.Close()
				errs <- fmt.Errorf("first line %q: %v", line, err)
				return
			}
			mu.Lock()
			bodies = append(bodies, res.Body)
			mu.Unlock()
		})
	}
	wg.Wait()
	r.opened = time.Since(start)
	defer func() {
		for _, b := range bodies {
			b.Close()
		}
	}()
	close(errs)
	if err, ok := <-errs; ok {
		r.err = fmt.Errorf("%d of %d streams failed to open; first: %w", n-len(bodies), n, err)
		return r
	}
	var m string
	if err := a.metrics(ctx, &m); err != nil {
		r.err = err
		return r
	}
	if want := fmt.Sprintf(`shopd_streams_open{stream="admin"} %d`, n); !strings.Contains(m, want) {
		r.err = fmt.Errorf("/metrics does not say %s", want)
		return r
	}
	// Let the allocations of opening settle (idle streams allocate nothing).
	time.Sleep(time.Second)
	_, r.afterRSS, r.err = memoryKiB(pid)
	return r
}

// metrics reads the server's /metrics text, with the bench's metrics token.
func (a api) metrics(ctx context.Context, out *string) error {
	const path = "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+metricsToken)
	res, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %v", path, res.StatusCode, err)
	}
	*out = string(b)
	return nil
}
