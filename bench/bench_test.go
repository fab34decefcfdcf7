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
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// pgx pools and database/sql close asynchronously.
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}

// TestSmoke runs the command briefly with every server and checks that
// the table has every row and ratio, with no failed request.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench command for a few seconds")
	}
	servers := "abcde"
	if os.Getenv("CI") != "true" && !postgresReachable() {
		servers = "abcd"
		t.Log("PostgreSQL not reachable: running without (e)")
	}
	dir := t.TempDir()
	var out bytes.Buffer
	args := []string{"-q", "-c", "4", "-warmup", "50ms", "-duration", "100ms", "-tenants", "1,3,20",
		"-servers", servers, "-profile-tenants", "3", "-json", dir + "/r.json", "-svg", dir + "/r.svg",
		"-cpuprofile", dir + "/cpu.pprof", "-memprofile", dir + "/mem.pprof", "-scale", "300"}
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
	for _, want := range []string{"d/b", "d/a", "e/b", "registry at 300 tenants", "no audit package"} {
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
	if rep.Scale == nil || rep.Scale.Tenants != 300 || rep.Scale.HitNs <= 0 {
		t.Errorf("scale = %+v", rep.Scale)
	}
	svg, err := os.ReadFile(dir + "/r.svg")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("20 tenants")) {
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
	if c.conns != 16 || len(c.tenants) != 3 || c.tenants[2] != 10000 || c.servers != "abcde" {
		t.Errorf("defaults = %+v", c)
	}
}
