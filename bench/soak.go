package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantmcp/tenantmcp/registry"
)

// The soak (-soak DURATION) serves one tenantmcp server, (g) by default
// (the embedded default with the audit trail on), at a steady offered load
// for a long time over many tenants and a mix of tools, and samples the
// server every -soak-every: throughput, latency, live heap, goroutines and
// open files. A leak shows as a heap, goroutine or file count that keeps
// rising while the load stays the same. The run reports and never fails
// on the figures; it fails only if the server cannot be set up.
//
// The load is paced: each connection sends its next request at a fixed
// schedule (connections ÷ rate apart), and latency is measured from the
// time the request was due, not from when it was sent, so a stall of the
// server shows in the latency of every request it delayed.

// soakOps is the mix of tools each tenant calls in turn. Every answer is
// checked for a tenant-specific or call-specific substring.
var soakOps = []string{"echo", "put_document", "get_document", "list_documents"}

// soakRequestTimeout bounds one request of the soak.
const soakRequestTimeout = 30 * time.Second

// soakDocKey is the document each tenant's put_document overwrites: the
// same key every time, so the store stays the same size over the soak.
const soakDocKey = "soak/doc"

// soakWorkload builds, for every tenant and every op of soakOps, the
// request and the bytes its answer must hold. Index op*n + i is tenant i's
// op, so a connection that walks indices k, k+c, k+2c, ... calls every
// tool. get_document and list_documents read the document seeded under
// docKey (pg.go) before the soak starts.
func soakWorkload(addr string, t *tmcp, n int) *workload {
	w := &workload{addr: addr}
	for _, op := range soakOps {
		for i := range n {
			var args string
			var expect []byte
			switch op {
			case "echo":
				msg := "soak from bench-" + itoa(i)
				args, expect = `{"message":"`+msg+`"}`, []byte(msg)
			case "put_document":
				args, expect = `{"key":"`+soakDocKey+`","content":"soak document of bench-`+itoa(i)+`"}`, []byte(soakDocKey)
			case "get_document":
				args, expect = `{"key":"`+docKey+`"}`, docContent(t.recs[i])
			case "list_documents":
				args, expect = `{"prefix":"bench/"}`, []byte(docKey)
			}
			w.reqs = append(w.reqs, buildRequest(addr, t.tokens[i], callBody(op, args)))
			w.expect = append(w.expect, expect)
		}
	}
	return w
}

// SoakSample is one sampling interval.
type SoakSample struct {
	// AtS is the end of the interval in seconds since the soak started.
	AtS      float64 `json:"at_s"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	RPS      float64 `json:"rps"`
	// P50ms and P99ms are latencies from the time each request was due.
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	// HeapLiveMiB is the heap marked live by the last GC
	// (/gc/heap/live:bytes); HeapObjectsMiB the heap held by objects now,
	// garbage not yet swept included; RuntimeMiB everything the Go
	// runtime has mapped (/memory/classes/total:bytes).
	HeapLiveMiB    float64 `json:"heap_live_mib"`
	HeapObjectsMiB float64 `json:"heap_objects_mib"`
	RuntimeMiB     float64 `json:"runtime_total_mib"`
	Goroutines     int64   `json:"goroutines"`
	OpenFiles      int     `json:"open_files"`
	GCCycles       uint64  `json:"gc_cycles"` // in this interval
	// CPUCores is the bench process's CPU use (server and load generator)
	// in cores; OtherCores is what other processes used at the same time.
	CPUCores   float64 `json:"cpu_cores"`
	OtherCores float64 `json:"other_cores"`
}

// SoakSummary compares the start of the soak with its end.
type SoakSummary struct {
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	// First and Last are the means of the first and last quarter of the
	// samples (at least one sample each).
	FirstHeapLiveMiB float64 `json:"first_quarter_heap_live_mib"`
	LastHeapLiveMiB  float64 `json:"last_quarter_heap_live_mib"`
	// HeapSlopeKiBPerMin is the least-squares slope of the live heap over
	// all samples.
	HeapSlopeKiBPerMin float64 `json:"heap_live_slope_kib_per_min"`
	FirstRPS           float64 `json:"first_quarter_rps"`
	LastRPS            float64 `json:"last_quarter_rps"`
	FirstP99ms         float64 `json:"first_quarter_p99_ms"`
	LastP99ms          float64 `json:"last_quarter_p99_ms"`
	FirstGoroutines    float64 `json:"first_quarter_goroutines"`
	LastGoroutines     float64 `json:"last_quarter_goroutines"`
	FirstOpenFiles     float64 `json:"first_quarter_open_files"`
	LastOpenFiles      float64 `json:"last_quarter_open_files"`
	WarmupErrors       int64   `json:"warmup_errors"`
	MaxOtherCores      float64 `json:"max_other_cores"`
	MeanOtherCores     float64 `json:"mean_other_cores"`
	FirstError         string  `json:"first_error,omitempty"`
}

// SoakConfig echoes the soak's settings.
type SoakConfig struct {
	Server    string   `json:"server"`
	Tenants   int      `json:"tenants"`
	Tools     []string `json:"tools"`
	Rate      float64  `json:"offered_rps"`
	Conns     int      `json:"connections"`
	DurationS float64  `json:"duration_s"`
	WarmupS   float64  `json:"warmup_s"`
	EveryS    float64  `json:"sample_every_s"`
	Protocol  string   `json:"protocol"`
	Command   string   `json:"command"`
}

// SoakReport is what -soak writes (-json) and prints.
type SoakReport struct {
	Machine Machine      `json:"machine"`
	Config  SoakConfig   `json:"config"`
	Samples []SoakSample `json:"samples"`
	Summary SoakSummary  `json:"summary"`
	Audit   *AuditTrail  `json:"audit,omitempty"` // (g)'s trail, verified after the soak
}

// soakConn is one paced load connection. Its interval counters are read
// and reset by the sampler under mu.
type soakConn struct {
	c *conn

	mu       sync.Mutex
	hist     histogram
	n, errs  int64
	firstErr error
}

// runSoak is -soak: it builds the server, seeds every tenant's document,
// makes one call of every op per tenant, then drives the paced load for
// cfg.warmup (not sampled) and cfg.soak (sampled every cfg.soakEvery).
func runSoak(ctx context.Context, cfg *config, stdout io.Writer) error {
	logf := func(format string, a ...any) {
		if !cfg.quiet {
			fmt.Fprintf(os.Stderr, format+"\n", a...)
		}
	}
	rep := &SoakReport{Machine: machineInfo(), Config: SoakConfig{
		Server: cfg.soakServer, Tenants: cfg.soakTenants, Tools: soakOps, Rate: cfg.soakRate, Conns: cfg.conns,
		DurationS: cfg.soak.Seconds(), WarmupS: cfg.warmup.Seconds(), EveryS: cfg.soakEvery.Seconds(),
		Protocol: protocolVersion, Command: reportConfig(cfg).Command,
	}}

	dir, err := os.MkdirTemp("", "tenantmcp-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	withAudit := cfg.soakServer == "g"
	emb, err := openEmbedded(filepath.Join(dir, cfg.soakServer), withAudit)
	if err != nil {
		return fmt.Errorf("(%s) embedded storage: %w", cfg.soakServer, err)
	}
	defer emb.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	start := time.Now()
	seed := func(ctx context.Context, rec *registry.Tenant) error {
		return emb.docs.Put(ctx, rec.ID, docKey, docContent(rec))
	}
	tm, err := newTmcp(ctx, tmcpConfig{base: "http://" + addr, tenants: cfg.soakTenants, tokenCache: cfg.tokenCache, regCache: cfg.regCache,
		reg: emb.reg, stores: emb.set(), seed: seed, audit: emb.auditStore(), auditBatch: cfg.auditBatch})
	if err != nil {
		ln.Close()
		return fmt.Errorf("(%s): %w", cfg.soakServer, err)
	}
	defer tm.Close()
	hs := &http.Server{Handler: tm.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go hs.Serve(ln)
	defer hs.Close()
	logf("(%s) %d tenants registered and seeded in %s", cfg.soakServer, cfg.soakTenants, time.Since(start).Round(time.Millisecond))

	w := soakWorkload(addr, tm, cfg.soakTenants)
	conns, err := dialSoak(w, cfg.conns)
	if err != nil {
		return err
	}
	defer func() {
		for _, sc := range conns {
			if sc.c.nc != nil {
				sc.c.nc.Close()
			}
		}
	}()

	// Every tenant and op once, unpaced: each token verified, each tenant
	// resolved and its SQLite file opened before the paced load begins.
	var answered atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var errMu sync.Mutex
	for _, sc := range conns {
		wg.Go(func() {
			for _, i := range sc.c.tenants {
				err := sc.roundTrip(i)
				answered.Add(1)
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("first pass over every tenant and tool: %w", firstErr)
	}
	logf("first pass: %d calls (%d tenants × %d tools) answered", answered.Load(), cfg.soakTenants, len(soakOps))

	// The paced load runs from here to the end; the sampler resets the
	// interval counters at the end of the warm-up and then every period.
	var stop atomic.Bool
	t0 := time.Now()
	per := time.Duration(float64(time.Second) * float64(len(conns)) / cfg.soakRate)
	for k, sc := range conns {
		// Spread the connections' schedules over one period.
		offset := per * time.Duration(k) / time.Duration(len(conns))
		wg.Go(func() { sc.paced(t0.Add(offset), per, &stop, &answered) })
	}
	var total histogram
	var prev memStats
	var prevGC uint64
	take := func() SoakSample {
		var s SoakSample
		var h histogram
		for _, sc := range conns {
			sc.mu.Lock()
			h.merge(&sc.hist)
			sc.hist = histogram{}
			s.Requests += sc.n
			s.Errors += sc.errs
			if rep.Summary.FirstError == "" && sc.firstErr != nil {
				rep.Summary.FirstError = sc.firstErr.Error()
			}
			sc.n, sc.errs = 0, 0
			sc.mu.Unlock()
		}
		total.merge(&h)
		s.P50ms = round2(float64(h.quantile(0.50)) / 1e6)
		s.P99ms = round2(float64(h.quantile(0.99)) / 1e6)
		return s
	}
	time.Sleep(cfg.warmup)
	// The warm-up's figures are not reported, but its errors are.
	rep.Summary.WarmupErrors = take().Errors
	total = histogram{}
	prev.read()
	prevGC = readRuntime(&SoakSample{})
	last := time.Now()
	soakStart := last
	for next := soakStart.Add(cfg.soakEvery); ; next = next.Add(cfg.soakEvery) {
		end := !next.Before(soakStart.Add(cfg.soak))
		if end {
			next = soakStart.Add(cfg.soak)
		}
		time.Sleep(time.Until(next))
		s := take()
		now := time.Now()
		var cur memStats
		cur.read()
		gc := readRuntime(&s)
		s.GCCycles = gc - prevGC
		s.OpenFiles = openFiles()
		el := now.Sub(last).Seconds()
		s.AtS = round2(now.Sub(soakStart).Seconds())
		s.RPS = round1(float64(s.Requests) / el)
		s.CPUCores = round2((cur.cpu - prev.cpu).Seconds() / el)
		if prev.busy > 0 && cur.busy > 0 {
			s.OtherCores = round2(max(cur.busy-prev.busy-(cur.cpu-prev.cpu), 0).Seconds() / el)
		}
		prev, prevGC, last = cur, gc, now
		rep.Samples = append(rep.Samples, s)
		logf("%6.0fs  %7.0f req/s  p50 %6.2f ms  p99 %7.2f ms  heap live %6.1f MiB  goroutines %4d  files %4d  other %4.2f cores  errors %d",
			s.AtS, s.RPS, s.P50ms, s.P99ms, s.HeapLiveMiB, s.Goroutines, s.OpenFiles, s.OtherCores, s.Errors)
		if end {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	rep.summarize(&total, time.Since(soakStart))

	if tm.audit != nil {
		logf("(g) verifying the audit trail ...")
		a, err := checkAudit(ctx, tm, answered.Load())
		if err != nil {
			return fmt.Errorf("(g) audit trail: %w", err)
		}
		rep.Audit = a
	}
	rep.Machine.LoadAvgEnd = loadAvg()

	if cfg.svgOut != "" {
		if err := os.WriteFile(cfg.svgOut, rep.svg(), 0o644); err != nil {
			return err
		}
	}
	if cfg.jsonOut != "" && cfg.jsonOut != "-" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if cfg.jsonOut == "-" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.writeTable(stdout)
	return nil
}

// dialSoak opens n connections; connection k walks the workload's
// indices k, k+n, k+2n, ...
func dialSoak(w *workload, n int) ([]*soakConn, error) {
	conns := make([]*soakConn, n)
	for k := range conns {
		c := &conn{w: w, body: make([]byte, 0, 4096)}
		for i := k; i < len(w.reqs); i += n {
			c.tenants = append(c.tenants, i)
		}
		if len(c.tenants) == 0 {
			c.tenants = []int{k % len(w.reqs)}
		}
		if err := c.dial(); err != nil {
			for _, o := range conns[:k] {
				o.c.nc.Close()
			}
			return nil, fmt.Errorf("connect to %s: %w", w.addr, err)
		}
		conns[k] = &soakConn{c: c}
	}
	return conns, nil
}

// roundTrip sends workload entry i, redialling first if the connection was
// closed.
func (sc *soakConn) roundTrip(i int) error {
	c := sc.c
	if c.nc == nil {
		if err := c.dial(); err != nil {
			return err
		}
	}
	// A server that stops answering fails the request instead of holding
	// the soak.
	if err := c.nc.SetDeadline(time.Now().Add(soakRequestTimeout)); err != nil {
		return err
	}
	err := c.roundTrip(c.w.reqs[i], c.w.expect[i])
	if err != nil && c.nc != nil && !errors.Is(err, errUnexpected) {
		c.nc.Close()
		c.nc = nil
	}
	return err
}

// paced sends one request every per, the first at due, until stop.
// Latency runs from the time a request was due; a connection that falls
// behind sends its late requests at once, so the offered rate holds.
func (sc *soakConn) paced(due time.Time, per time.Duration, stop *atomic.Bool, answered *atomic.Int64) {
	for k := 0; !stop.Load(); k++ {
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		err := sc.roundTrip(sc.c.tenants[k%len(sc.c.tenants)])
		lat := time.Since(due)
		answered.Add(1)
		sc.mu.Lock()
		sc.n++
		if err != nil {
			sc.errs++
			if sc.firstErr == nil {
				sc.firstErr = err
			}
		} else {
			sc.hist.record(lat)
		}
		sc.mu.Unlock()
		due = due.Add(per)
	}
}

// runtimeMetrics are the runtime/metrics the soak samples.
var runtimeMetrics = []string{
	"/gc/heap/live:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/total:bytes",
	"/sched/goroutines:goroutines",
	"/gc/cycles/total:gc-cycles",
}

// readRuntime fills s's memory and goroutine figures and returns the GC
// cycle count so far.
func readRuntime(s *SoakSample) uint64 {
	ms := make([]metrics.Sample, len(runtimeMetrics))
	for i, name := range runtimeMetrics {
		ms[i].Name = name
	}
	metrics.Read(ms)
	u := func(i int) uint64 {
		if ms[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return ms[i].Value.Uint64()
	}
	mib := func(v uint64) float64 { return round2(float64(v) / (1 << 20)) }
	s.HeapLiveMiB, s.HeapObjectsMiB, s.RuntimeMiB = mib(u(0)), mib(u(1)), mib(u(2))
	s.Goroutines = int64(u(3))
	return u(4)
}

// openFiles counts this process's open file descriptors (0 where
// /proc/self/fd cannot be read).
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// summarize fills r.Summary from the samples and the whole soak's
// latency histogram.
func (r *SoakReport) summarize(total *histogram, elapsed time.Duration) {
	s := &r.Summary
	for _, x := range r.Samples {
		s.Requests += x.Requests
		s.Errors += x.Errors
		s.MaxOtherCores = math.Max(s.MaxOtherCores, x.OtherCores)
		s.MeanOtherCores += x.OtherCores
	}
	n := len(r.Samples)
	if n == 0 {
		return
	}
	s.MeanOtherCores = round2(s.MeanOtherCores / float64(n))
	s.RPS = round1(float64(s.Requests) / elapsed.Seconds())
	s.P50ms = round2(float64(total.quantile(0.50)) / 1e6)
	s.P99ms = round2(float64(total.quantile(0.99)) / 1e6)
	q := max(n/4, 1)
	mean := func(xs []SoakSample, f func(SoakSample) float64) float64 {
		var sum float64
		for _, x := range xs {
			sum += f(x)
		}
		return round2(sum / float64(len(xs)))
	}
	first, last := r.Samples[:q], r.Samples[n-q:]
	heap := func(x SoakSample) float64 { return x.HeapLiveMiB }
	s.FirstHeapLiveMiB, s.LastHeapLiveMiB = mean(first, heap), mean(last, heap)
	rps := func(x SoakSample) float64 { return x.RPS }
	s.FirstRPS, s.LastRPS = mean(first, rps), mean(last, rps)
	p99 := func(x SoakSample) float64 { return x.P99ms }
	s.FirstP99ms, s.LastP99ms = mean(first, p99), mean(last, p99)
	gor := func(x SoakSample) float64 { return float64(x.Goroutines) }
	s.FirstGoroutines, s.LastGoroutines = mean(first, gor), mean(last, gor)
	files := func(x SoakSample) float64 { return float64(x.OpenFiles) }
	s.FirstOpenFiles, s.LastOpenFiles = mean(first, files), mean(last, files)
	s.HeapSlopeKiBPerMin = round1(slope(r.Samples, heap) * 1024 * 60)
}

// slope is the least-squares slope of f over the samples' times, per
// second.
func slope(xs []SoakSample, f func(SoakSample) float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	var mx, my float64
	for _, x := range xs {
		mx += x.AtS
		my += f(x)
	}
	mx /= float64(len(xs))
	my /= float64(len(xs))
	var num, den float64
	for _, x := range xs {
		num += (x.AtS - mx) * (f(x) - my)
		den += (x.AtS - mx) * (x.AtS - mx)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

func (r *SoakReport) writeTable(w io.Writer) {
	c, s := r.Config, r.Summary
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s, load %s at the start, %s at the end\n", r.Machine.CPUs, r.Machine.Model, r.Machine.GoVersion, r.Machine.LoadAvg, r.Machine.LoadAvgEnd)
	fmt.Fprintf(w, "soak of (%s): %d tenants, tools %v, %.0f req/s offered on %d connections, %gs (after %gs warm-up), sampled every %gs, protocol %s\n\n",
		c.Server, c.Tenants, c.Tools, c.Rate, c.Conns, c.DurationS, c.WarmupS, c.EveryS, c.Protocol)
	fmt.Fprintf(w, "overall: %d requests, %d errors (%d in the warm-up), %.0f req/s, p50 %.2f ms, p99 %.2f ms (from the time each request was due)\n", s.Requests, s.Errors, s.WarmupErrors, s.RPS, s.P50ms, s.P99ms)
	fmt.Fprintf(w, "first quarter → last quarter of the samples:\n")
	fmt.Fprintf(w, "  throughput   %.0f → %.0f req/s\n", s.FirstRPS, s.LastRPS)
	fmt.Fprintf(w, "  p99          %.2f → %.2f ms\n", s.FirstP99ms, s.LastP99ms)
	fmt.Fprintf(w, "  heap live    %.2f → %.2f MiB (least-squares slope %+.1f KiB/min)\n", s.FirstHeapLiveMiB, s.LastHeapLiveMiB, s.HeapSlopeKiBPerMin)
	fmt.Fprintf(w, "  goroutines   %.1f → %.1f\n", s.FirstGoroutines, s.LastGoroutines)
	fmt.Fprintf(w, "  open files   %.1f → %.1f\n", s.FirstOpenFiles, s.LastOpenFiles)
	fmt.Fprintf(w, "other processes: %.2f cores on average, %.2f at most in one sample\n", s.MeanOtherCores, s.MaxOtherCores)
	if s.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", s.FirstError)
	}
	if r.Audit != nil {
		r.Audit.write(w)
	}
}

// svg draws three panels over time: requests/s, p50/p99 latency and the
// live heap (with goroutines on the heap panel's right axis).
func (r *SoakReport) svg() []byte {
	const (
		w, left, right, top = 760, 70, 70, 44
		panelH, gap         = 150, 46
		plotW               = w - left - right
	)
	h := top + 3*panelH + 2*gap + 56
	var maxT float64
	for _, s := range r.Samples {
		maxT = math.Max(maxT, s.AtS)
	}
	if maxT == 0 {
		maxT = 1
	}
	tUnit, tName := 1.0, "s"
	if maxT >= 180 {
		tUnit, tName = 60, "min"
	}
	x := func(t float64) float64 { return left + t/maxT*plotW }
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	c := r.Config
	title := fmt.Sprintf("tenantmcp soak (%s): %d tenants, %.0f req/s offered, %d CPUs, %s", c.Server, c.Tenants, c.Rate, r.Machine.CPUs, r.Machine.Date)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))

	type line struct {
		name, color string
		get         func(SoakSample) float64
		right       bool // drawn against the right axis
	}
	panel := func(i int, label, rightLabel string, lines []line) {
		py := float64(top + i*(panelH+gap))
		maxL, maxR := 0.0, 0.0
		for _, s := range r.Samples {
			for _, l := range lines {
				if l.right {
					maxR = math.Max(maxR, l.get(s))
				} else {
					maxL = math.Max(maxL, l.get(s))
				}
			}
		}
		maxL, maxR = niceMax(maxL), niceMax(maxR)
		yOf := func(v, m float64) float64 { return py + panelH - v/m*panelH }
		for k := 0; k <= 4; k++ {
			v := maxL * float64(k) / 4
			fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, w-right, yOf(v, maxL), yOf(v, maxL))
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, yOf(v, maxL)+4, fmtAxis(v))
			if rightLabel != "" {
				rv := maxR * float64(k) / 4
				fmt.Fprintf(&b, `<text x="%d" y="%.1f">%s</text>`+"\n", w-right+6, yOf(rv, maxR)+4, fmtAxis(rv))
			}
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-weight="bold">%s</text>`+"\n", left, py-8, html.EscapeString(label))
		if rightLabel != "" {
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", w-right+50, py-8, html.EscapeString(rightLabel))
		}
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, w-right, py+panelH, py+panelH)
		lx := left + 200
		for _, l := range lines {
			m := maxL
			if l.right {
				m = maxR
			}
			var pts []string
			for _, s := range r.Samples {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.AtS), yOf(l.get(s), m)))
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.8"/>`+"\n", strings.Join(pts, " "), l.color)
			fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="14" height="4" fill="%s"/>`+"\n", lx, py-13, l.color)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f">%s</text>`+"\n", lx+18, py-8, html.EscapeString(l.name))
			lx += 150
		}
		// Time ticks.
		step := niceMax(maxT/tUnit/6) / 2
		if step <= 0 {
			step = 1
		}
		for t := 0.0; t <= maxT/tUnit+1e-9; t += step {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11">%s</text>`+"\n", x(t*tUnit), py+panelH+14, fmtAxis(t))
		}
	}
	panel(0, "requests/s", "", []line{
		{"requests/s", "#1f77b4", func(s SoakSample) float64 { return s.RPS }, false},
		{"errors/interval", "#d62728", func(s SoakSample) float64 { return float64(s.Errors) }, false},
	})
	panel(1, "latency, ms", "", []line{
		{"p50", "#2ca02c", func(s SoakSample) float64 { return s.P50ms }, false},
		{"p99", "#ff7f0e", func(s SoakSample) float64 { return s.P99ms }, false},
	})
	panel(2, "live heap, MiB", "goroutines", []line{
		{"heap live (MiB)", "#9467bd", func(s SoakSample) float64 { return s.HeapLiveMiB }, false},
		{"goroutines (right)", "#8c564b", func(s SoakSample) float64 { return float64(s.Goroutines) }, true},
	})
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">time since the soak started, %s</text>`+"\n", left+plotW/2, h-14, tName)
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten (1 for v <= 0).
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func fmtAxis(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2g", v)
}
