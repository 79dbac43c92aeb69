package handlers_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// chromiumPath finds Debian's chromium (scripts/install-deps installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: run scripts/install-deps (make test does) or apt-get install chromium")
	return ""
}

// TestSwaggerUIInBrowser loads /docs in headless Chromium, lets Swagger UI
// fetch and render our spec, and reads the resulting DOM: the operations
// and the Authorize button for bearer tokens must be there.
func TestSwaggerUIInBrowser(t *testing.T) {
	t.Parallel()
	a := setup(t)
	bin := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=15000", "--dump-dom", a.URL+"/docs/")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	for _, want := range []string{
		`class="swagger-ui"`,
		"/v1/products",
		"/v1/checkout",
		"/v1/orders/{orderId}/cancel",
		"authorize", // the Authorize button for the bearer scheme
		"shopd",     // our spec's title, not the petstore
	} {
		if !strings.Contains(strings.ToLower(dom), strings.ToLower(want)) {
			t.Errorf("rendered /docs lacks %q", want)
		}
	}
	if t.Failed() {
		if len(dom) > 3000 {
			dom = dom[:3000]
		}
		t.Logf("DOM starts: %s", dom)
	}
}
