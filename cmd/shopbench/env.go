package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shopd/shopd/internal/demo"
	"github.com/shopd/shopd/internal/pgcluster"
	"github.com/shopd/shopd/internal/stripemock"
	"github.com/shopd/shopd/store"
)

// Bench credentials: the server is private to this run and gone after it.
const (
	adminEmail       = "bench-admin@example.com"
	adminPassword    = "bench-admin-password"
	customerPassword = "bench-customer-password"
	webhookSecret    = "whsec_bench_only"
	// metricsToken guards the server's /metrics and /debug/pprof/.
	metricsToken = "bench-metrics-token"
)

// env is everything the bench started: a throwaway PostgreSQL, stripe-mock
// and the server as a child process. close stops them in reverse order.
type env struct {
	dir     string // temporary; removed by close unless keep
	keep    bool
	logFile *os.File // stripe-mock's, the server's and PostgreSQL's output
	db      *pgcluster.Cluster
	stripe  *stripemock.Server // nil when standIn answers for Stripe
	standIn *stripeStandIn
	server  *exec.Cmd
	exited  chan struct{} // closed when the server process has exited
	waitErr error
	pid     int
	base    string // http://127.0.0.1:PORT
	bin     string
	environ []string
	// startup is the server's start-up on the migrated, seeded database:
	// from exec to the first 200 of /readyz.
	startup time.Duration
}

// serverEnvKeys are the variables the server reads; inherited values are
// dropped so the bench always measures the same configuration.
var serverEnvKeys = []string{
	"HTTP_ADDR", "DATABASE_URL", "STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET",
	"JWT_PRIVATE_KEY_FILE", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_TTL",
	"BOOTSTRAP_ADMIN_EMAIL", "BOOTSTRAP_ADMIN_PASSWORD", "DATA_DIR", "PAYMENT_WINDOW", "REDIS_URL",
	"QUOTA_CHECKOUTS_PER_HOUR", "QUOTA_SEARCHES_PER_HOUR", "LOGIN_FAILURES_PER_MINUTE",
	"LOGIN_FAILURES_PER_IP_PER_MINUTE", "REGISTRATIONS_PER_IP_PER_HOUR",
	"TAX_RATE_BPS", "SHIPPING_FLAT_CENTS", "FREE_SHIPPING_OVER_CENTS",
	"TRUSTED_PROXIES", "CORS_ALLOWED_ORIGINS", "GOGC", "GOMEMLIMIT", "METRICS_TOKEN", "CHECKOUT_LEASE",
	"STREAM_MAX", "STREAM_HEARTBEAT", "CATALOG_CACHE_MB", "DB_MAX_CONNS",
}

// maxStreams is the server's STREAM_MAX in the bench: the most -streams.
const maxStreams = 10000

// startEnv starts PostgreSQL and stripe-mock (or, with standIn, points the
// server at it instead), seeds the demo catalog and starts `shopd` serving
// on a free loopback port.
func startEnv(ctx context.Context, serverBin string, keep bool, standIn *stripeStandIn, extra map[string]string) (_ *env, err error) {
	dir, err := os.MkdirTemp("", "shopbench-")
	if err != nil {
		return nil, err
	}
	// The cluster runs as the postgres user when we are root: it must be
	// able to reach its data directory inside ours.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &env{dir: dir, keep: keep, standIn: standIn}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.logFile, err = os.Create(filepath.Join(dir, "services.log")); err != nil {
		return nil, err
	}

	e.db, err = pgcluster.Start(ctx, pgcluster.Options{
		Dir: filepath.Join(dir, "postgres"), Database: "shop", Durable: false, Temporary: true, Log: e.logFile,
	})
	if err != nil {
		return nil, err
	}
	stripeBase := ""
	if standIn != nil {
		stripeBase = standIn.URL
	} else {
		if e.stripe, err = stripemock.Start(ctx, e.logFile); err != nil {
			return nil, err
		}
		stripeBase = e.stripe.URL
	}
	port, err := pgcluster.FreePort()
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	e.base = "http://" + addr

	set := map[string]string{
		"HTTP_ADDR":                addr,
		"DATABASE_URL":             e.db.URL,
		"STRIPE_API_BASE":          stripeBase,
		"STRIPE_SECRET_KEY":        "sk_test_bench",
		"STRIPE_WEBHOOK_SECRET":    webhookSecret,
		"DATA_DIR":                 filepath.Join(dir, "server"),
		"BOOTSTRAP_ADMIN_EMAIL":    adminEmail,
		"BOOTSTRAP_ADMIN_PASSWORD": adminPassword,
		"QUOTA_CHECKOUTS_PER_HOUR": "0",
		"QUOTA_SEARCHES_PER_HOUR":  "0",
		// Every client registers and logs in from 127.0.0.1, and the
		// login flood must reach the password check every time.
		"LOGIN_FAILURES_PER_MINUTE":        "0",
		"LOGIN_FAILURES_PER_IP_PER_MINUTE": "0",
		"REGISTRATIONS_PER_IP_PER_HOUR":    "0",
		"METRICS_TOKEN":                    metricsToken,
		// Room for -streams idle streams (the default is 1000).
		"STREAM_MAX": strconv.Itoa(maxStreams),
	}
	for k, v := range extra {
		set[k] = v
	}
	environ := serverEnviron(set)

	if err := seedCatalog(ctx, e.db.URL); err != nil {
		return nil, err
	}

	e.bin, e.environ = serverBin, environ
	if err := e.startServer(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// startServer execs the server and waits until it is ready, recording how
// long that took in e.startup.
func (e *env) startServer(ctx context.Context) error {
	e.server = exec.Command(e.bin)
	e.server.Env = e.environ
	e.server.Stdout, e.server.Stderr = e.logFile, e.logFile
	e.server.SysProcAttr = serverProcAttr()
	execAt := time.Now()
	if err := e.server.Start(); err != nil {
		return fmt.Errorf("start %s: %w", e.bin, err)
	}
	e.pid = e.server.Process.Pid
	e.exited = make(chan struct{})
	go func() {
		e.waitErr = e.server.Wait()
		close(e.exited)
	}()
	if err := e.waitReady(ctx, 60*time.Second); err != nil {
		return fmt.Errorf("%w\nlast lines of %s:\n%s", err, e.logFile.Name(), e.logTail(30))
	}
	e.startup = time.Since(execAt)
	return nil
}

// restart stops the server gracefully and starts it again on the same
// database, now holding everything the bench made: e.startup is then a
// start-up on an existing database, its admin included.
func (e *env) restart(ctx context.Context) error {
	e.stopServer()
	return e.startServer(ctx)
}

// seedCatalog migrates the database (opening the store does) and adds the
// demo catalog, as `make run` does; the server itself seeds nothing.
func seedCatalog(ctx context.Context, url string) error {
	st, err := store.Open(ctx, url)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer st.Close()
	if _, err := demo.SeedCatalog(ctx, st); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}

func serverEnviron(set map[string]string) []string {
	drop := map[string]bool{}
	for _, k := range serverEnvKeys {
		drop[k] = true
	}
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

// waitReady polls /readyz every 2 ms until the server answers 200: the
// start-up time is measured with it.
func (e *env) waitReady(ctx context.Context, limit time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case <-e.exited:
			return fmt.Errorf("server exited before it was ready: %v", e.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready after %v: %v", limit, err)
		}
	}
}

// serverAlive reports whether the server process is still running.
func (e *env) serverAlive() bool {
	select {
	case <-e.exited:
		return false
	default:
		return true
	}
}

// close stops the server (SIGTERM, then SIGKILL after 15 s), stripe-mock
// and PostgreSQL, and removes the temporary directory. It reports failures
// on stderr: there is nothing else to do about them.
func (e *env) close() {
	e.stopServer()
	if e.stripe != nil {
		e.stripe.Stop()
	}
	if e.standIn != nil {
		e.standIn.close()
	}
	if e.db != nil {
		if err := e.db.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "shopbench:", err)
		}
	}
	if e.logFile != nil {
		e.logFile.Close()
	}
	if e.keep {
		fmt.Fprintf(os.Stderr, "shopbench: kept %s (services.log)\n", e.dir)
		return
	}
	os.RemoveAll(e.dir)
}

// stopServer stops the server: SIGTERM, then SIGKILL after 15 s.
func (e *env) stopServer() {
	if e.server == nil || e.server.Process == nil || !e.serverAlive() {
		return
	}
	e.server.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(15 * time.Second):
		fmt.Fprintln(os.Stderr, "shopbench: server did not stop within 15s; killing it")
		e.server.Process.Kill()
		<-e.exited
	}
}

// logTail returns the last n lines of the services log.
func (e *env) logTail(n int) string {
	b, err := os.ReadFile(e.logFile.Name())
	if err != nil {
		return ""
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// buildServer builds ./cmd/shopd into dir when no -server binary is given.
func buildServer(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "shopd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/shopd")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/shopd: %w\n%s", err, out.String())
	}
	return bin, nil
}
