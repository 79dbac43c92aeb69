package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopd/shopd/internal/shoptest"
)

// TestMakeRunCtrlC runs `make run` as a terminal would (its own process
// group), waits for the banner and sends the whole group SIGINT, as Ctrl-C
// does. shopdev must exit 0, so make reports no error, and the private
// PostgreSQL and stripe-mock must be stopped.
func TestMakeRunCtrlC(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	data := dataDir(t)
	cmd := exec.Command("make", "--no-print-directory", "run")
	cmd.Dir = root
	cmd.Env = append(withoutServerEnv(os.Environ()), "DATA_DIR="+data, "HTTP_ADDR=127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr shoptest.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var banner shoptest.SyncBuffer
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			banner.Write([]byte(sc.Text() + "\n"))
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", banner.String(), stderr.String())
		}
	})

	// The first build of shopdev and stripe-mock may take minutes.
	deadline := time.Now().Add(5 * time.Minute)
	for !strings.Contains(banner.String(), "Press Ctrl-C to stop.") {
		select {
		case err := <-exited:
			t.Fatalf("make run ended before the banner: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no banner from make run")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pgDir := regexp.MustCompile(`data in (\S+)`).FindStringSubmatch(banner.String())
	stripeURL := regexp.MustCompile(`stripe-mock  (\S+), log in`).FindStringSubmatch(banner.String())
	if pgDir == nil || stripeURL == nil {
		t.Fatalf("the banner names no cluster or stripe-mock:\n%s", banner.String())
	}

	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-exited:
	case <-time.After(time.Minute):
		t.Fatal("make run still running a minute after Ctrl-C")
	}
	// make kills itself with the signal it got once its child has ended;
	// what matters is that the child ended well: make says so otherwise
	// ("make: *** [Makefile:12: run] Error 1" or "Interrupt").
	if bytes.Contains([]byte(stderr.String()), []byte("make: ***")) {
		t.Errorf("make reported a failure:\n%s", stderr.String())
	}
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT) {
		t.Errorf("make run ended with %v, want 0 or make's own SIGINT", err)
	}
	if strings.Contains(stderr.String(), `"level":"ERROR"`) {
		t.Errorf("errors logged during shutdown:\n%s", stderr.String())
	}
	assertStopped(t, pgDir[1], stripeURL[1])
}

// withoutServerEnv drops variables that would make `make run` use services
// other than its own.
func withoutServerEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "DATABASE_URL", "STRIPE_API_BASE", "STRIPE_SECRET_KEY", "HTTP_ADDR", "DATA_DIR", "MAKEFLAGS", "MAKELEVEL":
			continue
		}
		out = append(out, kv)
	}
	return out
}
