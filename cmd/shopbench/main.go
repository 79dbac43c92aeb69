// Command shopbench measures the API under concurrent load and compares it
// with the database doing the same work directly. `make bench` runs it.
//
// # What it does
//
// It starts a private, throwaway PostgreSQL (fsync off, in a temporary
// directory) and stripe-mock, seeds the demo catalog (internal/demo), and
// starts the server binary (-server, built by `make bench`) as a separate
// process on a free loopback port, with checkout, search, login and registration limits
// off. As the bootstrap admin it adds a few products with 1,000,000 in
// stock, so checkout never runs out, and it registers one customer per
// client. Everything it starts is stopped at the end, also on Ctrl-C, and
// every request goes to 127.0.0.1.
//
// Then, for each scenario, -c clients (default 32) run closed-loop (each
// sends its next operation as soon as the last is answered) for a warm-up
// (-warmup, not counted) and then for -duration (default 10s):
//
//   - list products: GET /v1/products?limit=20
//   - get product: GET /v1/products/{id}, over the seeded ids
//   - add-to-cart + checkout: each client is its own customer; one
//     operation is POST /v1/cart/items (1 unit of a high-stock product)
//     followed by POST /v1/checkout with a fresh Idempotency-Key. The two
//     requests are also reported on their own rows.
//
// After each API phase, pgbench runs the equivalent SQL (the scripts in
// pgbench/, the store's own queries) against the same database with the
// same number of clients (-j 2 threads, prepared statements) for the same
// time. The checkout script runs the statements of the add-to-cart and
// order transactions; it does not call Stripe and skips the checkout's
// idempotency-key bookkeeping, so the API does strictly more work than it.
// The tables are vacuumed before every phase.
//
// # How to read it
//
// The table gives, per scenario, the operations completed, ops/s, the 50th
// and 99th percentile latency as the clients saw it, and errors; then the
// server's peak resident memory (VmHWM: the most it held at any moment).
// The ratio is API ops/s divided by pgbench's tps for the equivalent SQL:
// the share of the database's own throughput the API delivers (HTTP, JSON,
// OpenAPI validation, JWT checks, the driver's round trips and, for
// checkout, a stripe-mock call). The server's catalog cache (on by
// default) answers the catalog reads from memory after their first, so
// those API rows measure the cache while pgbench reads the database every
// time; -catalog-cache-mb 0 runs the server without it. The issue's
// targets at 32 clients: get product >= 14,000/s, list >= 0.4 of pgbench,
// both with p99 < 20 ms; add-to-cart + checkout >= 450/s with p99 < 60 ms;
// the report says which are met. Everything shares one machine (clients,
// server, PostgreSQL, stripe-mock, pgbench), so numbers compare runs on
// the same machine only; nothing asserts on them.
//
// # Login flood
//
// The login-flood scenario (-flood logins, default 300) registers
// -flood-accounts accounts, then fires all the logins at the same moment:
// a third with the right password, a third with a wrong one, a third for
// emails that do not exist. The server's login and registration limits are
// off, so every attempt hashes a password (argon2id, 7 MiB each). It
// prints how the logins were answered and the server's peak RSS during the
// flood (VmHWM, reset just before it): what a login flood costs in memory.
// `make bench BENCH_FLAGS=-scenarios=login-flood` runs it alone.
//
// # Idle streams
//
// The idle-streams scenario (-streams, default 1000) opens that many live
// streams (GET /v1/admin/events) and prints the server's RSS before and
// with them all open: what an idle stream costs. `make bench
// BENCH_FLAGS=-scenarios=idle-streams` runs it alone.
//
// # Stripe latency, the pool, start-up
//
// -stripe-latency D puts the bench's own Stripe stand-in (stripe.go) in
// place of stripe-mock, answering after D; -sweep runs add-to-cart +
// checkout against it over 0/100/300 ms x 32/256 clients and prints one
// table. Each measured phase samples the server's database pool from
// /metrics (peak in use, waits for a connection). The report ends with the
// server's start-up on the existing database: it is restarted and timed
// from exec to the first 200 of /readyz. -cpuprofile FILE saves a CPU
// profile of the server over one scenario (-profile-scenario).
//
// Any non-2xx answer or transport error counts as an error and is listed
// with a sample body (in the flood: any answer but 200 for the right
// password and 401 for the others); a bench with errors says so and exits
// with status 1, since its numbers do not measure the intended work.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	server        string
	duration      time.Duration
	warmup        time.Duration
	clients       int
	jobs          int
	stockProducts int
	pgbench       string
	keep          bool
	// scenarios are the scenarios to run, by name (scenarioNames).
	scenarios     map[string]bool
	flood         int
	floodAccounts int
	floodBody     int
	streams       int
	// stripeLatency, when >= 0, puts the bench's Stripe stand-in (answers
	// after this long) in place of stripe-mock.
	stripeLatency time.Duration
	// catalogCacheMB is the server's CATALOG_CACHE_MB; -1 leaves its default.
	catalogCacheMB int
	// serverEnv are variables set for the server (-server-env), after
	// the bench's own.
	serverEnv map[string]string
	// sweep runs the checkout scenario over sweepLatencies x sweepClients
	// against the stand-in instead of the scenarios.
	sweep bool
	// cpuProfile, when set, is where a CPU profile of the server during
	// the measured phase of profileScenario goes.
	cpuProfile, profileScenario string
}

// The latency sweep's grid.
var (
	sweepLatencies = []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond}
	sweepClients   = []int{32, 256}
)

// scenarioNames are the -scenarios a bench can run, in the order it runs them.
var scenarioNames = []string{"list", "get", "checkout", "login-flood", "idle-streams"}

// parseScenarios reads -scenarios: a comma-separated list of scenarioNames.
func parseScenarios(s string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(scenarioNames, name) {
			return nil, fmt.Errorf("unknown scenario %q (want some of %s)", name, strings.Join(scenarioNames, ","))
		}
		out[name] = true
	}
	return out, nil
}

// target is what the issue asks of a scenario: a rate, a share of
// pgbench's rate for the same SQL, a p99 (zero: none asked).
type target struct {
	perSec float64
	ratio  float64
	p99    time.Duration
}

// Targets from the issue (32 clients, stripe-mock).
var (
	listTarget     = target{ratio: 0.4, p99: 20 * time.Millisecond}
	getTarget      = target{perSec: 14000, p99: 20 * time.Millisecond}
	checkoutTarget = target{perSec: 450, p99: 60 * time.Millisecond}
)

func main() {
	var o options
	flag.StringVar(&o.server, "server", "", "the shopd binary to run (default: go build ./cmd/shopd into a temporary directory)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per scenario, for the API and for pgbench each")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each measured phase")
	flag.IntVar(&o.clients, "c", 32, "concurrent clients (HTTP clients and pgbench clients)")
	flag.IntVar(&o.jobs, "j", 2, "pgbench threads")
	flag.IntVar(&o.stockProducts, "stock-products", 8, "high-stock products the checkout clients share")
	flag.StringVar(&o.pgbench, "pgbench", "", "the pgbench binary (default: next to the PostgreSQL server binaries, or on PATH)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (services log, rendered pgbench scripts)")
	scenarios := flag.String("scenarios", strings.Join(scenarioNames, ","), "the scenarios to run, comma-separated")
	flag.IntVar(&o.flood, "flood", 300, "concurrent logins in the login-flood scenario")
	flag.IntVar(&o.floodAccounts, "flood-accounts", 30, "accounts the login flood logs in to")
	flag.IntVar(&o.floodBody, "flood-body", 0, "pad each login body of the flood with spaces to this many bytes (0: no padding)")
	flag.IntVar(&o.streams, "streams", 1000, "live streams the idle-streams scenario opens")
	flag.DurationVar(&o.stripeLatency, "stripe-latency", -1, "answer Stripe calls from the bench's own stand-in after this long, instead of stripe-mock (-1: stripe-mock)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the server during one scenario's measured phase to this file (go tool pprof)")
	flag.StringVar(&o.profileScenario, "profile-scenario", "checkout", "the scenario -cpuprofile profiles: list, get or checkout")
	flag.Func("server-env", "K=V: set the server's variable K (repeatable; e.g. GOGC=100)", func(kv string) error {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("want K=V, got %q", kv)
		}
		if o.serverEnv == nil {
			o.serverEnv = map[string]string{}
		}
		o.serverEnv[k] = v
		return nil
	})
	flag.IntVar(&o.catalogCacheMB, "catalog-cache-mb", -1, "the server's CATALOG_CACHE_MB (0: catalog reads always go to the database; -1: the server's default)")
	flag.BoolVar(&o.sweep, "sweep", false, "run only add-to-cart + checkout against the Stripe stand-in at 0, 100 and 300 ms latency x 32 and 256 clients, and print the table")
	flag.Parse()
	if o.clients < 1 || o.jobs < 1 || o.jobs > o.clients || o.stockProducts < 1 || o.duration < time.Second || o.warmup < 0 ||
		o.flood < 1 || o.floodAccounts < 1 || o.streams < 1 || o.streams > maxStreams {
		fmt.Fprintf(os.Stderr, "shopbench: need -c >= 1, 1 <= -j <= -c, -stock-products >= 1, -duration >= 1s, -warmup >= 0, -flood >= 1, -flood-accounts >= 1, 1 <= -streams <= %d\n", maxStreams)
		os.Exit(2)
	}
	var err error
	if o.scenarios, err = parseScenarios(*scenarios); err != nil {
		fmt.Fprintln(os.Stderr, "shopbench: -scenarios:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := bench(ctx, o, os.Stdout)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted (%v)", err)
		}
		fmt.Fprintln(os.Stderr, "shopbench:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// outcome is one scenario's API and SQL measurements.
type outcome struct {
	api    result
	sql    sqlResult
	target target
	// serverCores and clientCores are the CPU the server and this load
	// generator used during the measured API phase, in cores; peakRSS is
	// the server's VmHWM (KiB) after it.
	serverCores, clientCores float64
	peakRSS                  int64
	pool                     poolStats
}

func bench(ctx context.Context, o options, out io.Writer) (int, error) {
	began := time.Now()
	if o.server == "" {
		dir, err := os.MkdirTemp("", "shopbench-build-")
		if err != nil {
			return 1, err
		}
		defer os.RemoveAll(dir)
		fmt.Fprintln(out, "building ./cmd/shopd ...")
		if o.server, err = buildServer(ctx, dir); err != nil {
			return 1, err
		}
	}
	server, err := filepath.Abs(o.server)
	if err != nil {
		return 1, err
	}
	if _, err := os.Stat(server); err != nil {
		return 1, fmt.Errorf("-server: %w", err)
	}
	o.server = server

	var standIn *stripeStandIn
	if o.stripeLatency >= 0 || o.sweep {
		if standIn, err = startStripeStandIn(); err != nil {
			return 1, err
		}
		standIn.setLatency(max(o.stripeLatency, 0))
		fmt.Fprintf(out, "starting PostgreSQL and the server; Stripe is the bench's stand-in (%v latency) ...\n", max(o.stripeLatency, 0))
	} else {
		fmt.Fprintln(out, "starting PostgreSQL, stripe-mock and the server ...")
	}
	extra := map[string]string{}
	if o.catalogCacheMB >= 0 {
		extra["CATALOG_CACHE_MB"] = strconv.Itoa(o.catalogCacheMB)
	}
	for k, v := range o.serverEnv {
		extra[k] = v
	}
	e, err := startEnv(ctx, server, o.keep, standIn, extra)
	if err != nil {
		if standIn != nil {
			standIn.close()
		}
		return 1, err
	}
	defer e.close()
	fmt.Fprintf(out, "server first start-up (migrated, seeded database; creates the admin: one argon2id hash): %v\n",
		e.startup.Round(time.Millisecond))
	_, startRSS, _ := memoryKiB(e.pid)
	a := api{base: e.base, client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}}

	if o.sweep {
		return runSweep(ctx, o, e, a, out)
	}
	var outcomes []outcome
	mem := memReport{startRSS: startRSS}
	if o.scenarios["list"] || o.scenarios["get"] || o.scenarios["checkout"] {
		if outcomes, mem, err = throughput(ctx, o, e, a, out); err != nil {
			return 1, err
		}
		mem.startRSS = startRSS
	}
	var flood *floodResult
	if o.scenarios["login-flood"] {
		fmt.Fprintf(out, "%-24s registering %d accounts ... ", "login flood", o.floodAccounts)
		emails, err := floodAccounts(ctx, a, o.floodAccounts)
		if err != nil {
			return 1, err
		}
		fmt.Fprintf(out, "%d logins at once ... ", o.flood)
		r := loginFlood(ctx, e.base, e.pid, floodLogins(o.flood, emails, o.floodBody), len(emails))
		if ctx.Err() != nil {
			return 1, ctx.Err()
		}
		fmt.Fprintf(out, "done in %v\n", r.elapsed.Round(10*time.Millisecond))
		flood = &r
	}

	var streams *streamsResult
	if o.scenarios["idle-streams"] {
		fmt.Fprintf(out, "%-24s opening %d streams ... ", "idle streams", o.streams)
		r := idleStreams(ctx, a, e.pid, o.streams)
		if ctx.Err() != nil {
			return 1, ctx.Err()
		}
		fmt.Fprintln(out, "done")
		streams = &r
	}

	alive := e.serverAlive()
	code := report(out, o, outcomes, flood, streams, alive, mem)
	if alive {
		reportRestart(ctx, out, e)
	}
	fmt.Fprintf(out, "\ntotal %v\n", time.Since(began).Round(time.Second))
	if code != 0 && !o.keep {
		fmt.Fprintf(out, "(the server's log is gone with the temporary directory; run with BENCH_FLAGS=-keep to keep it)\n")
	}
	return code, nil
}

// throughput sets up the catalog and customers and runs the selected
// closed-loop scenarios, each followed by pgbench on the equivalent SQL.
func throughput(ctx context.Context, o options, e *env, a api, out io.Writer) ([]outcome, memReport, error) {
	var mem memReport
	pgbench := o.pgbench
	if pgbench == "" {
		var err error
		if pgbench, err = findPgbench(ctx); err != nil {
			return nil, mem, err
		}
	}
	prepStart := time.Now()
	f, err := prepare(ctx, a, o.clients, o.stockProducts)
	if err != nil {
		return nil, mem, fmt.Errorf("prepare: %w", err)
	}
	prepTook := time.Since(prepStart)
	// Setup hashes 2 passwords per customer (argon2id, 7 MiB each), which
	// takes more memory than serving does: the scenarios' peak is measured
	// from here on, the setup's reported apart.
	mem.setupPeak, _, _ = memoryKiB(e.pid)
	mem.peakReset = resetPeakRSS(e.pid)
	scripts, err := writeScripts(filepath.Join(e.dir, "pgbench"), f)
	if err != nil {
		return nil, mem, err
	}
	db, err := sql.Open("postgres", e.db.URL)
	if err != nil {
		return nil, mem, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	fmt.Fprintf(out, "server %s (pid %d) at %s; %d seeded products, %d high-stock products, %d customers (set up in %v)\n",
		o.server, e.pid, e.base, len(f.catalogIDs), len(f.stockIDs), len(f.customers), prepTook.Round(100*time.Millisecond))
	fmt.Fprintf(out, "%d clients, %v warm-up + %v per phase; pgbench %s -c %d -j %d -M prepared\n\n",
		o.clients, o.warmup, o.duration, pgbench, o.clients, o.jobs)

	workers := newWorkers(e.base, o.clients)
	plan := []struct {
		sc     scenario
		script string
		target target
	}{
		{listScenario(), "list", listTarget},
		{getScenario(f.catalogIDs, o.clients), "get", getTarget},
		{checkoutScenario(f), "checkout", checkoutTarget},
	}
	seconds := int(math.Ceil(o.duration.Seconds()))
	warmSeconds := int(math.Ceil(o.warmup.Seconds()))
	var outcomes []outcome
	for _, p := range plan {
		if !o.scenarios[p.script] {
			continue
		}
		for _, w := range workers {
			p.sc.setup(w)
		}
		if err := vacuum(ctx, db); err != nil {
			return nil, mem, fmt.Errorf("vacuum: %w", err)
		}
		fmt.Fprintf(out, "%-24s API ... ", p.sc.name)
		if o.warmup > 0 {
			run(ctx, p.sc, workers, o.warmup)
		}
		serverBefore, _ := processCPU(e.pid)
		selfBefore := selfCPU()
		sampler := samplePool(e.base)
		profiled := make(chan error, 1)
		if o.cpuProfile != "" && p.script == o.profileScenario {
			go func() { profiled <- cpuProfile(ctx, e.base, o.duration, o.cpuProfile) }()
		} else {
			profiled <- nil
		}
		res := run(ctx, p.sc, workers, o.duration)
		pool := sampler.end()
		if err := <-profiled; err != nil {
			return nil, mem, err
		}
		if o.cpuProfile != "" && p.script == o.profileScenario {
			fmt.Fprintf(out, "(CPU profile of the server in %s) ", o.cpuProfile)
		}
		if ctx.Err() != nil {
			return nil, mem, ctx.Err()
		}
		oc := outcome{api: res, target: p.target, pool: pool}
		if serverAfter, err := processCPU(e.pid); err == nil {
			oc.serverCores = (serverAfter - serverBefore).Seconds() / res.elapsed.Seconds()
		}
		oc.clientCores = (selfCPU() - selfBefore).Seconds() / res.elapsed.Seconds()
		oc.peakRSS, _, _ = memoryKiB(e.pid)
		fmt.Fprintf(out, "%8.1f ops/s (%d errors)   SQL ... ", res.op.perSec, res.op.errs)
		if err := vacuum(ctx, db); err != nil {
			return nil, mem, fmt.Errorf("vacuum: %w", err)
		}
		if warmSeconds > 0 {
			runPgbench(ctx, pgbench, e.db.URL, scripts[p.script], o.clients, o.jobs, warmSeconds)
		}
		sr := runPgbench(ctx, pgbench, e.db.URL, scripts[p.script], o.clients, o.jobs, seconds)
		if ctx.Err() != nil {
			return nil, mem, ctx.Err()
		}
		fmt.Fprintf(out, "%8.1f tps\n", sr.tps)
		oc.sql = sr
		outcomes = append(outcomes, oc)
	}
	// Read before any login flood, which reports its own peak.
	mem.peakRSS, mem.endRSS, mem.err = memoryKiB(e.pid)
	return outcomes, mem, nil
}

// memReport is the server's memory in KiB: after start-up, the peak while
// the bench was set up, the peak during the scenarios (since peakReset, or
// since start if that failed) and at the end.
type memReport struct {
	startRSS, setupPeak, peakRSS, endRSS int64
	peakReset, err                       error
}

// reportRestart restarts the server on the database the bench filled and
// prints how long it took from exec to the first 200 of /readyz.
func reportRestart(ctx context.Context, out io.Writer, e *env) {
	if err := e.restart(ctx); err != nil {
		fmt.Fprintf(out, "\nserver restart failed: %v\n", err)
		return
	}
	verdict := "met"
	if e.startup >= 300*time.Millisecond {
		verdict = "MISSED"
	}
	fmt.Fprintf(out, "\nserver start-up on the existing database (restart; exec -> /readyz 200): %v (target < 300ms: %s)\n",
		e.startup.Round(time.Millisecond), verdict)
}

// report prints the results and returns the exit code: 1 when anything
// failed (requests, pgbench, the server), else 0. Missing a target is not a
// failure.
func report(out io.Writer, o options, outcomes []outcome, flood *floodResult, streams *streamsResult, alive bool, mem memReport) int {
	var problems []string
	if len(outcomes) > 0 {
		problems = reportThroughput(out, o, outcomes, mem)
	}
	if flood != nil {
		flood.print(out)
		if n := flood.failures(); n > 0 {
			problems = append(problems, fmt.Sprintf("login flood: %d of %d logins were not answered as expected", n, flood.logins))
			for _, l := range flood.errorLines() {
				problems = append(problems, "    "+l)
			}
		}
	}
	if streams != nil {
		streams.print(out)
		if streams.err != nil {
			problems = append(problems, "idle streams: "+streams.err.Error())
		}
	}
	if !alive {
		problems = append(problems, "the server process exited during the bench")
	}
	if len(problems) > 0 {
		bar := strings.Repeat("!", 78)
		fmt.Fprintf(out, "\n%s\n!!! THIS BENCH HAD ERRORS: the numbers above do not measure the intended work\n", bar)
		for _, p := range problems {
			fmt.Fprintln(out, p)
		}
		fmt.Fprintln(out, bar)
		return 1
	}
	return 0
}

// reportThroughput prints the closed-loop scenarios' table, the memory
// they took and their ratios to pgbench, and returns what went wrong.
func reportThroughput(out io.Writer, o options, outcomes []outcome, mem memReport) []string {
	fmt.Fprintf(out, "\nAPI: %d clients, %v per scenario, %d CPUs shared by everything\n", o.clients, o.duration, runtime.NumCPU())
	fmt.Fprintf(out, "%-30s %9s %10s %9s %9s %8s %11s %11s %10s\n",
		"scenario", "ops", "ops/s", "p50", "p99", "errors", "server CPU", "client CPU", "peak RSS")
	row := func(name string, s stats) string {
		return fmt.Sprintf("%-30s %9d %10.1f %9s %9s %8d", name, s.n, s.perSec, ms(s.p50), ms(s.p99), s.errs)
	}
	for _, oc := range outcomes {
		fmt.Fprintf(out, "%s %11s %11s %10s\n", row(oc.api.name, oc.api.op),
			fmt.Sprintf("%.2f cores", oc.serverCores), fmt.Sprintf("%.2f cores", oc.clientCores),
			fmt.Sprintf("%.1f MiB", mib(oc.peakRSS)))
		for _, r := range oc.api.reqs {
			fmt.Fprintln(out, row("  "+r.name, r.stats))
		}
	}
	fmt.Fprintln(out, "(ops/s and latencies are per operation; peak RSS is the server's highest so far, after each scenario)")
	fmt.Fprintln(out, "\ndatabase pool (the server's /metrics go_sql_*, sampled every 50 ms):")
	for _, oc := range outcomes {
		fmt.Fprintf(out, "  %-28s %s\n", oc.api.name, oc.pool)
	}
	switch {
	case mem.err != nil:
		fmt.Fprintf(out, "\nserver peak RSS: unknown (%v)\n", mem.err)
	case mem.peakReset != nil:
		fmt.Fprintf(out, "\nserver peak RSS (VmHWM): %.1f MiB, set-up included (could not reset the peak after it: %v)\n",
			mib(mem.peakRSS), mem.peakReset)
	default:
		fmt.Fprintf(out, "\nserver peak RSS (VmHWM) during the scenarios: %.1f MiB\n", mib(mem.peakRSS))
		fmt.Fprintf(out, "  after start-up %.1f MiB; peak during set-up %.1f MiB (%d registrations + %d logins, argon2id, one at a time); at the end %.1f MiB\n",
			mib(mem.startRSS), mib(mem.setupPeak), o.clients, o.clients+1, mib(mem.endRSS))
	}

	fmt.Fprintf(out, "\nAPI / raw SQL (pgbench -c %d -j %d -M prepared, same database, same duration)\n", o.clients, o.jobs)
	fmt.Fprintf(out, "%-24s %10s %10s %9s %7s\n", "scenario", "API ops/s", "SQL tps", "SQL avg", "ratio")
	ratios := map[string]float64{}
	for _, oc := range outcomes {
		ratio := math.NaN()
		if oc.sql.err == nil && oc.sql.tps > 0 {
			ratio = oc.api.op.perSec / oc.sql.tps
		}
		ratios[oc.api.name] = ratio
		fmt.Fprintf(out, "%-24s %10.1f %10.1f %9s %7.2f\n", oc.api.name, oc.api.op.perSec, oc.sql.tps,
			fmt.Sprintf("%.2fms", oc.sql.latencyAvg), ratio)
	}
	fmt.Fprintln(out, "(the API side answers catalog reads from its cache (CATALOG_CACHE_MB, on by default; -catalog-cache-mb 0 turns it off)")
	fmt.Fprintln(out, " after their first, while pgbench reads the database every time; the checkout SQL runs the add-to-cart and order")
	fmt.Fprintln(out, " transactions only: no Stripe calls, no idempotency-key rows, no jobs)")

	fmt.Fprintf(out, "\ntargets (%d clients):\n", o.clients)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	for _, oc := range outcomes {
		t, s := oc.target, oc.api.op
		if t.perSec > 0 {
			fmt.Fprintf(out, "  %-24s %-9s %10.1f >= %-8.0f %s\n", oc.api.name, "ops/s", s.perSec, t.perSec, verdict(s.perSec >= t.perSec))
		}
		if t.ratio > 0 {
			r := ratios[oc.api.name]
			fmt.Fprintf(out, "  %-24s %-9s %10.2f >= %-8.1f %s\n", oc.api.name, "vs SQL", r, t.ratio, verdict(r >= t.ratio))
		}
		if t.p99 > 0 {
			fmt.Fprintf(out, "  %-24s %-9s %10s <  %-8s %s\n", oc.api.name, "p99", ms(s.p99), ms(t.p99), verdict(s.n > 0 && s.p99 < t.p99))
		}
	}

	var problems []string
	for _, oc := range outcomes {
		if oc.api.op.errs > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d of %d operations failed", oc.api.name, oc.api.op.errs, oc.api.op.errs+oc.api.op.n))
			for _, l := range oc.api.errorLines() {
				problems = append(problems, "    "+l)
			}
		}
		if oc.sql.err != nil {
			problems = append(problems, fmt.Sprintf("%s SQL: %v\n%s", oc.api.name, oc.sql.err, indent(lastLines(oc.sql.output, 15), "    ")))
		}
	}
	return problems
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
