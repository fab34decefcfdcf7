package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one server at one tenant count.
type Result struct {
	Server       string  `json:"server"` // a … e, g
	Label        string  `json:"label"`
	Tenants      int     `json:"tenants"`
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	Seconds      float64 `json:"seconds"`
	RPS          float64 `json:"rps"`
	P50us        float64 `json:"p50_us"`
	P99us        float64 `json:"p99_us"`
	AllocsPerReq float64 `json:"allocs_per_req"`
	BytesPerReq  float64 `json:"bytes_per_req"`
	CPUusPerReq  float64 `json:"cpu_us_per_req"`
	// OtherCores is how many cores other processes kept busy on average
	// during the window (PostgreSQL for e; anything else is load that
	// was not the bench's). 0 where /proc/stat cannot be read.
	OtherCores float64 `json:"other_cores"`
	// DBusPerReq is the CPU time of the server's own PostgreSQL backends
	// per request (e, f; 0 where not measured).
	DBusPerReq float64 `json:"db_cpu_us_per_req,omitempty"`
	// Repeats counts the attempts of this phase that -quiet-cores
	// discarded because other processes were busy (summed over the
	// rounds in a median result).
	Repeats    int       `json:"repeats,omitempty"`
	FirstError string    `json:"first_error,omitempty"`
	Rounds     int       `json:"rounds"`
	AllRPS     []float64 `json:"all_rounds_rps,omitempty"`
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

func newResult(t *target, n int, pr *phaseResult) Result {
	r := Result{
		Server:   t.key,
		Label:    t.label,
		Tenants:  n,
		Requests: pr.Requests,
		Errors:   pr.Errors,
		Seconds:  pr.Elapsed.Seconds(),
		P50us:    float64(pr.Hist.quantile(0.50)) / 1e3,
		P99us:    float64(pr.Hist.quantile(0.99)) / 1e3,
	}
	if pr.FirstErr != nil {
		r.FirstError = pr.FirstErr.Error()
	}
	if r.Seconds > 0 {
		r.RPS = float64(pr.Requests) / r.Seconds
		r.OtherCores = math.Round(pr.OtherCPU.Seconds()/r.Seconds*100) / 100
	}
	if pr.Requests > 0 {
		r.AllocsPerReq = float64(pr.Mallocs) / float64(pr.Requests)
		r.BytesPerReq = float64(pr.HeapBytes) / float64(pr.Requests)
		r.CPUusPerReq = math.Round(float64(pr.CPU)/float64(pr.Requests)/10) / 100
		if pr.DBMeasured {
			r.DBusPerReq = math.Round(float64(pr.DBCPU)/float64(pr.Requests)/10) / 100
		}
	}
	r.RPS, r.P50us, r.P99us = round1(r.RPS), round1(r.P50us), round1(r.P99us)
	r.AllocsPerReq, r.BytesPerReq = round1(r.AllocsPerReq), math.Round(r.BytesPerReq)
	return r
}

// Ratios compare the servers at one tenant count (0 when a server did not
// run). AddedP99us is d's p99 latency minus b's; AuditP99us is g's minus
// d's (what the audit trail adds), 0 without g.
type Ratios struct {
	Tenants int     `json:"tenants"`
	DB      float64 `json:"d_over_b"`
	DA      float64 `json:"d_over_a"`
	EB      float64 `json:"e_over_b"`
	EF      float64 `json:"e_over_f,omitempty"` // e ÷ its reference f (0 without f)
	DC      float64 `json:"d_over_c"`
	GD      float64 `json:"g_over_d"`
	// DBcpu, EBcpu and GDcpu compare CPU time per request instead (b's ÷
	// d's): what the ratio of requests/s would be if the process had the
	// cores to itself.
	DBcpu float64 `json:"d_over_b_by_cpu"`
	EBcpu float64 `json:"e_over_b_by_cpu"`
	EFcpu float64 `json:"e_over_f_by_cpu,omitempty"`
	// EFall compares e and f by all the CPU time a request costs: the
	// process's and its PostgreSQL backends' (0 where not measured).
	EFall      float64 `json:"e_over_f_by_cpu_with_db,omitempty"`
	GDcpu      float64 `json:"g_over_d_by_cpu"`
	AddedP99us float64 `json:"p99_added_us_d_minus_b"`
	AuditP99us float64 `json:"p99_added_us_g_minus_d"`
}

type report struct {
	Machine Machine   `json:"machine"`
	Config  RunConfig `json:"config"`
	Results []Result  `json:"results"`
	Ratios  []Ratios  `json:"ratios"`
	// Degradation is d's requests/s at the largest tenant count relative
	// to 100 tenants (or the smallest count above 1), minus 1.
	Degradation *Degradation `json:"degradation,omitempty"`
	RLSRows     int64        `json:"rls_rows,omitempty"`
	Audit       *AuditTrail  `json:"audit,omitempty"` // g's trail, verified after the run
	Scale       *Scale       `json:"scale,omitempty"`
	Skipped     []string     `json:"skipped,omitempty"`
	Notes       []string     `json:"notes"`
}

// Degradation compares d (and e, g) between two tenant counts.
type Degradation struct {
	From int `json:"from_tenants"`
	To   int `json:"to_tenants"`
	// D, E and G are the relative changes of requests/s (negative = slower).
	D float64 `json:"d"`
	E float64 `json:"e"`
	G float64 `json:"g"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs       int    `json:"cpus"`
	Model      string `json:"cpu_model"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	LoadAvg    string `json:"loadavg_at_start"`
	LoadAvgEnd string `json:"loadavg_at_end"`
	Date       string `json:"date"`
}

// RunConfig echoes the settings.
type RunConfig struct {
	Conns      int     `json:"connections"`
	WarmupS    float64 `json:"warmup_s"`
	DurationS  float64 `json:"duration_s"`
	Tenants    []int   `json:"tenants"`
	Rounds     int     `json:"rounds"`
	TokenCache int     `json:"token_cache"`
	RegCache   int     `json:"registry_cache"`
	QuietCores float64 `json:"quiet_cores,omitempty"`
	AuditBatch int     `json:"audit_batch,omitempty"` // g's writer BatchSize; 0 = the default
	Protocol   string  `json:"protocol"`
	Command    string  `json:"command"`
}

func machineInfo() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		Date: time.Now().UTC().Format("2006-01-02")}
	m.LoadAvg = loadAvg()
	if out, err := exec.Command("lscpu").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if name, ok := strings.CutPrefix(l, "Model name:"); ok {
				m.Model = strings.TrimSpace(name)
				break
			}
		}
	}
	return m
}

// loadAvg is the 1, 5 and 15 minute load averages ("" where unknown).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func reportConfig(c *config) RunConfig {
	return RunConfig{Conns: c.conns, WarmupS: c.warmup.Seconds(), DurationS: c.duration.Seconds(), Tenants: c.tenants,
		Rounds: c.rounds, TokenCache: c.tokenCache, RegCache: c.regCache, QuietCores: c.quietCores, AuditBatch: c.auditBatch, Protocol: protocolVersion,
		Command: "go run . " + strings.Join(os.Args[1:], " ")}
}

func (r *report) find(server string, n int) *Result {
	for i := range r.Results {
		if r.Results[i].Server == server && r.Results[i].Tenants == n {
			return &r.Results[i]
		}
	}
	return nil
}

func ratio(x, y *Result) float64 {
	if x == nil || y == nil || y.RPS == 0 {
		return 0
	}
	return math.Round(x.RPS/y.RPS*1000) / 1000
}

// allCPURatio is cpuRatio with the PostgreSQL backends' CPU time added
// to both sides; 0 unless both were measured.
func allCPURatio(x, y *Result) float64 {
	if x == nil || y == nil || x.DBusPerReq == 0 || y.DBusPerReq == 0 {
		return 0
	}
	return math.Round((y.CPUusPerReq+y.DBusPerReq)/(x.CPUusPerReq+x.DBusPerReq)*1000) / 1000
}

func cpuRatio(x, y *Result) float64 {
	if x == nil || y == nil || x.CPUusPerReq == 0 {
		return 0
	}
	return math.Round(y.CPUusPerReq/x.CPUusPerReq*1000) / 1000
}

// computeRatios fills Ratios. With several rounds each ratio is the
// median of the per-round ratios (servers of one round ran minutes apart at
// most, so a change of background load affects both sides of a ratio).
func (r *report) computeRatios(tenants []int, rounds map[string][]Result) {
	for _, n := range tenants {
		get := func(k string, i int) *Result {
			rs := rounds[fmt.Sprint(k, n)]
			if i < len(rs) {
				return &rs[i]
			}
			return nil
		}
		nr := len(rounds[fmt.Sprint("b", n)])
		for _, k := range []string{"d", "g"} {
			nr = max(nr, len(rounds[fmt.Sprint(k, n)]))
		}
		var per []Ratios
		for i := range max(nr, 1) {
			a, b, c, d, e, g := get("a", i), get("b", i), get("c", i), get("d", i), get("e", i), get("g", i)
			f := get("f", i)
			rt := Ratios{Tenants: n, DB: ratio(d, b), DA: ratio(d, a), EB: ratio(e, b), EF: ratio(e, f), DC: ratio(d, c), GD: ratio(g, d),
				DBcpu: cpuRatio(d, b), EBcpu: cpuRatio(e, b), EFcpu: cpuRatio(e, f), EFall: allCPURatio(e, f), GDcpu: cpuRatio(g, d)}
			if d != nil && b != nil {
				rt.AddedP99us = round1(d.P99us - b.P99us)
			}
			if g != nil && d != nil {
				rt.AuditP99us = round1(g.P99us - d.P99us)
			}
			per = append(per, rt)
		}
		med := func(f func(Ratios) float64) float64 {
			v := make([]float64, len(per))
			for i, x := range per {
				v[i] = f(x)
			}
			sort.Float64s(v)
			return v[len(v)/2]
		}
		r.Ratios = append(r.Ratios, Ratios{Tenants: n,
			DB: med(func(x Ratios) float64 { return x.DB }), DA: med(func(x Ratios) float64 { return x.DA }),
			EB: med(func(x Ratios) float64 { return x.EB }), DC: med(func(x Ratios) float64 { return x.DC }),
			EF:         med(func(x Ratios) float64 { return x.EF }),
			EFcpu:      med(func(x Ratios) float64 { return x.EFcpu }),
			EFall:      med(func(x Ratios) float64 { return x.EFall }),
			GD:         med(func(x Ratios) float64 { return x.GD }),
			DBcpu:      med(func(x Ratios) float64 { return x.DBcpu }),
			EBcpu:      med(func(x Ratios) float64 { return x.EBcpu }),
			GDcpu:      med(func(x Ratios) float64 { return x.GDcpu }),
			AddedP99us: med(func(x Ratios) float64 { return x.AddedP99us }),
			AuditP99us: med(func(x Ratios) float64 { return x.AuditP99us }),
		})
	}
	from, to := 0, 0
	for _, n := range tenants {
		if n == 100 || (from == 0 && n > 1) {
			from = n
		}
		to = max(to, n)
	}
	if from > 0 && to > from {
		dg := &Degradation{From: from, To: to}
		change := func(k string) float64 {
			if x, y := r.find(k, from), r.find(k, to); x != nil && y != nil && x.RPS > 0 {
				return math.Round((y.RPS/x.RPS-1)*1000) / 1000
			}
			return 0
		}
		dg.D, dg.E, dg.G = change("d"), change("e"), change("g")
		r.Degradation = dg
	}
	writerOpts := "default writer options"
	if r.Config.AuditBatch != 0 {
		writerOpts = fmt.Sprintf("writer batches of %d, other writer options default", r.Config.AuditBatch)
	}
	r.Notes = append(r.Notes,
		"client and servers share the machine: the load generator runs in the same process, on the same cores",
		"CPU µs/req is the process's CPU time (user+system, client included) per request: less sensitive than req/s to other load on the machine",
		"allocations per request are the process's (runtime.MemStats.Mallocs delta / requests); the load generator allocates nothing per request",
		"other cores: CPU time of all other processes during the window ÷ its length (PostgreSQL for e; for the others, load that was not the bench's)",
		"PG µs/req: CPU time of the server's own PostgreSQL backends (its pool's, by application_name, from /proc) per request; e/f by CPU+PG adds it to the process's on both sides",
		"d and e run without audit; g is d with the audit trail on (SQLite audit.db, "+writerOpts+"), verified after the run",
		"e calls get_document (one row through a row-level-security transaction); a, b, c, d, g call echo",
		"f (when run) calls get_document on bare mcp-go: one pgx query on e's table by the tenant id in the arguments, as the superuser, no transaction")
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s, load %s at the start, %s at the end\n", r.Machine.CPUs, r.Machine.Model, r.Machine.GoVersion, r.Machine.LoadAvg, r.Machine.LoadAvgEnd)
	fmt.Fprintf(w, "run: %d connections, %gs warm-up, %gs measured, %d round(s), protocol %s\n\n",
		r.Config.Conns, r.Config.WarmupS, r.Config.DurationS, r.Config.Rounds, r.Config.Protocol)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\ttenants\treq/s\tp50 µs\tp99 µs\tallocs/req\tB/req\tCPU µs/req\tPG µs/req\tother cores\terrors\t")
	for _, x := range r.Results {
		pg := "-"
		if x.DBusPerReq > 0 {
			pg = fmt.Sprintf("%.1f", x.DBusPerReq)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.0f\t%.1f\t%.0f\t%.1f\t%s\t%.2f\t%d\t\n", "("+x.Server+") "+x.Label, x.Tenants, x.RPS, x.P50us, x.P99us, x.AllocsPerReq, x.BytesPerReq, x.CPUusPerReq, pg, x.OtherCores, x.Errors)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tenants\td/b\td/a\te/b\te/f\td/c\tg/d\tp99 d-b µs\tp99 g-d µs\td/b by CPU\te/b by CPU\te/f by CPU\te/f by CPU+PG\tg/d by CPU\t")
	for _, x := range r.Ratios {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", x.Tenants, fmtRatio(x.DB), fmtRatio(x.DA), fmtRatio(x.EB), fmtRatio(x.EF), fmtRatio(x.DC), fmtRatio(x.GD),
			fmtDelta(x.DB, x.AddedP99us), fmtDelta(x.GD, x.AuditP99us), fmtRatio(x.DBcpu), fmtRatio(x.EBcpu), fmtRatio(x.EFcpu), fmtRatio(x.EFall), fmtRatio(x.GDcpu))
	}
	tw.Flush()
	if d := r.Degradation; d != nil {
		var parts []string
		if r.find("d", d.To) != nil {
			parts = append(parts, fmt.Sprintf("d %+.1f%%", d.D*100))
		}
		if r.find("e", d.To) != nil {
			parts = append(parts, fmt.Sprintf("e %+.1f%%", d.E*100))
		}
		if r.find("g", d.To) != nil {
			parts = append(parts, fmt.Sprintf("g %+.1f%%", d.G*100))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "\nchange of req/s from %d to %d tenants: %s\n", d.From, d.To, strings.Join(parts, ", "))
		}
	}
	if r.RLSRows > 0 {
		fmt.Fprintf(w, "RLS documents table: %d rows\n", r.RLSRows)
	}
	if q := r.Config.QuietCores; q > 0 {
		n := 0
		for _, x := range r.Results {
			n += x.Repeats
		}
		fmt.Fprintf(w, "phases repeated because other processes kept more than %g cores busy: %d (at most %d per phase; e and f exempt)\n", q, n, maxRepeats)
	}
	if r.Audit != nil {
		r.Audit.write(w)
	}
	for _, x := range r.Results {
		if x.FirstError != "" {
			fmt.Fprintf(w, "(%s) %d tenants, first error: %s\n", x.Server, x.Tenants, x.FirstError)
		}
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "skipped %s\n", s)
	}
	if s := r.Scale; s != nil {
		fmt.Fprintln(w)
		s.write(w)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// fmtDelta formats a latency difference, "-" when the ratio of the same
// two servers is missing (one of them did not run).
func fmtDelta(ratio, us float64) string {
	if ratio == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", us)
}

func fmtRatio(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

// svg draws the ratios as grouped bars: one group per tenant count, one
// bar per ratio, with a line at 1.0, at the 0.85 target for d/b and at
// the 0.9 target for g/d.
func (r *report) svg() []byte {
	type series struct {
		name  string
		color string
		get   func(Ratios) float64
	}
	ss := []series{
		{"d/b  tenantmcp ÷ mcp-go", "#1f77b4", func(x Ratios) float64 { return x.DB }},
		{"d/a  tenantmcp ÷ plain net/http", "#ff7f0e", func(x Ratios) float64 { return x.DA }},
		{"e/b  tenantmcp+PostgreSQL RLS ÷ mcp-go", "#2ca02c", func(x Ratios) float64 { return x.EB }},
		{"d/c  tenantmcp ÷ go-sdk", "#9467bd", func(x Ratios) float64 { return x.DC }},
		{"g/d  tenantmcp audit on ÷ audit off", "#d62728", func(x Ratios) float64 { return x.GD }},
	}
	// The axis stops at 1.2 (or the largest of d/b, d/a, e/b, g/d): d/c
	// is several times larger and would flatten the others, so its bars
	// are cut at the top and carry their value.
	maxV := 1.2
	for _, x := range r.Ratios {
		maxV = math.Max(maxV, math.Max(math.Max(x.DB, x.GD), math.Max(x.DA, x.EB)))
	}
	maxV = math.Ceil(maxV*5) / 5
	const (
		w, h                   = 760, 464
		left, right, top, bot  = 60, 20, 40, 154
		plotW, plotH           = w - left - right, h - top - bot
		groupGap, barGapInside = 30.0, 4.0
	)
	y := func(v float64) float64 { return top + plotH - v/maxV*plotH }
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	title := fmt.Sprintf("tenantmcp: ratios of requests/s (%d CPUs, %d connections)", r.Machine.CPUs, r.Config.Conns)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	for v := 0.0; v <= maxV+1e-9; v += 0.2 {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, w-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%.1f</text>`+"\n", left-6, y(v)+4, v)
	}
	ng := len(r.Ratios)
	if ng == 0 {
		ng = 1
	}
	groupW := (plotW - groupGap*float64(ng+1)) / float64(ng)
	barW := (groupW - barGapInside*float64(len(ss)-1)) / float64(len(ss))
	for gi, x := range r.Ratios {
		gx := left + groupGap + float64(gi)*(groupW+groupGap)
		for si, s := range ss {
			v := s.get(x)
			if v == 0 {
				continue
			}
			bx := gx + float64(si)*(barW+barGapInside)
			shown := math.Min(v, maxV)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", bx, y(shown), barW, y(0)-y(shown), s.color)
			if v > maxV {
				// A white zigzag marks the cut.
				fmt.Fprintf(&b, `<polyline points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="none" stroke="white" stroke-width="3"/>`+"\n",
					bx, y(shown)+14, bx+barW/3, y(shown)+8, bx+2*barW/3, y(shown)+14, bx+barW, y(shown)+8)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11">%.2f</text>`+"\n", bx+barW/2, y(shown)-4, v)
		}
		label := fmt.Sprintf("%d tenant", x.Tenants)
		if x.Tenants != 1 {
			label += "s"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", gx+groupW/2, h-bot+18, label)
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="black" stroke-width="1.5"/>`+"\n", left, w-right, y(1), y(1))
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#1f77b4" stroke-dasharray="6 4"/>`+"\n", left, w-right, y(0.85), y(0.85))
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#d62728" stroke-dasharray="2 3"/>`+"\n", left, w-right, y(0.9), y(0.9))
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, w-right, y(0), y(0))
	for si, s := range ss {
		lx := left + (si%2)*330
		ly := h - bot + 45 + (si/2)*22
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="14" height="14" fill="%s"/>`+"\n", lx, ly-11, s.color)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", lx+20, ly, html.EscapeString(s.name))
	}
	ly := h - bot + 45 + (len(ss)+1)/2*22
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#1f77b4" stroke-dasharray="6 4"/>`+"\n", left, left+14, ly-4, ly-4)
	fmt.Fprintf(&b, `<text x="%d" y="%d">target for d/b: 0.85 (at 100 tenants)</text>`+"\n", left+20, ly)
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#d62728" stroke-dasharray="2 3"/>`+"\n", left+330, left+344, ly-4, ly-4)
	fmt.Fprintf(&b, `<text x="%d" y="%d">target for g/d: 0.9</text>`+"\n", left+350, ly)
	b.WriteString("</svg>\n")
	return b.Bytes()
}
