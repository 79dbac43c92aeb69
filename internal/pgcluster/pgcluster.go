// Package pgcluster starts a private PostgreSQL server from the PostgreSQL
// binaries installed on the machine, for local runs and tests that have no
// DATABASE_URL. It listens on a free loopback TCP port only, never on a Unix
// socket, so it cannot collide with a system server.
package pgcluster

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lib/pq"
)

// Options says where the cluster lives and how it runs.
type Options struct {
	// Dir is the data directory. It is created if missing, initialised if
	// empty and reused if it already holds a cluster.
	Dir string
	// Database is created if missing; URL points at it. Empty means
	// "postgres", which always exists.
	Database string
	// Durable keeps PostgreSQL's crash-safety defaults. When false, fsync,
	// synchronous_commit and full_page_writes are off, which is what tests
	// want: the data is thrown away anyway.
	Durable bool
	// Temporary removes Dir when the cluster stops, including when this
	// process dies without calling Stop.
	Temporary bool
	// Log receives initdb output and the server log when something fails.
	// May be nil.
	Log io.Writer
	// ReachableRoot is where the cluster goes instead of Dir when this
	// process is root and the postgres user cannot reach Dir (a checkout
	// under /root or in a 0700 temporary directory): a directory of its own
	// under ReachableRoot, keyed by Dir, which becomes a symlink to it.
	// Empty means DefaultReachableRoot.
	ReachableRoot string
}

// DefaultReachableRoot is the default Options.ReachableRoot.
const DefaultReachableRoot = "/var/lib/pgcluster"

// Cluster is a running PostgreSQL server started by Start.
type Cluster struct {
	// URL connects to Options.Database as the superuser "postgres" over
	// loopback TCP: postgres://postgres@127.0.0.1:PORT/DB?sslmode=disable.
	URL string
	// Dir is the data directory in use: Options.Dir, or where it was
	// relocated to (see Options.ReachableRoot), symlinks resolved.
	Dir string
	// LogFile is the server's log, inside the data directory.
	LogFile string
	// Startup is how long Start took, initdb included when it ran.
	Startup time.Duration

	dir       string
	temporary bool
	// home and link are set when the cluster was relocated: its directory
	// under the reachable root, and the symlink at Options.Dir.
	home, link string
	pg         runner
	watchdog   *watchdog

	mu      sync.Mutex
	stopped bool
	stopErr error
}

// startTimeout bounds pg_ctl's wait for the server to accept connections.
const startTimeout = 60

// Start starts a PostgreSQL server on a free loopback port, initialising
// opts.Dir first if needed, and creates opts.Database. The caller must call
// Stop; if it dies first, a watchdog process stops the server for it, so a
// killed `make run` or test binary does not leave a server behind that would
// make the next Start fail.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	began := time.Now()
	if opts.Dir == "" {
		return nil, errors.New("start postgres: no data directory given")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	database := opts.Database
	if database == "" {
		database = "postgres"
	}
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}

	bin, err := findBinaries(ctx, logw)
	if err != nil {
		return nil, err
	}
	pg, err := newRunner(bin)
	if err != nil {
		return nil, err
	}
	where, err := pg.place(ctx, dir, opts.ReachableRoot, logw)
	if err != nil {
		return nil, err
	}
	dir = where.dir
	initialised := fileExists(filepath.Join(dir, "PG_VERSION"))
	if err := pg.prepareDir(dir, initialised); err != nil {
		return nil, err
	}

	if initialised {
		if err := pg.checkVersion(ctx, dir); err != nil {
			return nil, err
		}
		if err := pg.clearStalePID(ctx, dir); err != nil {
			return nil, err
		}
	}

	c := &Cluster{
		Dir:       dir,
		LogFile:   filepath.Join(dir, "server.log"),
		dir:       dir,
		temporary: opts.Temporary,
		home:      where.home,
		link:      where.link,
		pg:        pg,
	}
	// The watchdog starts before the server so there is no moment in which
	// our death would leave a server running. It starts after the check
	// above so it can never stop another process's server.
	if c.watchdog, err = startWatchdog(pg, dir, c.removeOnStop()); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()

	if !initialised {
		if err := pg.initdb(ctx, dir, logw); err != nil {
			return nil, err
		}
	}

	port, err := pg.start(ctx, dir, opts.Durable, logw)
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/", port)
	if err := createDatabase(ctx, base+"postgres?sslmode=disable", database); err != nil {
		return nil, err
	}
	c.URL = base + url.PathEscape(database) + "?sslmode=disable"
	c.Startup = time.Since(began)
	return c, nil
}

// Stop shuts the server down with pg_ctl's fast mode (open sessions are
// rolled back, then a clean checkpoint). Calling it again returns the first
// result.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return c.stopErr
	}
	c.stopped = true

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := c.pg.command(ctx, "pg_ctl", "stop", "-m", "fast", "-w", "-t", "60", "-D", c.dir).CombinedOutput()
	// No pid file means no server: it never started or is already gone.
	if err != nil && !fileExists(filepath.Join(c.dir, "postmaster.pid")) {
		err = nil
	}
	if err != nil {
		c.stopErr = fmt.Errorf("stop postgres: %w: %s", err, bytes.TrimSpace(out))
	}
	if c.watchdog != nil {
		c.watchdog.cancel()
	}
	if remove := c.removeOnStop(); remove != "" && c.stopErr == nil {
		if err := os.RemoveAll(remove); err != nil {
			c.stopErr = fmt.Errorf("remove data directory: %w", err)
		}
		if c.link != "" {
			os.Remove(c.link)
		}
	}
	return c.stopErr
}

// removeOnStop is what goes when a temporary cluster stops: its data
// directory, or all of its relocated home.
func (c *Cluster) removeOnStop() string {
	switch {
	case !c.temporary:
		return ""
	case c.home != "":
		return c.home
	default:
		return c.dir
	}
}

// initdb creates a cluster in dir whose superuser "postgres" needs no
// password. Trust is safe because the server listens on loopback only.
func (r runner) initdb(ctx context.Context, dir string, logw io.Writer) error {
	args := []string{"-D", dir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"}
	out, err := r.command(ctx, "initdb", append(args, "--locale=C.UTF-8")...).CombinedOutput()
	if err != nil {
		// Some systems lack the C.UTF-8 locale; C sorts the same way and
		// still stores UTF-8. initdb empties dir when it fails, so retrying
		// in place is fine.
		first := out
		out, err = r.command(ctx, "initdb", append(args, "--locale=C")...).CombinedOutput()
		if err != nil {
			logw.Write(first)
			logw.Write(out)
			return fmt.Errorf("initdb %s: %w: %s", dir, err, lastLines(string(out), 20))
		}
	}
	return nil
}

// clearStalePID removes the postmaster.pid a killed server left behind, and
// refuses to touch a data directory whose server is still running.
func (r runner) clearStalePID(ctx context.Context, dir string) error {
	pidFile := filepath.Join(dir, "postmaster.pid")
	data, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read pid file: %w", err)
	}
	lines := strings.Split(string(data), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(lines[0]))
	// pg_ctl status exits 0 when the pid in the file is alive.
	running := r.command(ctx, "pg_ctl", "status", "-D", dir).Run() == nil
	// After a crash or container restart the pid may now belong to an
	// unrelated process, which pg_ctl cannot tell apart; /proc can.
	if running && pid > 0 {
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil &&
			strings.TrimSpace(string(comm)) != "postgres" {
			running = false
		}
	}
	if running {
		port := ""
		if len(lines) > 3 {
			port = strings.TrimSpace(lines[3])
		}
		return fmt.Errorf("start postgres: the cluster in %s is already running (pid %d, port %s): stop the other process using it, or point DATABASE_URL at postgres://postgres@127.0.0.1:%s/", dir, pid, port, port)
	}
	if err := os.Remove(pidFile); err != nil {
		return fmt.Errorf("remove stale pid file: %w", err)
	}
	return nil
}

// start runs the server on a free loopback port and returns the port. The
// port is found by binding port 0 and releasing it, so another process can
// take it before the server binds; that case is retried with a new port.
func (r runner) start(ctx context.Context, dir string, durable bool, logw io.Writer) (int, error) {
	logFile := filepath.Join(dir, "server.log")
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := FreePort()
		if err != nil {
			return 0, fmt.Errorf("find free port: %w", err)
		}
		// Only this start's part of the log explains its failure: the file
		// is appended to across runs of a durable cluster.
		var offset int64
		if fi, err := os.Stat(logFile); err == nil {
			offset = fi.Size()
		}
		// pg_ctl hands -o to a shell, hence the quoted empty socket list
		// (no Unix socket: nothing to clash with a system server's).
		settings := []string{
			"-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1",
			"-c", "unix_socket_directories=''",
			"-c", "max_connections=200",
		}
		if !durable {
			settings = append(settings,
				"-c", "fsync=off",
				"-c", "synchronous_commit=off",
				"-c", "full_page_writes=off",
			)
		}
		out, err := r.command(ctx, "pg_ctl", "start", "-w", "-t", strconv.Itoa(startTimeout),
			"-D", dir, "-l", logFile, "-o", strings.Join(settings, " ")).CombinedOutput()
		if err == nil {
			return port, nil
		}
		serverLog := readFrom(logFile, offset)
		lastErr = fmt.Errorf("start postgres: %w: %s\nserver log:\n%s", err, bytes.TrimSpace(out), lastLines(serverLog, 30))
		if !strings.Contains(serverLog, "could not bind") {
			logw.Write(out)
			io.WriteString(logw, serverLog)
			return 0, lastErr
		}
	}
	return 0, lastErr
}

// checkVersion refuses a data directory made by another major version, which
// the server would refuse with a less helpful message.
func (r runner) checkVersion(ctx context.Context, dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "PG_VERSION"))
	if err != nil {
		return fmt.Errorf("read data directory version: %w", err)
	}
	want := strings.TrimSpace(string(data))
	out, err := r.command(ctx, "postgres", "--version").Output()
	if err != nil {
		return fmt.Errorf("postgres --version: %w", err)
	}
	// "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
	fields := strings.Fields(string(out))
	if len(fields) < 3 {
		return fmt.Errorf("postgres --version: unexpected output %q", out)
	}
	have, _, _ := strings.Cut(fields[2], ".")
	if have != want {
		return fmt.Errorf("start postgres: %s holds a PostgreSQL %s cluster but the binaries in %s are version %s: install PostgreSQL %s or delete %s", dir, want, r.bin, have, want, dir)
	}
	return nil
}

// createDatabase creates name unless it exists.
func createDatabase(ctx context.Context, url, name string) error {
	db, err := sql.Open("postgres", url)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer db.Close()
	var exists bool
	if err := db.QueryRowContext(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// FreePort returns a loopback port nobody listens on now, for a server
// that must be told its port (postgres, redis-server, a child process)
// rather than handed a listener or port 0. Another process can take the
// port before the server binds it: callers that can, retry. It is
// exported for the launchers and tests beside this package (shopbench,
// the Redis limiter's tests) so that there is one such function.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// readFrom returns the file's contents after offset, or "" if it cannot be
// read.
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// watchdog is a shell process that waits for this process to die (its stdin,
// a pipe only we can write to, reaches EOF) and then stops the server and,
// for temporary clusters, removes the data directory. pg_ctl puts the server
// in its own session, so nothing else would stop it.
type watchdog struct {
	cmd  *exec.Cmd
	pipe *os.File
}

// startWatchdog starts the watchdog for the cluster in dir; when remove is
// not empty, it removes that directory after stopping the server.
func startWatchdog(pg runner, dir, remove string) (*watchdog, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start postgres watchdog: %w", err)
	}
	defer r.Close()
	stop := pg.command(context.Background(), "pg_ctl", "stop", "-m", "fast", "-w", "-D", dir)
	script := `read -r _; "$@" >/dev/null 2>&1; if [ -n "$PGCLUSTER_REMOVE" ]; then rm -rf -- "$PGCLUSTER_REMOVE"; fi`
	args := append([]string{"-c", script, "pgcluster-watchdog", stop.Path}, stop.Args[1:]...)
	cmd := exec.Command("/bin/sh", args...)
	cmd.Dir = "/"
	cmd.Env = os.Environ()
	if remove != "" {
		cmd.Env = append(cmd.Env, "PGCLUSTER_REMOVE="+remove)
	}
	cmd.Stdin = r
	// Its own process group, so Ctrl-C at the terminal, which kills us,
	// does not kill the watchdog too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start postgres watchdog: %w", err)
	}
	return &watchdog{cmd: cmd, pipe: w}, nil
}

// cancel ends the watchdog without letting it act: Stop has done its work.
func (w *watchdog) cancel() {
	w.cmd.Process.Kill()
	w.cmd.Wait()
	w.pipe.Close()
}
