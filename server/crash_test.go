package server

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopd/shopd/internal/pgcluster"
	"github.com/shopd/shopd/internal/shoptest"
	"github.com/shopd/shopd/internal/stripefake"
)

// TestKilledBetweenCommitAndSend: the production binary is killed with
// SIGKILL after the payment's transaction committed its confirmation (the
// outbox row and its job) but before any instance sent it. The instance
// started after it sends the confirmation, once.
func TestKilledBetweenCommitAndSend(t *testing.T) {
	t.Parallel()
	box := shoptest.NewInbox(t)

	const secret = "whsec_crash_test"
	fake := stripefake.New(t)
	env := shopEnv(t, fake.URL, secret, map[string]string{
		"SMTP_URL": "smtp://" + box.Addr, "MAIL_FROM": "shop@shop.example",
		"NOTIFY_RETRY_BASE": "10ms",
		// The killed instance looks for due jobs once an hour: whatever it
		// commits stays unsent until it dies.
		"JOB_POLL_INTERVAL": "1h",
	})
	first := startBinary(t, env)
	admin := first.token(t, "boss@example.com", "bootstrap-password")
	order, email := first.placeOrder(t, admin)
	first.deliver(t, paidEvent(order), secret)

	var pending []listedNotification
	if st := first.call(t, http.MethodGet, "/v1/admin/notifications?orderId="+order.Order.ID, admin, nil, &struct {
		Items *[]listedNotification `json:"items"`
	}{&pending}); st != http.StatusOK {
		t.Fatalf("list notifications: %d", st)
	}
	if len(pending) != 1 || pending[0].Status != "pending" || pending[0].Attempts != 0 {
		t.Fatalf("before the kill: notifications %+v, want one pending confirmation, never tried", pending)
	}
	if got := box.Received(); len(got) != 0 {
		t.Fatalf("sent before the kill: %d messages", len(got))
	}
	if err := first.cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown of any kind
		t.Fatal(err)
	}
	_ = first.cmd.Wait()

	env["JOB_POLL_INTERVAL"] = "20ms"
	env["HTTP_ADDR"] = "127.0.0.1:0"
	second := start(t, env)
	ns := second.notificationsOf(t, admin, order.Order.ID)
	if len(ns) != 1 || ns[0].Status != "sent" || ns[0].Attempts != 1 || ns[0].Recipient != email {
		t.Fatalf("after the restart: notifications %+v, want the confirmation sent once to %s", ns, email)
	}
	got := box.Received()
	if len(got) != 1 || !strings.Contains(got[0], order.Order.OrderNumber) {
		t.Fatalf("mail received after the restart: %d messages, want 1 naming %s", len(got), order.Order.OrderNumber)
	}
}

// binaryServer is the production binary running as its own process.
type binaryServer struct {
	*server
	cmd *exec.Cmd
}

// startBinary builds cmd/shopd and runs it with env (and a free HTTP_ADDR),
// returning once /healthz answers.
func startBinary(t *testing.T, env map[string]string) *binaryServer {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shopd")
	build := exec.Command("go", "build", "-o", bin, "github.com/shopd/shopd/cmd/shopd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build shopd: %v\n%s", err, out)
	}
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "HTTP_ADDR="+addr) // last: it wins over env's
	stderr := &shoptest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("shopd output:\n%s", stderr)
		}
	})
	s := &binaryServer{server: &server{base: "http://" + addr}, cmd: cmd}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(s.base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("shopd not serving within 30s:\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
