package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestRefServer runs (e) and its reference (f) briefly: f answers every
// tenant's get_document with that tenant's own document from e's table,
// and the report has e/f.
func TestRefServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench command")
	}
	if os.Getenv("CI") != "true" && !postgresReachable() {
		t.Skip("PostgreSQL not reachable")
	}
	for _, extra := range [][]string{nil, {"-f-rls"}} {
		t.Run(strings.Join(append([]string{"f"}, extra...), " "), func(t *testing.T) { runRef(t, extra) })
	}
	if _, err := parseFlags([]string{"-servers", "bf"}, &bytes.Buffer{}); err == nil {
		t.Error("-servers bf (f without e) accepted")
	}
}

// runRef runs e and f with the extra flags and checks the report.
func runRef(t *testing.T, extra []string) {
	dir := t.TempDir()
	var out bytes.Buffer
	args := append([]string{"-q", "-c", "4", "-warmup", "50ms", "-duration", "200ms", "-tenants", "3,20", "-servers", "ef", "-json", dir + "/r.json"}, extra...)
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())
	if !strings.Contains(out.String(), "e/f") {
		t.Error("output lacks e/f")
	}
	b, err := os.ReadFile(dir + "/r.json")
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	servers := map[string]int{}
	for _, r := range rep.Results {
		servers[r.Server]++
		// Each answer was checked to hold the calling tenant's document.
		if r.Requests == 0 || r.Errors != 0 {
			t.Errorf("(%s) %d tenants: %d requests, %d errors (%s)", r.Server, r.Tenants, r.Requests, r.Errors, r.FirstError)
		}
	}
	if servers["e"] != 2 || servers["f"] != 2 {
		t.Errorf("results per server: %v, want e and f at 2 tenant counts", servers)
	}
	for _, x := range rep.Ratios {
		if x.EF == 0 || x.EFcpu == 0 {
			t.Errorf("%d tenants: no e/f ratio: %+v", x.Tenants, x)
		}
	}
	// PostgreSQL on this machine (as in CI): its backends' CPU time is
	// measured, for e and f alike (a phase this short may round one to 0
	// ticks, so at least one of each).
	if _, err := os.Stat("/proc/self/stat"); err == nil && postgresLocal() {
		measured := map[string]bool{}
		for _, r := range rep.Results {
			measured[r.Server] = measured[r.Server] || r.DBusPerReq > 0
		}
		if !measured["e"] || !measured["f"] {
			t.Errorf("PG µs/req measured for e: %v, f: %v; want both", measured["e"], measured["f"])
		}
	}
}
