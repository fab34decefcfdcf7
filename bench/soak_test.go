package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// TestSoakSmoke runs -soak for about a second on both servers it knows:
// every sample carries figures, no request failed (each answer was checked
// for its own tenant's document, so a cross-tenant mix-up under load
// counts as an error), (g)'s trail holds one verified event per request,
// and the chart is well-formed SVG with one line per series.
func TestSoakSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the soak for a second")
	}
	for _, server := range []string{"g", "d"} {
		t.Run(server, func(t *testing.T) {
			dir := t.TempDir()
			var out bytes.Buffer
			args := []string{"-q", "-soak", "1200ms", "-soak-every", "300ms", "-warmup", "100ms", "-soak-tenants", "20",
				"-soak-rate", "150", "-c", "4", "-soak-server", server, "-json", dir + "/soak.json", "-svg", dir + "/soak.svg"}
			if err := run(context.Background(), args, &out); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			t.Log("\n" + out.String())
			for _, want := range []string{"soak of (" + server + "): 20 tenants", "heap live", "goroutines", "open files"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q", want)
				}
			}

			var rep SoakReport
			b, err := os.ReadFile(dir + "/soak.json")
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatalf("JSON output: %v", err)
			}
			if len(rep.Samples) != 4 {
				t.Errorf("%d samples, want 4 (1.2 s every 0.3 s)", len(rep.Samples))
			}
			var sum int64
			for i, s := range rep.Samples {
				if s.Requests == 0 || s.RPS <= 0 || s.P99ms <= 0 || s.P99ms < s.P50ms || s.HeapLiveMiB <= 0 || s.RuntimeMiB < s.HeapLiveMiB ||
					s.Goroutines <= 0 || s.OpenFiles <= 0 || (i > 0 && s.AtS <= rep.Samples[i-1].AtS) {
					t.Errorf("sample %d: %+v", i, s)
				}
				sum += s.Requests
			}
			sm := rep.Summary
			if sm.Errors != 0 || sm.WarmupErrors != 0 || sm.FirstError != "" || sm.Requests != sum || sm.Requests == 0 {
				t.Errorf("summary %+v (samples add up to %d requests)", sm, sum)
			}
			switch {
			case server == "d" && rep.Audit != nil:
				t.Errorf("(d) has an audit trail: %+v", rep.Audit)
			case server == "g" && (rep.Audit == nil || !rep.Audit.OK() || rep.Audit.Chains != 20):
				t.Errorf("(g) audit trail %+v, want one verified event per request in 20 chains", rep.Audit)
			}
			if rep.Config.Tenants != 20 || rep.Config.Rate != 150 || len(rep.Config.Tools) != len(soakOps) {
				t.Errorf("config %+v", rep.Config)
			}

			svg, err := os.ReadFile(dir + "/soak.svg")
			if err != nil {
				t.Fatal(err)
			}
			if n := countElements(t, svg, "polyline"); n != 6 {
				t.Errorf("SVG has %d lines, want 6 (requests, errors, p50, p99, heap, goroutines)", n)
			}
		})
	}
}

// countElements parses doc as XML and counts its elements named name.
func countElements(t *testing.T, doc []byte, name string) int {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	n := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatalf("SVG does not parse: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == name {
			n++
		}
	}
}

// TestSoakSummary checks the summary's arithmetic on made-up samples: a
// heap rising 1 MiB a minute has that slope, quarters are means.
func TestSoakSummary(t *testing.T) {
	r := &SoakReport{}
	for i := range 8 {
		at := float64(i+1) * 10
		r.Samples = append(r.Samples, SoakSample{AtS: at, Requests: 100, RPS: 10, HeapLiveMiB: 20 + at/60, Goroutines: int64(10 + i), OpenFiles: 7, OtherCores: float64(i) / 10})
	}
	var h histogram
	r.summarize(&h, 80e9)
	s := r.Summary
	if s.Requests != 800 || s.RPS != 10 {
		t.Errorf("requests %d, rps %v", s.Requests, s.RPS)
	}
	if math.Abs(s.HeapSlopeKiBPerMin-1024) > 1 {
		t.Errorf("slope %v KiB/min, want 1024", s.HeapSlopeKiBPerMin)
	}
	if s.FirstGoroutines != 10.5 || s.LastGoroutines != 16.5 || s.FirstOpenFiles != 7 || s.MaxOtherCores != 0.7 {
		t.Errorf("summary %+v", s)
	}
	for _, c := range []struct{ in, want float64 }{{0, 1}, {0.3, 0.5}, {7, 10}, {130, 200}, {1000, 1000}} {
		if got := niceMax(c.in); got != c.want {
			t.Errorf("niceMax(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestSoakFlags: bad -soak settings are refused, naming the flag.
func TestSoakFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-soak", "1s", "-soak-server", "e"}, "-soak-server"},
		{[]string{"-soak", "1s", "-soak-rate", "0"}, "-soak-rate"},
		{[]string{"-soak", "1s", "-soak-every", "0s"}, "-soak-every"},
		{[]string{"-soak", "1s", "-soak-tenants", "0"}, "-soak-tenants"},
		{[]string{"-soak", "-1s"}, "-soak"},
	} {
		_, err := parseFlags(c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseFlags(%q) = %v, want an error naming %s", c.args, err, c.want)
		}
	}
	c, err := parseFlags([]string{"-soak", "10m"}, io.Discard)
	if err != nil || c.soak != 10*time.Minute || c.soakRate != 200 || c.soakTenants != 1000 || c.soakServer != "g" || c.soakEvery != 10*time.Second {
		t.Errorf("parseFlags(-soak 10m) = %+v, %v", c, err)
	}
}
