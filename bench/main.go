// Command bench measures what multi-tenancy costs: it serves the same echo
// tool over stateless Streamable HTTP from six servers side by side on
// 127.0.0.1 and drives each in turn with C keep-alive connections:
//
//	a  plain net/http JSON-RPC handler (the near-limit reference)
//	b  bare mark3labs/mcp-go, no auth
//	c  bare modelcontextprotocol/go-sdk, no auth
//	d  tenantmcp, full request path, embedded default (SQLite)
//	e  tenantmcp on PostgreSQL with row level security, get_document
//	f  bare mcp-go running one pgx query on e's table, no isolation (opt-in; needs e)
//	g  d with the audit trail on (SQLite audit.db)
//
// with 1, 100 and 10,000 tenants, and prints requests/s, p50/p99 latency,
// allocations per request and the ratios d/b, d/a, e/b, g/d. After the
// run it verifies g's audit trail: one event per request served.
//
//	cd bench && go run . -duration 10s -json results.json -svg ../docs/benchmarks-ratios.svg
//
// With -soak DURATION it runs one server instead (g, or d with -soak-server
// d) at a steady paced load over -soak-tenants tenants and a mix of tools,
// and samples throughput, latency, live heap, goroutines and open files
// every -soak-every (soak.go):
//
//	cd bench && go run . -soak 10m -soak-rate 200 -json soak.json -svg ../docs/benchmarks-soak.svg
//
// See docs/benchmarks.md for the results and how to read them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// config is the parsed command line.
type config struct {
	conns       int
	warmup      time.Duration
	duration    time.Duration
	tenants     []int
	servers     string
	rounds      int
	jsonOut     string
	svgOut      string
	postgres    string
	tokenCache  int
	regCache    int
	cpuProfile  string
	memProfile  string
	profServer  string
	profTenants int
	scale       int
	rlsRows     int64
	quiet       bool
	quietCores  float64
	auditBatch  int
	pgConns     int
	pgTimeouts  bool
	fRLS        bool
	// -soak: the soak mode (soak.go) instead of the phases.
	soak        time.Duration
	soakEvery   time.Duration
	soakRate    float64
	soakTenants int
	soakServer  string
}

// maxRepeats bounds how often -quiet-cores repeats one phase.
const maxRepeats = 3

// allServers are the servers' letters run by default; optionalServers
// run only when named (f: e's reference, see pgref.go).
const (
	allServers      = "abcdeg"
	optionalServers = "f"
)

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.conns, "c", 16, "concurrent keep-alive connections")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "warm-up per phase (at least one request per tenant is also made)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured time per phase")
	tenants := fs.String("tenants", "1,100,10000", "comma-separated tenant counts")
	fs.StringVar(&c.servers, "servers", allServers, "servers to run (letters of "+allServers+")")
	fs.IntVar(&c.rounds, "rounds", 1, "repeat every phase this many times, interleaved, and report the median by requests/s")
	fs.StringVar(&c.jsonOut, "json", "", "also write the results as JSON to this file (- = stdout, instead of the table)")
	fs.StringVar(&c.svgOut, "svg", "", "write an SVG bar chart of the ratios to this file")
	pgDefault := os.Getenv("TENANTMCP_TEST_POSTGRES")
	if pgDefault == "" {
		pgDefault = defaultPostgres
	}
	fs.StringVar(&c.postgres, "postgres", pgDefault, "PostgreSQL superuser URL for (e) (default $TENANTMCP_TEST_POSTGRES); a fresh database and roles are created and dropped")
	fs.IntVar(&c.tokenCache, "token-cache", 0, "verified-token cache size of d and e (0 = the default, 10000)")
	fs.IntVar(&c.regCache, "registry-cache", 0, "registry cache size of d and e (0 = the default, 10000)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of one phase (-profile-server, -profile-tenants) to this file")
	fs.StringVar(&c.memProfile, "memprofile", "", "write allocation profiles of that phase: FILE (end) and FILE.base (start); use go tool pprof -base")
	fs.StringVar(&c.profServer, "profile-server", "d", "server whose phase is profiled")
	fs.IntVar(&c.profTenants, "profile-tenants", 100, "tenant count of the profiled phase")
	fs.IntVar(&c.scale, "scale", 0, "also measure the registry with this many tenants (e.g. 100000): provisioning, lookup, memory")
	fs.Int64Var(&c.rlsRows, "rls-rows", 0, "fill the RLS documents table to about this many rows before (e) runs (0 = one row per tenant)")
	fs.IntVar(&c.pgConns, "pg-conns", 0, "PostgreSQL pool size of (e) and (f) (0 = one connection per load connection, -c)")
	fs.BoolVar(&c.fRLS, "f-rls", false, "(f) reads through (e)'s RLS documents backend (one round trip with the tenant setting, under the policy) instead of its bare query: e/f is then tenantmcp's request path alone")
	fs.BoolVar(&c.pgTimeouts, "pg-timeouts", true, "run (e) with serve's default database.acquire_timeout and database.statement_timeout (false: neither, as before 2026-12-03)")
	fs.IntVar(&c.auditBatch, "audit-batch", 0, "batch size of (g)'s audit writer (0 = the default, audit.DefaultBatchSize)")
	fs.BoolVar(&c.quiet, "q", false, "no progress lines on stderr")
	fs.Float64Var(&c.quietCores, "quiet-cores", 0, "repeat a phase (up to 3 times) during which other processes kept more than this many cores busy, e.g. 0.25 on a shared machine (0 = never; e and f are exempt: their PostgreSQL is another process)")
	fs.DurationVar(&c.soak, "soak", 0, "run a soak of this length instead of the phases: one server (-soak-server) at a steady load over -soak-tenants tenants and a mix of tools, sampled every -soak-every (see soak.go)")
	fs.DurationVar(&c.soakEvery, "soak-every", 10*time.Second, "sampling interval of -soak")
	fs.Float64Var(&c.soakRate, "soak-rate", 200, "requests/s offered during -soak, paced over the -c connections")
	fs.IntVar(&c.soakTenants, "soak-tenants", 1000, "tenants of -soak")
	fs.StringVar(&c.soakServer, "soak-server", "g", "server of -soak: g (audit on) or d (audit off)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.soak < 0 || c.soakEvery <= 0 || c.soakRate <= 0 || c.soakTenants < 1 {
		return nil, errors.New("-soak must not be negative; -soak-every, -soak-rate and -soak-tenants must be positive")
	}
	if c.soakServer != "d" && c.soakServer != "g" {
		return nil, fmt.Errorf("-soak-server %q: want d or g", c.soakServer)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range strings.Split(*tenants, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-tenants: %q is not a positive count", s)
		}
		c.tenants = append(c.tenants, n)
	}
	if (c.cpuProfile != "" || c.memProfile != "") && (c.profTenants < 1 || c.profTenants > slices.Max(c.tenants)) {
		return nil, fmt.Errorf("-profile-tenants %d: must be between 1 and the largest -tenants count", c.profTenants)
	}
	for _, r := range c.servers {
		if !strings.ContainsRune(allServers+optionalServers, r) {
			return nil, fmt.Errorf("-servers: unknown server %q (want letters of %s)", r, allServers+optionalServers)
		}
	}
	if strings.Contains(c.servers, "f") && !strings.Contains(c.servers, "e") {
		return nil, errors.New("-servers: f reads e's documents: run it with e")
	}
	if c.conns < 1 || c.rounds < 1 || c.duration <= 0 {
		return nil, errors.New("-c, -rounds and -duration must be positive")
	}
	if c.pgConns < 0 {
		return nil, errors.New("-pg-conns must not be negative (0 = one per load connection)")
	}
	if c.pgConns == 0 {
		c.pgConns = c.conns
	}
	if c.auditBatch < 0 {
		return nil, errors.New("-audit-batch must not be negative (0 = the writer's default)")
	}
	if c.quietCores < 0 {
		return nil, errors.New("-quiet-cores must not be negative (0 = never repeat)")
	}
	return c, nil
}

// target is one server under test.
type target struct {
	key, label string
	addr       string
	work       func(ntenants int) *workload
	close      func()
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	if cfg.soak > 0 {
		return runSoak(ctx, cfg, stdout)
	}
	logf := func(format string, a ...any) {
		if !cfg.quiet {
			fmt.Fprintf(os.Stderr, format+"\n", a...)
		}
	}
	rep := &report{Machine: machineInfo(), Config: reportConfig(cfg)}
	maxTenants := slices.Max(cfg.tenants)

	dir, err := os.MkdirTemp("", "tenantmcp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var targets []*target
	defer func() {
		for _, t := range targets {
			if t.close != nil {
				t.close()
			}
		}
	}()
	// serve starts h on a fresh loopback port.
	serve := func(key, label string, h func(base string) (http.Handler, error)) (*target, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addr := ln.Addr().String()
		handler, err := h("http://" + addr)
		if err != nil {
			ln.Close()
			return nil, err
		}
		hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		go hs.Serve(ln)
		t := &target{key: key, label: label, addr: addr, close: func() { hs.Close() }}
		targets = append(targets, t)
		return t, nil
	}
	static := func(h http.Handler) func(string) (http.Handler, error) {
		return func(string) (http.Handler, error) { return h, nil }
	}

	want := func(k string) bool { return strings.Contains(cfg.servers, k) }
	if want("a") {
		t, err := serve("a", "plain net/http JSON-RPC", static(plainHandler()))
		if err != nil {
			return err
		}
		t.work = func(n int) *workload { return echoWorkload(t.addr, nil, n) }
	}
	if want("b") {
		t, err := serve("b", "mcp-go, no auth", static(mcpGoHandler()))
		if err != nil {
			return err
		}
		t.work = func(n int) *workload { return echoWorkload(t.addr, nil, n) }
	}
	if want("c") {
		t, err := serve("c", "go-sdk, no auth", static(goSDKHandler()))
		if err != nil {
			return err
		}
		t.work = func(n int) *workload { return echoWorkload(t.addr, nil, n) }
	}
	// d and g differ only in the audit trail; each has storage of its own.
	// g runs right after d in every round, so that the two sides of g/d
	// see the same background load.
	var gServer *tmcp
	for _, v := range []struct {
		key, label string
		audit      bool
	}{{"d", "tenantmcp, SQLite", false}, {"g", "tenantmcp, SQLite, audit on", true}} {
		if !want(v.key) {
			continue
		}
		start := time.Now()
		emb, err := openEmbedded(filepath.Join(dir, v.key), v.audit)
		if err != nil {
			return fmt.Errorf("(%s) embedded storage: %w", v.key, err)
		}
		var tm *tmcp
		t, err := serve(v.key, v.label, func(base string) (http.Handler, error) {
			tm, err = newTmcp(ctx, tmcpConfig{base: base, tenants: maxTenants, tokenCache: cfg.tokenCache, regCache: cfg.regCache,
				reg: emb.reg, stores: emb.set(), audit: emb.auditStore(), auditBatch: cfg.auditBatch})
			if err != nil {
				return nil, err
			}
			return tm.handler, nil
		})
		if err != nil {
			emb.Close()
			return fmt.Errorf("(%s): %w", v.key, err)
		}
		closeHTTP := t.close
		t.close = func() { closeHTTP(); tm.Close(); emb.Close() }
		t.work = func(n int) *workload { return echoWorkload(t.addr, tm.tokens, n) }
		if v.audit {
			gServer = tm
		}
		logf("(%s) %d tenants registered in SQLite in %s", v.key, maxTenants, time.Since(start).Round(time.Millisecond))
	}
	if want("e") {
		start := time.Now()
		pg, err := openPG(ctx, cfg.postgres, cfg.pgConns, cfg.pgTimeouts)
		switch {
		case errors.Is(err, errNoPostgres):
			rep.Skipped = append(rep.Skipped, "e: "+err.Error())
			logf("skipping (e): %v", err)
		case err != nil:
			return fmt.Errorf("(e) PostgreSQL: %w", err)
		default:
			var tm *tmcp
			t, err := serve("e", "tenantmcp, PostgreSQL RLS", func(base string) (http.Handler, error) {
				tm, err = newTmcp(ctx, tmcpConfig{base: base, tenants: maxTenants, tokenCache: cfg.tokenCache, regCache: cfg.regCache,
					reg: pg.regStore, stores: pg.set(), seed: pg.seed})
				if err != nil {
					return nil, err
				}
				return tm.handler, nil
			})
			if err != nil {
				pg.Close()
				return fmt.Errorf("(e): %w", err)
			}
			closeHTTP := t.close
			t.close = func() { closeHTTP(); tm.Close(); pg.Close() }
			if cfg.rlsRows > 0 {
				fstart := time.Now()
				ids, err := tenantIDs(ctx, pg)
				if err == nil {
					err = pg.fill(ctx, ids, cfg.rlsRows)
				}
				if err != nil {
					return fmt.Errorf("(e) fill: %w", err)
				}
				logf("(e) documents table filled to %d rows in %s", cfg.rlsRows, time.Since(fstart).Round(time.Second))
			}
			rows, err := pg.rows(ctx)
			if err != nil {
				return err
			}
			rep.RLSRows = rows
			t.work = func(n int) *workload {
				w := docWorkload(t.addr, tm, n)
				w.backends = pg.backends(appNameE)
				return w
			}
			logf("(e) %d tenants registered in PostgreSQL in %s; documents table: %d rows", maxTenants, time.Since(start).Round(time.Millisecond), rows)
			if want("f") {
				if err := serveRef(ctx, serve, pg, tm, cfg.pgConns, cfg.fRLS); err != nil {
					return err
				}
			}
		}
	}

	// Build each workload once per tenant count.
	works := map[string]map[int]*workload{}
	for _, t := range targets {
		works[t.key] = map[int]*workload{}
		for _, n := range cfg.tenants {
			works[t.key][n] = t.work(n)
		}
	}

	runs := map[string][]Result{}  // key+tenants → rounds
	answered := map[string]int64{} // key → answers in all phases, warm-ups included
	for round := range cfg.rounds {
		for _, n := range cfg.tenants {
			// Alternate the order from round to round so a drift of the
			// background load does not always favour the same server.
			order := slices.Clone(targets)
			if round%2 == 1 {
				slices.Reverse(order)
			}
			for _, t := range order {
				var r Result
				for attempt := 0; ; attempt++ {
					runtime.GC()
					pr, err := runPhase(works[t.key][n], cfg.conns, n, cfg.warmup, cfg.duration, phaseHooks{})
					if err != nil {
						return fmt.Errorf("(%s) %d tenants: %w", t.key, n, err)
					}
					answered[t.key] += pr.Answered
					r = newResult(t, n, pr)
					r.Repeats = attempt
					logf("round %d  %-34s %6d tenants  %9.0f req/s  p50 %7.0fµs  p99 %7.0fµs  %6.1f allocs/req  other %4.2f cores  errors %d",
						round+1, "("+t.key+") "+t.label, n, r.RPS, r.P50us, r.P99us, r.AllocsPerReq, r.OtherCores, r.Errors)
					if r.FirstError != "" {
						logf("    first error: %s", r.FirstError)
					}
					// e's and f's PostgreSQL is another process: its load is theirs.
					if cfg.quietCores <= 0 || t.key == "e" || t.key == "f" || r.OtherCores <= cfg.quietCores || attempt == maxRepeats {
						break
					}
					logf("    other processes kept %.2f cores busy (over -quiet-cores %g): repeating the phase", r.OtherCores, cfg.quietCores)
				}
				runs[fmt.Sprint(t.key, n)] = append(runs[fmt.Sprint(t.key, n)], r)
			}
		}
	}
	for _, n := range cfg.tenants {
		for _, t := range targets {
			rs := slices.Clone(runs[fmt.Sprint(t.key, n)])
			sort.Slice(rs, func(i, j int) bool { return rs[i].RPS < rs[j].RPS })
			med := rs[len(rs)/2]
			med.Rounds = len(rs)
			med.Repeats = 0
			for _, r := range rs {
				med.AllRPS = append(med.AllRPS, round1(r.RPS))
				med.Repeats += r.Repeats
			}
			rep.Results = append(rep.Results, med)
		}
	}
	rep.computeRatios(cfg.tenants, runs)

	// Profiles come from an extra phase, so that profiling does not slow
	// down a reported one.
	if cfg.cpuProfile != "" || cfg.memProfile != "" {
		i := slices.IndexFunc(targets, func(t *target) bool { return t.key == cfg.profServer })
		if i < 0 {
			return fmt.Errorf("-profile-server %q is not among the servers run", cfg.profServer)
		}
		t := targets[i]
		w := works[t.key][cfg.profTenants]
		if w == nil {
			w = t.work(cfg.profTenants)
		}
		hooks, finish := profileHooks(cfg)
		runtime.GC()
		pr, err := runPhase(w, cfg.conns, cfg.profTenants, cfg.warmup, cfg.duration, hooks)
		if ferr := finish(); ferr != nil {
			return ferr
		}
		if err != nil {
			return fmt.Errorf("profiled phase: %w", err)
		}
		answered[t.key] += pr.Answered
		r := newResult(t, cfg.profTenants, pr)
		logf("profiled (%s) %d tenants: %.0f req/s under the profiler", t.key, cfg.profTenants, r.RPS)
	}

	if gServer != nil {
		logf("(g) verifying the audit trail ...")
		a, err := checkAudit(ctx, gServer, answered["g"])
		if err != nil {
			return fmt.Errorf("(g) audit trail: %w", err)
		}
		rep.Audit = a
		if !a.OK() {
			logf("(g) the audit trail does not match the requests served: %+v", a)
		}
	}

	if cfg.scale > 0 {
		logf("registry scale: %d tenants ...", cfg.scale)
		s, err := measureScale(ctx, dir, cfg.scale, logf)
		if err != nil {
			return fmt.Errorf("scale: %w", err)
		}
		rep.Scale = s
	}

	rep.Machine.LoadAvgEnd = loadAvg()
	if cfg.svgOut != "" {
		if err := os.WriteFile(cfg.svgOut, rep.svg(), 0o644); err != nil {
			return err
		}
	}
	if cfg.jsonOut == "-" {
		return rep.writeJSON(stdout)
	}
	if cfg.jsonOut != "" {
		f, err := os.Create(cfg.jsonOut)
		if err != nil {
			return err
		}
		if err := rep.writeJSON(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	rep.writeTable(stdout)
	return nil
}

// profileHooks returns the hooks that profile a phase and a function to
// call after it.
func profileHooks(cfg *config) (phaseHooks, func() error) {
	var cpu *os.File
	var errs []error
	writeHeap := func(path string) {
		f, err := os.Create(path)
		if err != nil {
			errs = append(errs, err)
			return
		}
		errs = append(errs, pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
	}
	h := phaseHooks{
		start: func() {
			if cfg.memProfile != "" {
				runtime.GC()
				writeHeap(cfg.memProfile + ".base")
			}
			if cfg.cpuProfile != "" {
				f, err := os.Create(cfg.cpuProfile)
				if err != nil {
					errs = append(errs, err)
					return
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					errs = append(errs, err)
					f.Close()
					return
				}
				cpu = f
			}
		},
		stop: func() {
			if cpu != nil {
				pprof.StopCPUProfile()
				errs = append(errs, cpu.Close())
			}
			if cfg.memProfile != "" {
				runtime.GC()
				writeHeap(cfg.memProfile)
			}
		},
	}
	return h, func() error { return errors.Join(errs...) }
}
