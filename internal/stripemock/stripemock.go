// Package stripemock runs stripe-mock, Stripe's stateless mock of its API,
// for tests and local runs. stripe-mock answers with the real API's shapes
// but keeps no state: fixed client secrets, a new id on every call, no
// idempotency replay and no webhooks.
package stripemock

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Version is the stripe-mock release built when no binary is found. It
// matches the Stripe API version stripe-go v76 speaks.
const Version = "v0.203.0"

// Server is a running stripe-mock.
type Server struct {
	// URL is the plain-HTTP endpoint, http://127.0.0.1:PORT; use it as
	// stripe-go's API backend URL or STRIPE_API_BASE.
	URL string

	cmd      *exec.Cmd
	exited   chan struct{} // closed once the process has exited
	drained  chan struct{} // closed once its output has been read to EOF
	stopOnce sync.Once
}

// startTimeout bounds how long stripe-mock may take to load its bundled
// OpenAPI spec and listen; it takes about half a second.
const startTimeout = 30 * time.Second

// Start finds or builds the stripe-mock binary, runs it on loopback ports
// chosen by the kernel, and returns once it answers HTTP. Its output goes to
// log, which may be nil. The caller must call Stop; should this process die
// first, the kernel kills stripe-mock too (on Linux).
func Start(ctx context.Context, log io.Writer) (*Server, error) {
	if log == nil {
		log = io.Discard
	}
	bin, err := findBinary(ctx, log)
	if err != nil {
		return nil, err
	}

	// Port 0 lets the kernel pick free ports at bind time; stripe-mock then
	// prints the addresses it got. Picking ports ourselves first would
	// race with other tests starting servers at the same moment.
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	cmd.SysProcAttr = sysProcAttr()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start stripe-mock: %w", err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start stripe-mock: %w", err)
	}
	pw.Close()

	s := &Server{cmd: cmd, exited: make(chan struct{}), drained: make(chan struct{})}
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(s.exited)
	}()
	addr := make(chan string, 1)
	var head bytes.Buffer // the first lines, to explain a failed start
	go func() {
		defer close(s.drained)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(log, line)
			if head.Len() < 4096 {
				head.WriteString(line + "\n")
			}
			if a, ok := strings.CutPrefix(line, "Listening for HTTP at address: "); ok {
				select {
				case addr <- strings.TrimSpace(a):
				default:
				}
			}
		}
		// A server that never listens must not keep Start waiting.
		io.Copy(io.Discard, pr)
	}()

	fail := func(err error) (*Server, error) {
		s.Stop()
		return nil, fmt.Errorf("start stripe-mock: %w", err)
	}
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case a := <-addr:
		s.URL = "http://" + a
	case <-s.drained:
		<-s.exited
		return fail(fmt.Errorf("exited (%v) before listening:\n%s", waitErr, head.String()))
	case <-timer.C:
		return fail(fmt.Errorf("not listening after %v", startTimeout))
	case <-ctx.Done():
		return fail(ctx.Err())
	}

	// Any HTTP answer will do (it is 401 without an API key): it proves the
	// server is routing requests, not just bound.
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return s, nil
		}
		select {
		case <-s.exited:
			return fail(fmt.Errorf("exited (%v)", waitErr))
		case <-timer.C:
			return fail(fmt.Errorf("no HTTP answer after %v: %w", startTimeout, err))
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop terminates stripe-mock and waits for it to exit. Calling it again
// returns the first result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		select {
		case <-s.exited:
			// Already gone: nothing to signal.
		default:
			s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(5 * time.Second):
				s.cmd.Process.Kill()
				<-s.exited
			}
		}
		// Nothing may be written to the caller's log after Stop returns:
		// it is often a testing.T's, which panics when used after the test.
		<-s.drained
	})
	return nil
}

// findBinary looks in STRIPE_MOCK_BIN, <repo>/.bin, then PATH, and as a last
// resort installs stripe-mock into <repo>/.bin with `go install`, which keeps
// its dependencies out of our go.mod.
func findBinary(ctx context.Context, log io.Writer) (string, error) {
	if bin := os.Getenv("STRIPE_MOCK_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("STRIPE_MOCK_BIN: %w", err)
		}
		return bin, nil
	}
	root, rootErr := repoRoot()
	if rootErr == nil {
		if bin := filepath.Join(root, ".bin", "stripe-mock"); isExecutable(bin) {
			return bin, nil
		}
	}
	if bin, err := exec.LookPath("stripe-mock"); err == nil {
		return bin, nil
	}
	if rootErr != nil {
		return "", fmt.Errorf("find stripe-mock: not in STRIPE_MOCK_BIN or PATH, and nowhere to install it: %w", rootErr)
	}
	return install(ctx, root, log)
}

// install runs `go install` with GOBIN=<repo>/.bin. Test binaries of several
// packages may all get here at once, so they take turns on a lock file and
// whoever waited finds the binary built.
func install(ctx context.Context, root string, log io.Writer) (string, error) {
	dir := filepath.Join(root, ".bin")
	bin := filepath.Join(dir, "stripe-mock")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("install stripe-mock: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".stripe-mock.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("install stripe-mock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("install stripe-mock: lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if isExecutable(bin) {
		return bin, nil
	}

	fmt.Fprintf(log, "stripemock: building stripe-mock %s into %s\n", Version, dir)
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/stripe/stripe-mock@"+Version)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("install stripe-mock: go install: %w: %s", err, bytes.TrimSpace(out))
	}
	return bin, nil
}

// repoRoot is the nearest directory at or above the working directory that
// holds go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in the working directory or above")
		}
		dir = parent
	}
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
