// Package e2e drives a running shopd from the outside, as its users do: the
// storefront journey through the built TypeScript client (journey.test.ts),
// and Swagger UI in a real browser (swagger-ui.test.ts). It also runs the
// client's own tests (clients/typescript: npm test). The Go test starts
// the server the way cmd/shopd does (server.Program on a fresh database,
// stripe-mock for Stripe), builds and packs clients/typescript, installs the
// tarball here, type-checks the journeys with tsc --strict
// --noUncheckedIndexedAccess and runs them with node --test.
package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shopd/shopd/internal/pgtest"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/internal/stripemock"
	"github.com/shopd/shopd/server"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	adminEmail    = "admin@e2e.example.com"
	adminPassword = "e2e-admin-password"
	webhookSecret = "whsec_e2e_journey_secret"
)

// repoRoot is the module root: this file's directory's parent.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate e2e_test.go")
	}
	return filepath.Dir(filepath.Dir(file))
}

// command runs name in dir and fails the test with its output on error.
func command(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s %s (in %s): %s", name, strings.Join(args, " "), rel(t, dir), time.Since(start).Round(10*time.Millisecond))
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func rel(t *testing.T, dir string) string {
	if r, err := filepath.Rel(repoRoot(t), dir); err == nil {
		return r
	}
	return dir
}

// npmCI installs dir's locked dependencies with `npm ci`, unless
// node_modules already holds exactly that lockfile's install: the marker
// keeps the lockfile's hash, so make test stays fast and a changed
// lockfile reinstalls.
func npmCI(t *testing.T, dir string) {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatalf("read lockfile: %v", err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	marker := filepath.Join(dir, "node_modules", ".shopd-installed-lock")
	if got, err := os.ReadFile(marker); err == nil && string(got) == want {
		return
	}
	command(t, dir, "npm", "ci", "--no-audit", "--no-fund")
	if err := os.WriteFile(marker, []byte(want), 0o644); err != nil {
		t.Fatalf("write marker: %v", err)
	}
}

// prepared is the node side of the journeys, ready to run.
type prepared struct {
	dir     string // e2e/, with the client installed and the journeys compiled to build/
	shopdev string // the shopdev binary, for `shopdev pay`
}

// prepare builds and packs the client, installs the tarball into e2e/ as a
// user would, compiles the journeys and builds shopdev.
func prepare(t *testing.T) prepared {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatal(tool + " is not on PATH: run scripts/install-deps --with-node (make test does)")
		}
	}
	root := repoRoot(t)
	client := filepath.Join(root, "clients", "typescript")
	e2e := filepath.Join(root, "e2e")

	npmCI(t, client)
	command(t, client, "npm", "run", "--silent", "build")
	// The type tests and the helpers' wire tests (node --test).
	t.Logf("client tests:\n%s", command(t, client, "npm", "test", "--silent"))
	packDir := t.TempDir()
	packOut := command(t, client, "npm", "pack", "--pack-destination", packDir)
	t.Logf("npm pack:\n%s", packOut)
	tarballs, _ := filepath.Glob(filepath.Join(packDir, "shopd-client-*.tgz"))
	if len(tarballs) != 1 {
		t.Fatalf("npm pack made %v, want one shopd-client-*.tgz", tarballs)
	}
	for _, want := range []string{"dist/index.js", "dist/index.d.ts", "dist/schema.d.ts", "README.md"} {
		if !strings.Contains(packOut, want) {
			t.Errorf("the tarball lacks %s", want)
		}
	}

	if t.Failed() {
		t.FailNow()
	}
	npmCI(t, e2e)
	// As a user installs it; its one dependency, openapi-fetch, is locked
	// in e2e/package-lock.json already, so nothing is fetched.
	command(t, e2e, "npm", "install", "--no-save", "--offline", "--no-audit", "--no-fund", tarballs[0])
	if err := os.RemoveAll(filepath.Join(e2e, "build")); err != nil {
		t.Fatal(err)
	}
	command(t, e2e, filepath.Join(e2e, "node_modules", ".bin", "tsc"), "-p", ".", "--strict", "--noUncheckedIndexedAccess")

	bin := filepath.Join(t.TempDir(), "shopdev")
	command(t, root, "go", "build", "-o", bin, "./cmd/shopdev")
	return prepared{dir: e2e, shopdev: bin}
}

// startShop runs the program cmd/shopd runs on a fresh database, with
// stripe-mock as Stripe, and returns its base URL once it serves.
func startShop(t *testing.T) string {
	t.Helper()
	mock, err := stripemock.Start(context.Background(), nil)
	if err != nil {
		t.Fatalf("stripe-mock: %v", err)
	}
	t.Cleanup(func() { _ = mock.Stop() })
	addr := freeAddr(t)
	env := map[string]string{
		"DATABASE_URL":             pgtest.NewURL(t),
		"HTTP_ADDR":                addr,
		"PUBLIC_URL":               "http://" + addr, // Swagger UI sends "Try it out" to the spec's servers
		"DATA_DIR":                 t.TempDir(),
		"BOOTSTRAP_ADMIN_EMAIL":    adminEmail,
		"BOOTSTRAP_ADMIN_PASSWORD": adminPassword,
		"STRIPE_API_BASE":          mock.URL,
		"STRIPE_WEBHOOK_SECRET":    webhookSecret,
		"STREAM_HEARTBEAT":         "200ms",
		"JOB_POLL_INTERVAL":        "100ms",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	serving := make(chan string, 1)
	stderr := &shoptest.SyncBuffer{}
	p := server.Program{Serving: func(base string) { serving <- base }}
	go func() {
		done <- p.Run(ctx, nil, func(k string) string { return env[k] }, &shoptest.SyncBuffer{}, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("the server did not stop within 15s")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", stderr)
		}
	})
	select {
	case base := <-serving:
		return base
	case err := <-done:
		t.Fatalf("the server stopped before serving: %v\n%s", err, stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("not serving within 60s\n%s", stderr)
	}
	return ""
}

// freeAddr is a loopback address with a port free a moment ago. The spec's
// servers (and so Swagger UI's requests) come from PUBLIC_URL, which must
// name the port before the server starts; port 0 would be published as is.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// nodeTest runs `node --test` on one compiled journey and fails with
// node's output.
func nodeTest(t *testing.T, dir, file string, env []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", file)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("node --test %s (%s):\n%s", file, time.Since(start).Round(10*time.Millisecond), out.String())
	if err != nil {
		t.Fatalf("node --test %s: %v", file, err)
	}
}

// TestClientJourney runs the storefront journey and the Swagger UI check
// against one server.
func TestClientJourney(t *testing.T) {
	t.Parallel()
	p := prepare(t)
	base := startShop(t)
	env := []string{
		"SHOP_URL=" + base,
		"ADMIN_EMAIL=" + adminEmail,
		"ADMIN_PASSWORD=" + adminPassword,
	}

	t.Run("journey", func(t *testing.T) {
		nodeTest(t, p.dir, "build/journey.test.js", append(env,
			"SHOPDEV="+p.shopdev,
			// What `shopdev pay` needs to be accepted by this server: its
			// webhook secret and admin; its own state in a scratch dir.
			"PAY_ENV_STRIPE_WEBHOOK_SECRET="+webhookSecret,
			"PAY_ENV_BOOTSTRAP_ADMIN_EMAIL="+adminEmail,
			"PAY_ENV_BOOTSTRAP_ADMIN_PASSWORD="+adminPassword,
			"PAY_ENV_DATA_DIR="+t.TempDir(),
		))
	})

	t.Run("swagger-ui", func(t *testing.T) {
		chromium, err := exec.LookPath("chromium")
		if err != nil {
			t.Fatal("no chromium on PATH: run scripts/install-deps --with-browser (make test does)")
		}
		artifacts := filepath.Join(p.dir, "artifacts", "swagger-ui")
		if err := os.RemoveAll(artifacts); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshots: %s", artifacts)
		nodeTest(t, p.dir, "build/swagger-ui.test.js", append(env,
			"CHROMIUM="+chromium,
			"ARTIFACTS="+artifacts,
			"HOME="+t.TempDir(), // chromium's profile and crash dumps stay out of ~
		))
	})
}
