package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// The load driver is closed-loop: each of the c clients sends its next
// operation as soon as the previous one is answered, so ops/s is what the
// server sustains at that concurrency and the latencies are the ones those
// clients saw (no coordinated-omission correction is needed, or possible,
// without a target rate).

// worker is one client. Its fields other than rec persist across phases.
type worker struct {
	id     int
	iter   int
	client *http.Client
	base   string
	token  string // the checkout customer's
	rec    *recorder
}

// recorder collects one worker's samples in one phase; merged afterwards.
type recorder struct {
	ops    []time.Duration // successful operations
	opErrs int
	reqs   map[string]*reqStats // per request label
	errs   map[string]*errStats // per "label -> status"
}

type reqStats struct {
	lat  []time.Duration
	errs int
}

type errStats struct {
	n      int
	sample string
}

func newRecorder() *recorder {
	return &recorder{reqs: map[string]*reqStats{}, errs: map[string]*errStats{}}
}

func (r *recorder) req(label string) *reqStats {
	s := r.reqs[label]
	if s == nil {
		s = &reqStats{}
		r.reqs[label] = s
	}
	return s
}

func (r *recorder) fail(label, what, sample string) {
	r.req(label).errs++
	k := label + " -> " + what
	e := r.errs[k]
	if e == nil {
		e = &errStats{sample: truncate(sample, 300)}
		r.errs[k] = e
	}
	e.n++
}

// do sends one request and records its latency, or an error when it fails
// or answers anything but want.
func (w *worker) do(label, method, path string, body []byte, header http.Header, want int) bool {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	// Requests are not tied to the phase's end: one in flight finishes.
	req, err := http.NewRequest(method, w.base+path, r)
	if err != nil {
		w.rec.fail(label, err.Error(), "")
		return false
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if w.token != "" {
		req.Header.Set("Authorization", "Bearer "+w.token)
	}
	start := time.Now()
	resp, err := w.client.Do(req)
	if err != nil {
		w.rec.fail(label, "transport error", err.Error())
		return false
	}
	var sample []byte
	if resp.StatusCode != want {
		sample, _ = io.ReadAll(io.LimitReader(resp.Body, 4096))
	}
	_, copyErr := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	switch {
	case resp.StatusCode != want:
		w.rec.fail(label, fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode)), string(sample))
		return false
	case copyErr != nil:
		w.rec.fail(label, "reading body", copyErr.Error())
		return false
	}
	s := w.rec.req(label)
	s.lat = append(s.lat, elapsed)
	return true
}

// scenario is one measured operation.
type scenario struct {
	name string
	// requests names the rows printed under a multi-request scenario.
	requests []string
	// setup gives each worker its state (token) before the first phase.
	setup func(w *worker)
	op    func(w *worker) bool
}

func listScenario() scenario {
	const label = "GET /v1/products?limit=20"
	return scenario{
		name:  "list products",
		setup: func(w *worker) { w.token = "" },
		op: func(w *worker) bool {
			return w.do(label, http.MethodGet, "/v1/products?limit=20", nil, nil, http.StatusOK)
		},
	}
}

func getScenario(ids []string, clients int) scenario {
	const label = "GET /v1/products/{id}"
	return scenario{
		name:  "get product",
		setup: func(w *worker) { w.token = "" },
		op: func(w *worker) bool {
			// Client i walks the ids from offset i, so all are read evenly.
			id := ids[(w.id+w.iter*clients)%len(ids)]
			return w.do(label, http.MethodGet, "/v1/products/"+id, nil, nil, http.StatusOK)
		},
	}
}

// checkoutAddress is the shipping address every bench checkout sends.
var checkoutAddress = map[string]string{
	"firstName": "Bench", "lastName": "Customer", "line1": "1 Load Street",
	"city": "Testville", "postalCode": "12345", "country": "US",
}

func checkoutScenario(f fixture) scenario {
	const cartLabel, checkoutLabel = "POST /v1/cart/items", "POST /v1/checkout"
	checkoutBody := mustJSON(map[string]any{"shippingAddress": checkoutAddress})
	nonce := randomHex(6) // keys stay unique across runs against one database
	return scenario{
		name:     "add-to-cart + checkout",
		requests: []string{cartLabel, checkoutLabel},
		setup: func(w *worker) {
			w.token = f.customers[w.id].Token
		},
		op: func(w *worker) bool {
			item := mustJSON(map[string]any{"productId": f.stockIDs[w.id%len(f.stockIDs)], "quantity": 1})
			if !w.do(cartLabel, http.MethodPost, "/v1/cart/items", item, nil, http.StatusCreated) {
				return false
			}
			key := fmt.Sprintf("bench-%s-%d-%d", nonce, w.id, w.iter)
			h := http.Header{"Idempotency-Key": {key}}
			return w.do(checkoutLabel, http.MethodPost, "/v1/checkout", checkoutBody, h, http.StatusCreated)
		},
	}
}

// result is one scenario's measured phase, merged over its workers.
type result struct {
	name    string
	elapsed time.Duration
	op      stats
	reqs    []namedStats // the rows under a multi-request scenario
	errs    map[string]*errStats
}

type namedStats struct {
	name string
	stats
}

type stats struct {
	n      int
	errs   int
	p50    time.Duration
	p99    time.Duration
	perSec float64
}

func summarize(lat []time.Duration, errs int, elapsed time.Duration) stats {
	s := stats{n: len(lat), errs: errs}
	if len(lat) > 0 {
		slices.Sort(lat)
		s.p50, s.p99 = percentile(lat, 0.50), percentile(lat, 0.99)
	}
	if elapsed > 0 {
		s.perSec = float64(len(lat)) / elapsed.Seconds()
	}
	return s
}

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// run runs the scenario's clients for d and returns what they measured.
// The workers stop starting operations at the deadline (or when ctx ends);
// elapsed lasts until the last one in flight is answered.
func run(ctx context.Context, sc scenario, workers []*worker, d time.Duration) result {
	var stop atomic.Bool
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	done := context.AfterFunc(ctx, func() { stop.Store(true) })
	defer done()

	start := time.Now()
	var wg sync.WaitGroup
	for _, w := range workers {
		w.rec = newRecorder()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				t0 := time.Now()
				ok := sc.op(w)
				if ok {
					w.rec.ops = append(w.rec.ops, time.Since(t0))
				} else {
					w.rec.opErrs++
				}
				w.iter++
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	res := result{name: sc.name, elapsed: elapsed, errs: map[string]*errStats{}}
	var ops []time.Duration
	opErrs := 0
	reqLat := map[string][]time.Duration{}
	reqErrs := map[string]int{}
	for _, w := range workers {
		ops = append(ops, w.rec.ops...)
		opErrs += w.rec.opErrs
		for k, s := range w.rec.reqs {
			reqLat[k] = append(reqLat[k], s.lat...)
			reqErrs[k] += s.errs
		}
		for k, e := range w.rec.errs {
			if m := res.errs[k]; m != nil {
				m.n += e.n
			} else {
				res.errs[k] = &errStats{n: e.n, sample: e.sample}
			}
		}
		w.rec = nil
	}
	res.op = summarize(ops, opErrs, elapsed)
	for _, k := range sc.requests {
		res.reqs = append(res.reqs, namedStats{name: k, stats: summarize(reqLat[k], reqErrs[k], elapsed)})
	}
	return res
}

// errorLines lists the errors, most frequent first.
func (r result) errorLines() []string {
	keys := make([]string, 0, len(r.errs))
	for k := range r.errs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return r.errs[keys[i]].n > r.errs[keys[j]].n })
	var out []string
	for _, k := range keys {
		e := r.errs[k]
		line := fmt.Sprintf("%s: %d", k, e.n)
		if e.sample != "" {
			line += "\n      e.g. " + e.sample
		}
		out = append(out, line)
	}
	return out
}

func newWorkers(base string, clients int) []*worker {
	transport := &http.Transport{
		Proxy:               nil, // loopback only, whatever HTTP_PROXY says
		MaxIdleConns:        clients * 2,
		MaxIdleConnsPerHost: clients * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	ws := make([]*worker, clients)
	for i := range ws {
		ws[i] = &worker{id: i, client: client, base: base}
	}
	return ws
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
