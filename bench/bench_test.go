package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/audit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// pgx pools and database/sql close asynchronously.
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}

// TestSmoke runs the command briefly with every server and checks that
// the table has every row and ratio, with no failed request, and that
// (g)'s audit store holds one verified event per request it answered.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench command for a few seconds")
	}
	servers := allServers
	if os.Getenv("CI") != "true" && !postgresReachable() {
		servers = strings.ReplaceAll(allServers, "e", "")
		t.Log("PostgreSQL not reachable: running without (e)")
	}
	dir := t.TempDir()
	var out bytes.Buffer
	args := []string{"-q", "-c", "4", "-warmup", "50ms", "-duration", "100ms", "-tenants", "1,3,20",
		"-servers", servers, "-profile-tenants", "3", "-json", dir + "/r.json", "-svg", dir + "/r.svg",
		"-cpuprofile", dir + "/cpu.pprof", "-memprofile", dir + "/mem.pprof", "-scale", "300", "-quiet-cores", "64"}
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	table := out.String()
	t.Log("\n" + table)
	for _, k := range servers {
		for _, n := range []string{"1", "3", "20"} {
			if !hasRow(table, "("+string(k)+") ", n) {
				t.Errorf("no row for server %c with %s tenants", k, n)
			}
		}
	}
	for _, want := range []string{"d/b", "d/a", "e/b", "g/d", "registry at 300 tenants", "audit trail of (g)", "one verified event per request", "phases repeated because other processes"} {
		if !strings.Contains(table, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	var rep report
	b, err := os.ReadFile(dir + "/r.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("JSON output: %v", err)
	}
	if got, want := len(rep.Results), len(servers)*3; got != want {
		t.Errorf("JSON has %d results, want %d", got, want)
	}
	for _, r := range rep.Results {
		if r.Requests == 0 || r.Errors != 0 || r.FirstError != "" {
			t.Errorf("(%s) %d tenants: %d requests, %d errors, first error %q", r.Server, r.Tenants, r.Requests, r.Errors, r.FirstError)
		}
		if r.AllocsPerReq <= 0 {
			t.Errorf("(%s) %d tenants: %v allocations per request", r.Server, r.Tenants, r.AllocsPerReq)
		}
	}
	if len(rep.Ratios) != 3 || rep.Ratios[0].DB == 0 || rep.Ratios[0].DA == 0 {
		t.Errorf("ratios = %+v", rep.Ratios)
	}
	if strings.Contains(servers, "e") && rep.Ratios[0].EB == 0 {
		t.Errorf("no e/b ratio: %+v", rep.Ratios)
	}
	for _, x := range rep.Ratios {
		if x.GD == 0 || x.GDcpu == 0 {
			t.Errorf("%d tenants: no g/d ratio: %+v", x.Tenants, x)
		}
	}
	// Every request g answered (3 phases, warm-ups included; the profiled
	// phase is d's) must have left one event in its store, in one chain
	// per tenant (20), every chain verified and signed.
	if a := rep.Audit; a == nil {
		t.Error("no audit trail in the report")
	} else if !a.OK() || a.Requests < 20 || a.Chains != 20 || a.Checkpoints < a.Chains {
		t.Errorf("audit trail = %+v", *a)
	}
	if rep.Scale == nil || rep.Scale.Tenants != 300 || rep.Scale.HitNs <= 0 {
		t.Errorf("scale = %+v", rep.Scale)
	}
	svg, err := os.ReadFile(dir + "/r.svg")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("20 tenants")) || !bytes.Contains(svg, []byte("g/d")) {
		t.Errorf("SVG chart looks wrong:\n%.300s", svg)
	}
	for _, f := range []string{"cpu.pprof", "mem.pprof", "mem.pprof.base"} {
		if fi, err := os.Stat(dir + "/" + f); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s not written: %v", f, err)
		}
	}
}

func hasRow(table, server, tenants string) bool {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if strings.Contains(line, server) && len(f) > 8 && slicesIndex(f, tenants) >= 0 {
			return true
		}
	}
	return false
}

func slicesIndex(f []string, s string) int {
	for i, x := range f {
		if x == s {
			return i
		}
	}
	return -1
}

func postgresReachable() bool {
	dsn := os.Getenv("TENANTMCP_TEST_POSTGRES")
	if dsn == "" {
		dsn = defaultPostgres
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false
	}
	c.Close(ctx)
	return true
}

// TestServersAnswer sends the bench request to each bare server and checks
// the JSON-RPC answer: the same request works on all of them without an
// initialize handshake.
func TestServersAnswer(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"plain", plainHandler()},
		{"mcp-go", mcpGoHandler()},
		{"go-sdk", goSDKHandler()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveTest(t, tc.h)
			w := echoWorkload(addr, []string{"tok"}, 1)
			c := &conn{w: w}
			if err := c.dial(); err != nil {
				t.Fatal(err)
			}
			defer c.nc.Close()
			for range 3 { // keep-alive: the same connection serves again
				if err := c.roundTrip(w.reqs[0], w.expect[0]); err != nil {
					t.Fatal(err)
				}
			}
			var resp struct {
				JSONRPC string          `json:"jsonrpc"`
				ID      json.RawMessage `json:"id"`
				Result  struct {
					Content []struct{ Type, Text string } `json:"content"`
					IsError bool                          `json:"isError"`
				} `json:"result"`
			}
			if err := json.Unmarshal(c.body, &resp); err != nil {
				t.Fatalf("answer is not one JSON-RPC message: %v\n%s", err, c.body)
			}
			if resp.JSONRPC != "2.0" || string(resp.ID) != "1" || resp.Result.IsError || len(resp.Result.Content) != 1 ||
				resp.Result.Content[0].Type != "text" || resp.Result.Content[0].Text != "hello from bench-0" {
				t.Errorf("answer = %s", c.body)
			}
		})
	}
}

func serveTest(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// TestRoundTripAllocs checks that the load generator allocates nothing per
// request, so the process's allocation count is the server's.
func TestRoundTripAllocs(t *testing.T) {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 26\r\n\r\n{\"text\":\"hello bench-0\"}..")
	chunked := []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n9\r\n bench-0!\r\n0\r\n\r\n")
	for name, r := range map[string][]byte{"length": resp, "chunked": chunked} {
		t.Run(name, func(t *testing.T) {
			fc := &fakeConn{resp: r}
			c := &conn{nc: fc, br: bufio.NewReaderSize(fc, 32<<10), body: make([]byte, 0, 4096)}
			req, expect := []byte("POST /mcp HTTP/1.1\r\n\r\n"), []byte("hello bench-0")
			if name == "chunked" {
				expect = []byte("hello bench-0!")
			}
			if err := c.roundTrip(req, expect); err != nil {
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(1000, func() {
				if err := c.roundTrip(req, expect); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("roundTrip allocates %v times per request, want 0", allocs)
			}
		})
	}
}

func TestRoundTripRefusesWrongAnswers(t *testing.T) {
	for name, r := range map[string]string{
		"status":     "HTTP/1.1 401 Unauthorized\r\nContent-Length: 13\r\n\r\nhello bench-0",
		"body":       "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello bench-1",
		"no length":  "HTTP/1.1 200 OK\r\n\r\nhello bench-0",
		"truncated":  "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nhello bench-0",
		"bad chunks": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			fc := &fakeConn{resp: []byte(r), once: true}
			c := &conn{nc: fc, br: bufio.NewReader(fc)}
			if err := c.roundTrip([]byte("x"), []byte("hello bench-0")); err == nil {
				t.Error("roundTrip accepted a wrong answer")
			}
		})
	}
}

// fakeConn answers every write with resp (or once, then EOF).
type fakeConn struct {
	net.Conn
	resp    []byte
	pending []byte
	once    bool
	used    bool
}

func (f *fakeConn) Write(b []byte) (int, error) {
	if !(f.once && f.used) {
		f.pending = f.resp
		f.used = true
	}
	return len(b), nil
}

func (f *fakeConn) Read(b []byte) (int, error) {
	if len(f.pending) == 0 {
		return 0, errEOF
	}
	n := copy(b, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

func (f *fakeConn) Close() error { return nil }

var errEOF = &net.OpError{Op: "read", Err: os.ErrClosed}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		got := h.quantile(tc.q)
		if d := float64(got-tc.want) / float64(tc.want); d > 0.02 || d < -0.02 {
			t.Errorf("quantile(%v) = %v, want %v ±2%%", tc.q, got, tc.want)
		}
	}
	for _, v := range []uint64{0, 1, 127, 128, 129, 1000, 1 << 20, 1<<40 + 12345} {
		i := histIndex(v)
		if mid := histValue(i); float64(mid) < float64(v)*0.98 || float64(mid) > float64(v)*1.02+1 {
			t.Errorf("value %d: bucket %d, middle %d", v, i, mid)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-tenants", "0"},
		{"-tenants", "x"},
		{"-servers", "az"},
		{"-servers", "f"},
		{"-quiet-cores", "-1"},
		{"-c", "0"},
		{"-tenants", "10", "-profile-tenants", "100", "-cpuprofile", "x"},
		{"extra"},
	} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
	if _, err := parseFlags([]string{"-tenants", "10"}, &bytes.Buffer{}); err != nil {
		t.Errorf("-tenants 10 without profiling: %v", err)
	}
	c, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.conns != 16 || len(c.tenants) != 3 || c.tenants[2] != 10000 || c.servers != "abcdeg" {
		t.Errorf("defaults = %+v", c)
	}
}

// TestAuditTrail serves (g) for a short phase and counts its audit
// records straight from the store: exactly one per answered request, in
// the chains of the tenants that called, and checkAudit agrees.
func TestAuditTrail(t *testing.T) {
	ctx := context.Background()
	emb, err := openEmbedded(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	const tenants = 5
	tm, err := newTmcp(ctx, tmcpConfig{base: "http://" + addr, tenants: tenants, reg: emb.reg, stores: emb.set(), audit: emb.auditStore()})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	defer tm.Close()
	hs := &http.Server{Handler: tm.handler}
	go hs.Serve(ln)
	defer hs.Close()

	pr, err := runPhase(echoWorkload(addr, tm.tokens, tenants), 2, tenants, 20*time.Millisecond, 50*time.Millisecond, phaseHooks{})
	if err != nil {
		t.Fatal(err)
	}
	if pr.Errors != 0 || pr.FirstErr != nil || pr.Answered < tenants {
		t.Fatalf("phase: %d answered, %d errors, first %v", pr.Answered, pr.Errors, pr.FirstErr)
	}
	a, err := checkAudit(ctx, tm, pr.Answered)
	if err != nil {
		t.Fatal(err)
	}
	if !a.OK() || a.Events != uint64(pr.Answered) || a.Chains != tenants {
		t.Errorf("checkAudit = %+v, want %d events in %d chains", *a, pr.Answered, tenants)
	}

	// Count without checkAudit: the store's own Chains and Scan.
	chains, err := emb.audit.Chains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, rec := range tm.recs {
		want[string(rec.ID)] = true
	}
	var total int64
	for _, c := range chains {
		if !want[c] {
			t.Errorf("chain %q is not a bench tenant's", c)
		}
		err := emb.audit.Scan(ctx, c, 1, func(r *audit.Record) error {
			total++
			var e audit.Event
			if err := json.Unmarshal(r.Body, &e); err != nil {
				return err
			}
			if e.Tenant != c || e.Kind != audit.KindToolCall || e.Tool != "echo" || e.Outcome != audit.OutcomeOK {
				t.Errorf("chain %s seq %d: event %s", c, r.Seq, r.Body)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if total != pr.Answered || len(chains) != tenants {
		t.Errorf("store holds %d records in %d chains for %d answered requests from %d tenants", total, len(chains), pr.Answered, tenants)
	}

	// A trail one event short of the requests is not OK.
	short := *a
	short.Requests++
	if short.OK() {
		t.Error("a trail with fewer events than requests passes as OK")
	}
}

// postgresLocal reports whether the test PostgreSQL is on this machine
// (a loopback host), so its backends are processes /proc shows.
func postgresLocal() bool {
	dsn := os.Getenv("TENANTMCP_TEST_POSTGRES")
	if dsn == "" {
		dsn = defaultPostgres
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return false
	}
	ip := net.ParseIP(cfg.Host)
	return cfg.Host == "localhost" || strings.HasPrefix(cfg.Host, "/") || (ip != nil && ip.IsLoopback())
}
