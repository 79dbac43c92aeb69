package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// poolStats is the server's database pool during a phase, from the
// go_sql_* series of its /metrics (sql.DB Stats): the most connections in
// use at any sample and on average over the samples, the pool's cap, and
// how often a query had to wait for a free connection (0: the pool was
// never exhausted).
type poolStats struct {
	peakInUse, maxOpen int
	meanInUse          float64
	waits              int64
	err                error
}

// poolSampler reads /metrics every 50 ms until stop, keeping the peak.
// Uncompressed: gzip would cost the server more CPU than the page.
type poolSampler struct {
	base   string
	client *http.Client
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	first  map[string]float64
	last   map[string]float64
	peak   float64
	sum    float64
	n      int
	err    error
}

func samplePool(base string) *poolSampler {
	p := &poolSampler{base: base, client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableCompression: true}},
		stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			p.sample()
			select {
			case <-p.stop:
				p.sample()
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return p
}

func (p *poolSampler) sample() {
	m, err := scrapePool(context.Background(), p.client, p.base)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.err = err
		return
	}
	if p.first == nil {
		p.first = m
	}
	p.last = m
	v := m["go_sql_in_use_connections"]
	p.peak = max(p.peak, v)
	p.sum += v
	p.n++
}

// end stops sampling and returns what it saw.
func (p *poolSampler) end() poolStats {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.first == nil {
		return poolStats{err: p.err}
	}
	return poolStats{
		peakInUse: int(p.peak),
		meanInUse: p.sum / float64(p.n),
		maxOpen:   int(p.last["go_sql_max_open_connections"]),
		waits:     int64(p.last["go_sql_wait_count_total"] - p.first["go_sql_wait_count_total"]),
	}
}

// scrapePool reads the go_sql_* gauges and counters from /metrics.
func scrapePool(ctx context.Context, client *http.Client, base string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+metricsToken)
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", res.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "go_sql_") {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			if v, err := strconv.ParseFloat(rest[i+1:], 64); err == nil {
				out[name] = v
			}
		}
	}
	return out, sc.Err()
}

func (p poolStats) String() string {
	if p.err != nil && p.maxOpen == 0 {
		return "unknown (" + p.err.Error() + ")"
	}
	verdict := "never exhausted"
	if p.waits > 0 {
		verdict = "EXHAUSTED"
	}
	return "peak " + strconv.Itoa(p.peakInUse) + " of " + strconv.Itoa(p.maxOpen) + " in use (mean " +
		strconv.FormatFloat(p.meanInUse, 'f', 1, 64) + "), " +
		strconv.FormatInt(p.waits, 10) + " waits for a connection: " + verdict
}

// cpuProfile fetches a CPU profile of the server over the next d from its
// /debug/pprof/profile and writes it to path (for `go tool pprof`).
func cpuProfile(ctx context.Context, base string, d time.Duration, path string) error {
	secs := max(int(d.Seconds()), 1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+metricsToken)
	res, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("cpu profile: %s", res.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
