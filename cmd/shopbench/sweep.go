package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
)

// sweepRow is one cell of the latency sweep.
type sweepRow struct {
	clients int
	latency time.Duration
	res     result
	pool    poolStats
}

// runSweep runs add-to-cart + checkout against the Stripe stand-in at each
// latency of sweepLatencies with each client count of sweepClients, and
// prints one table: throughput against the same client count at 0 ms, p99
// against latency x 2 + 100 ms, and the database pool's peak.
func runSweep(ctx context.Context, o options, e *env, a api, out io.Writer) (int, error) {
	most := max(o.clients, sweepClients[len(sweepClients)-1])
	prepStart := time.Now()
	f, err := prepare(ctx, a, most, o.stockProducts)
	if err != nil {
		return 1, fmt.Errorf("prepare: %w", err)
	}
	fmt.Fprintf(out, "%d customers set up in %v; %v warm-up + %v per cell\n\n", most, time.Since(prepStart).Round(100*time.Millisecond), o.warmup, o.duration)
	var rows []sweepRow
	for _, clients := range sweepClients {
		// A scenario of its own per client count: its keys are new.
		sc := checkoutScenario(f)
		workers := newWorkers(e.base, clients)
		for _, w := range workers {
			sc.setup(w)
		}
		for _, lat := range sweepLatencies {
			e.standIn.setLatency(lat)
			fmt.Fprintf(out, "%4d clients, Stripe %5v ... ", clients, lat)
			if o.warmup > 0 {
				run(ctx, sc, workers, o.warmup)
			}
			sampler := samplePool(e.base)
			res := run(ctx, sc, workers, o.duration)
			pool := sampler.end()
			if ctx.Err() != nil {
				return 1, ctx.Err()
			}
			fmt.Fprintf(out, "%8.1f ops/s (%d errors)\n", res.op.perSec, res.op.errs)
			rows = append(rows, sweepRow{clients: clients, latency: lat, res: res, pool: pool})
		}
	}
	code := printSweep(out, rows)
	reportRestart(ctx, out, e)
	return code, nil
}

// printSweep prints the sweep's table and returns the exit code (1 when
// operations failed).
func printSweep(out io.Writer, rows []sweepRow) int {
	fmt.Fprintf(out, "\nadd-to-cart + checkout against the Stripe stand-in, %d CPUs shared by everything\n", runtime.NumCPU())
	fmt.Fprintf(out, "%7s %8s %10s %9s %9s %7s %12s %7s %10s %7s %s\n",
		"clients", "Stripe", "ops/s", "p50", "p99", "errors", "vs 0 ms", "(>=0.8)", "p99 limit", "", "pool")
	base := map[int]float64{}
	code := 0
	var problems []string
	for _, r := range rows {
		if r.latency == 0 {
			base[r.clients] = r.res.op.perSec
		}
		ratio, ratioVerdict := "-", ""
		if b := base[r.clients]; b > 0 && r.latency > 0 {
			q := r.res.op.perSec / b
			ratio, ratioVerdict = fmt.Sprintf("%.2f", q), "met"
			if q < 0.8 {
				ratioVerdict = "MISSED"
			}
		}
		limit := 2*r.latency + 100*time.Millisecond
		p99Verdict := "met"
		if r.res.op.n == 0 || r.res.op.p99 > limit {
			p99Verdict = "MISSED"
		}
		fmt.Fprintf(out, "%7d %8v %10.1f %9s %9s %7d %12s %7s %10s %7s %s\n", r.clients, r.latency, r.res.op.perSec,
			ms(r.res.op.p50), ms(r.res.op.p99), r.res.op.errs, ratio, ratioVerdict, ms(limit), p99Verdict, r.pool)
		if r.res.op.errs > 0 {
			code = 1
			problems = append(problems, fmt.Sprintf("%d clients, %v: %d of %d operations failed", r.clients, r.latency, r.res.op.errs, r.res.op.errs+r.res.op.n))
			for _, l := range r.res.errorLines() {
				problems = append(problems, "    "+l)
			}
		}
	}
	fmt.Fprintln(out, "(vs 0 ms: ops/s over the same client count's at 0 ms latency; p99 limit: Stripe latency x 2 + 100 ms)")
	fmt.Fprintln(out, "(the stand-in answers only customer and PaymentIntent creation, with minimal bodies and Idempotency-Key replay; it does not validate requests as stripe-mock does)")
	if len(problems) > 0 {
		fmt.Fprintf(out, "\n!!! THE SWEEP HAD ERRORS\n%s\n", strings.Join(problems, "\n"))
	}
	return code
}
