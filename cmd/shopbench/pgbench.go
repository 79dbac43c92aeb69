package main

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	_ "github.com/lib/pq"

	"github.com/shopd/shopd/internal/pgcluster"
)

// The pgbench scripts are templates: the ids they use are known only once
// the catalog is seeded and the customers registered, and are written into
// the SQL as array constants so that picking one costs the database nothing
// (a lookup table would add a query the API does not make).
//
//go:embed pgbench/*.sql
var scriptFS embed.FS

type scriptData struct {
	NumProducts      int
	ProductIDs       string // '{...}'::uuid[]: the seeded catalog
	NumStockProducts int
	StockProducts    string // '{...}'::uuid[]: the high-stock products
	NumCustomers     int
	Customers        string // '{...}'::uuid[]: customer i is client i
	Address          string // JSON, as the API stores it
}

func uuidArray(ids []string) string {
	return "'{" + strings.Join(ids, ",") + "}'::uuid[]"
}

// writeScripts renders the scripts into dir and returns their paths by name
// (list, get, checkout).
func writeScripts(dir string, f fixture) (map[string]string, error) {
	customerIDs := make([]string, len(f.customers))
	for i, c := range f.customers {
		customerIDs[i] = c.ID
	}
	data := scriptData{
		NumProducts:      len(f.catalogIDs),
		ProductIDs:       uuidArray(f.catalogIDs),
		NumStockProducts: len(f.stockIDs),
		StockProducts:    uuidArray(f.stockIDs),
		NumCustomers:     len(customerIDs),
		Customers:        uuidArray(customerIDs),
		Address:          string(mustJSON(checkoutAddress)),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	paths := map[string]string{}
	for _, name := range []string{"list", "get", "checkout"} {
		t, err := template.ParseFS(scriptFS, "pgbench/"+name+".sql")
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return nil, fmt.Errorf("render %s.sql: %w", name, err)
		}
		p := filepath.Join(dir, name+".sql")
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return nil, err
		}
		paths[name] = p
	}
	return paths, nil
}

// findPgbench looks beside the server binaries pgcluster uses, then on PATH.
func findPgbench(ctx context.Context) (string, error) {
	if dir := pgcluster.BinDir(ctx); dir != "" {
		p := filepath.Join(dir, "pgbench")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("pgbench not found (Debian: apt-get install postgresql-client); pass -pgbench PATH")
}

// sqlResult is one pgbench run.
type sqlResult struct {
	tps        float64
	latencyAvg float64 // ms
	processed  int64
	failed     int64
	output     string
	err        error // pgbench failed or a client aborted
}

var (
	tpsRe       = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	latencyRe   = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	processedRe = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	failedRe    = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
)

// runPgbench runs script for seconds with the given clients and threads.
func runPgbench(ctx context.Context, bin, dbURL, script string, clients, jobs, seconds int) sqlResult {
	args := []string{
		"--no-vacuum", "--protocol=prepared",
		"--client=" + strconv.Itoa(clients), "--jobs=" + strconv.Itoa(jobs),
		"--time=" + strconv.Itoa(seconds),
		"--file=" + script,
		dbURL,
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = filepath.Dir(script)
	out, err := cmd.CombinedOutput()
	r := parsePgbench(string(out))
	switch {
	case err != nil:
		r.err = fmt.Errorf("pgbench %s: %w", filepath.Base(script), err)
	case r.tps == 0:
		r.err = fmt.Errorf("pgbench %s: no tps in its output", filepath.Base(script))
	case r.failed > 0:
		r.err = fmt.Errorf("pgbench %s: %d failed transactions", filepath.Base(script), r.failed)
	}
	return r
}

// parsePgbench reads the summary pgbench prints at the end of a run.
func parsePgbench(out string) sqlResult {
	r := sqlResult{output: out}
	if m := tpsRe.FindStringSubmatch(r.output); m != nil {
		r.tps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := latencyRe.FindStringSubmatch(r.output); m != nil {
		r.latencyAvg, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := processedRe.FindStringSubmatch(r.output); m != nil {
		r.processed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := failedRe.FindStringSubmatch(r.output); m != nil {
		r.failed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return r
}

// vacuum settles the tables between phases, so each phase starts from the
// same kind of state (the checkout phases leave dead product row versions).
func vacuum(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, "VACUUM (ANALYZE)")
	return err
}
