package pgcluster

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tempDir is a directory the postgres user can reach when tests run as
// root: MkdirTemp (and so t.TempDir) makes directories only their owner may
// enter.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgcluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func start(t *testing.T, opts Options) *Cluster {
	t.Helper()
	var log bytes.Buffer
	opts.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, log.String())
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

func query(t *testing.T, url, q string, dest any) {
	t.Helper()
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(q).Scan(dest); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestStartStopReuse(t *testing.T) {
	t.Parallel()
	// Missing parents, as for the project's .data/postgres on a fresh
	// checkout.
	dir := filepath.Join(tempDir(t), ".data", "postgres")
	opts := Options{Dir: dir, Database: "shop", Durable: true}

	c := start(t, opts)
	t.Logf("first start (initdb + start + create database): %v", c.Startup)
	if !strings.HasSuffix(strings.SplitN(c.URL, "?", 2)[0], "/shop") {
		t.Errorf("URL %s does not name the database", c.URL)
	}
	if _, err := os.Stat(filepath.Join(dir, "server.log")); err != nil {
		t.Errorf("server log: %v", err)
	}
	var fsync string
	query(t, c.URL, "SHOW fsync", &fsync)
	if fsync != "on" {
		t.Errorf("durable cluster has fsync=%s", fsync)
	}
	query(t, c.URL, "CREATE TABLE kept (id int) ; SELECT 'ok'", new(string))
	if err := c.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}

	// The second start reuses the cluster, on a new port, and keeps data.
	c2 := start(t, opts)
	t.Logf("restart: %v", c2.Startup)
	var n int
	query(t, c2.URL, "SELECT count(*) FROM kept", &n)
}

func TestAlreadyRunning(t *testing.T) {
	t.Parallel()
	opts := Options{Dir: tempDir(t)}
	c := start(t, opts)
	_, err := Start(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Start on a running cluster: err = %v, want already running", err)
	}
	t.Log(err)
	// The failed Start must not have stopped the running server.
	var one int
	query(t, c.URL, "SELECT 1", &one)
}

func TestStalePIDFile(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	c := start(t, Options{Dir: dir})
	pidFile := filepath.Join(dir, "postmaster.pid")
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	// What a killed server leaves behind; pid 1 is alive but not postgres.
	stale := "1" + string(pid[strings.IndexByte(string(pid), '\n'):])
	if err := os.WriteFile(pidFile, []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, Options{Dir: dir})
}

func TestTemporary(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(tempDir(t), "tmp")
	c := start(t, Options{Dir: dir, Temporary: true})
	t.Logf("throwaway cluster started in %v", c.Startup)
	var fsync string
	query(t, c.URL, "SHOW fsync", &fsync)
	if fsync != "off" {
		t.Errorf("throwaway cluster has fsync=%s", fsync)
	}
	var trgm bool
	query(t, c.URL, "SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_trgm')", &trgm)
	if !trgm {
		t.Error("pg_trgm is not available")
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary data directory still there: %v", err)
	}
}

// privateDir is a directory only its owner may enter, like a checkout under
// /root or in `mktemp -d`.
func privateDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgcluster-private-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestUnreachableDirIsRelocated starts a cluster for a data directory the
// postgres user cannot reach: as root it lives under the reachable root
// instead, linked from the requested path, and the checkout's permissions
// stay as they were.
func TestUnreachableDirIsRelocated(t *testing.T) {
	t.Parallel()
	clone := privateDir(t)
	root := tempDir(t)
	requested := filepath.Join(clone, ".data", "postgres")
	opts := Options{Dir: requested, Database: "shop", Durable: true, ReachableRoot: root}
	c := start(t, opts)
	if os.Geteuid() != 0 {
		// The server runs as us, and we can reach our own directories.
		if c.Dir != requested {
			t.Errorf("cluster in %s, want %s", c.Dir, requested)
		}
		return
	}
	if !strings.HasPrefix(c.Dir, root+string(filepath.Separator)) {
		t.Fatalf("cluster in %s, want it under the reachable root %s", c.Dir, root)
	}
	if link, err := os.Readlink(requested); err != nil || link != c.Dir {
		t.Errorf("%s links to %q (%v), want %s", requested, link, err, c.Dir)
	}
	if origin, err := os.ReadFile(filepath.Join(filepath.Dir(c.Dir), "origin")); err != nil || string(origin) != requested+"\n" {
		t.Errorf("origin file = %q, %v", origin, err)
	}
	if fi, err := os.Stat(clone); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the checkout's mode changed: %v, %v", fi.Mode(), err)
	}
	query(t, c.URL, "CREATE TABLE kept (id int) ; SELECT 'ok'", new(string))
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}

	// A restart finds the cluster through the link, data and all.
	c2 := start(t, opts)
	if c2.Dir != c.Dir {
		t.Errorf("restarted in %s, want %s", c2.Dir, c.Dir)
	}
	var n int
	query(t, c2.URL, "SELECT count(*) FROM kept", &n)

	// Another checkout gets a cluster of its own.
	other := start(t, Options{Dir: filepath.Join(privateDir(t), ".data", "postgres"), ReachableRoot: root})
	if other.Dir == c.Dir || !strings.HasPrefix(other.Dir, root) {
		t.Errorf("another checkout's cluster is in %s (the first is in %s)", other.Dir, c.Dir)
	}
}

// TestTemporaryRelocated checks that a relocated throwaway cluster leaves
// nothing behind.
func TestTemporaryRelocated(t *testing.T) {
	t.Parallel()
	root := tempDir(t)
	requested := filepath.Join(privateDir(t), "data")
	c := start(t, Options{Dir: requested, Temporary: true, ReachableRoot: root})
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(requested); !os.IsNotExist(err) {
		t.Errorf("%s still there: %v", requested, err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("the reachable root still holds %d entries", len(entries))
	}
}

// TestUnreachableClusterIsNotMoved: a cluster that exists where the
// postgres user can no longer reach it is left alone, with advice.
func TestUnreachableClusterIsNotMoved(t *testing.T) {
	t.Parallel()
	parent := tempDir(t)
	dir := filepath.Join(parent, "data")
	c := start(t, Options{Dir: dir})
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	c2, err := Start(context.Background(), Options{Dir: dir, ReachableRoot: tempDir(t)})
	if os.Geteuid() != 0 {
		// Not root: the server runs as us and still reaches it.
		if err != nil {
			t.Fatal(err)
		}
		c2.Stop()
		return
	}
	if err == nil || !strings.Contains(err.Error(), "chmod o+x "+parent) {
		t.Fatalf("err = %v, want advice to chmod %s", err, parent)
	}
}

// TestWatchdog kills a process that started a cluster and expects the
// cluster to stop and its temporary directory to go.
func TestWatchdog(t *testing.T) {
	if dir := os.Getenv("PGCLUSTER_TEST_CHILD"); dir != "" {
		c, err := Start(context.Background(), Options{Dir: dir, Temporary: true})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println(c.URL)
		select {} // wait to be killed
	}
	t.Parallel()
	dir := filepath.Join(tempDir(t), "data")
	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchdog$")
	cmd.Env = append(os.Environ(), "PGCLUSTER_TEST_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	url, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("child: %v", err)
	}
	var one int
	query(t, strings.TrimSpace(url), "SELECT 1", &one)
	cmd.Process.Kill()
	cmd.Wait()

	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := os.Stat(dir)
		if os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("data directory still there 30s after its owner died: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStartFailureShowsLog breaks the configuration of an initialised
// cluster and expects the server's complaint in the error.
func TestStartFailureShowsLog(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	c := start(t, Options{Dir: dir})
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	conf, err := os.OpenFile(filepath.Join(dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(conf, "no_such_setting = 1")
	conf.Close()
	_, err = Start(context.Background(), Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "no_such_setting") {
		t.Fatalf("err = %v, want the server log's complaint about no_such_setting", err)
	}
	t.Log(err)
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"9.6", "15", -1},
		{"16", "15", 1},
		{"15", "15", 0},
	} {
		got := compareVersions(tc.a, tc.b)
		if got < 0 {
			got = -1
		} else if got > 0 {
			got = 1
		}
		if got != tc.want {
			t.Errorf("compareVersions(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
