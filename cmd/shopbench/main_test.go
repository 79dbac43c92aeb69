package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The output of pgbench 15 for a custom script, trimmed.
const pgbenchOutput = `pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: /tmp/shopbench-1/pgbench/list.sql
scaling factor: 1
query mode: prepared
number of clients: 32
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 135153
number of failed transactions: 0 (0.000%)
latency average = 2.367 ms
initial connection time = 80.422 ms
tps = 13515.300123 (without initial connection time)
`

func TestParsePgbench(t *testing.T) {
	r := parsePgbench(pgbenchOutput)
	if r.tps != 13515.300123 || r.latencyAvg != 2.367 || r.processed != 135153 || r.failed != 0 {
		t.Errorf("parsePgbench = tps %v, latency %v, processed %d, failed %d", r.tps, r.latencyAvg, r.processed, r.failed)
	}
	failed := strings.Replace(pgbenchOutput, "failed transactions: 0 (0.000%)", "failed transactions: 7 (0.005%)", 1)
	if r := parsePgbench(failed); r.failed != 7 {
		t.Errorf("failed = %d, want 7", r.failed)
	}
}

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	s := summarize(lat, 2, 2*time.Second)
	if s.p50 != 50*time.Millisecond || s.p99 != 99*time.Millisecond || s.perSec != 50 || s.errs != 2 {
		t.Errorf("summarize = %+v", s)
	}
	if got := percentile([]time.Duration{7}, 0.99); got != 7 {
		t.Errorf("percentile of one sample = %v", got)
	}
}

// TestWriteScripts renders the pgbench scripts: every placeholder filled,
// the ids in place.
func TestWriteScripts(t *testing.T) {
	f := fixture{
		catalogIDs: []string{"00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"},
		stockIDs:   []string{"00000000-0000-4000-8000-0000000000aa"},
		customers:  []customer{{ID: "00000000-0000-4000-8000-0000000000c1"}, {ID: "00000000-0000-4000-8000-0000000000c2"}},
	}
	dir := t.TempDir()
	paths, err := writeScripts(dir, f)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"list":     "LIMIT 21",
		"get":      "\\set i random(1, 2)",
		"checkout": "'{00000000-0000-4000-8000-0000000000c1,00000000-0000-4000-8000-0000000000c2}'::uuid[]",
	} {
		b, err := os.ReadFile(paths[name])
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(paths[name]) != dir {
			t.Errorf("%s written to %s", name, paths[name])
		}
		if s := string(b); strings.Contains(s, "{{") || !strings.Contains(s, want) {
			t.Errorf("%s.sql: want %q and no placeholders:\n%s", name, want, s)
		}
	}
}

// TestFloodLogins: a third right, a third wrong, a third unknown; padded
// bodies are still one JSON object of exactly the size asked for.
func TestFloodLogins(t *testing.T) {
	t.Parallel()
	emails := []string{"a@example.com", "b@example.com"}
	for _, size := range []int{0, 4096} {
		logins := floodLogins(300, emails, size)
		right := 0
		for i, l := range logins {
			var body map[string]string
			if err := json.Unmarshal(l.body, &body); err != nil {
				t.Fatalf("login %d: %v: %q", i, err, l.body)
			}
			if size > 0 && len(l.body) != size {
				t.Errorf("login %d: %d bytes, want %d", i, len(l.body), size)
			}
			isRight := body["password"] == floodPassword && slices.Contains(emails, body["email"])
			if isRight != (l.want == http.StatusOK) {
				t.Errorf("login %d %v expects %d", i, body, l.want)
			}
			if isRight {
				right++
			}
		}
		if right != 100 {
			t.Errorf("%d right passwords of 300, want 100", right)
		}
	}
}

func TestParseScenarios(t *testing.T) {
	t.Parallel()
	got, err := parseScenarios("login-flood, list")
	if err != nil || len(got) != 2 || !got["login-flood"] || !got["list"] {
		t.Errorf("parseScenarios = %v, %v", got, err)
	}
	if _, err := parseScenarios("list,nope"); err == nil {
		t.Error("an unknown scenario was accepted")
	}
}
