package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// devPackages are development and test infrastructure: the private
// PostgreSQL launcher (which may apt-get install PostgreSQL), stripe-mock
// (which it may go install), the demo catalog and the test helpers. The
// production binary links none of them.
var devPackages = []string{
	"github.com/shopd/shopd/internal/pgcluster",
	"github.com/shopd/shopd/internal/stripemock",
	"github.com/shopd/shopd/internal/demo",
	"github.com/shopd/shopd/internal/pgtest",
	"github.com/shopd/shopd/internal/stripefake",
	"github.com/shopd/shopd/internal/shoptest",
}

func TestBinaryCarriesNoDevTooling(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/shopd/shopd/server") || !slices.Contains(deps, "github.com/shopd/shopd/handlers") {
		t.Fatalf("go list -deps does not list the server and its handlers: not shopd's dependencies?\n%s", out)
	}
	for _, dev := range devPackages {
		if slices.Contains(deps, dev) {
			t.Errorf("cmd/shopd depends on %s", dev)
		}
	}
}

// TestBinaryRefusesWithoutDatabaseURL builds shopd and starts it without
// DATABASE_URL: it must exit 1 at once with advice, starting nothing.
func TestBinaryRefusesWithoutDatabaseURL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "shopd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir := filepath.Join(dir, "data")

	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "HTTP_ADDR=127.0.0.1:0", "DATA_DIR=" + dataDir}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("shopd without DATABASE_URL: %v, want exit status 1\n%s", err, stderr.String())
	}
	msg := stderr.String()
	if !strings.HasPrefix(msg, "shopd: DATABASE_URL is not set") || !strings.Contains(msg, "make run") {
		t.Errorf("stderr = %q, want it to name DATABASE_URL and point at make run", msg)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("shopd created DATA_DIR (%v): it must start nothing without a database", err)
	}
}
