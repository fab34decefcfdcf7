package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The load generator speaks raw HTTP/1.1 over one keep-alive net.Conn per
// connection, with requests prebuilt as bytes and a reused read buffer, so
// that it allocates nothing per request: the process's allocation count
// during a phase is the server's. Each connection sends its next request
// as soon as the previous answer is read (a closed loop).

// workload is what one phase sends: one prebuilt request per tenant and
// the bytes its answer must contain.
type workload struct {
	addr   string
	reqs   [][]byte // reqs[i]: the full HTTP request for tenant i
	expect [][]byte // expect[i]: a substring of tenant i's answer body
	// backends, for a server on PostgreSQL (e, f), lists the process ids
	// of its pool's backends, whose CPU time the phase then measures.
	backends func() ([]int, error)
}

// protocolVersion is the MCP revision the requests declare.
const protocolVersion = "2025-11-25"

// buildRequest returns the HTTP request for one JSON-RPC body. Every server
// gets the same headers: the ones the Streamable HTTP transport requires
// (Content-Type, an Accept listing both JSON and SSE, Mcp-Protocol-Version)
// and the bearer token, which the servers without authentication ignore.
func buildRequest(host, token string, body []byte) []byte {
	var b bytes.Buffer
	b.WriteString("POST /mcp HTTP/1.1\r\nHost: ")
	b.WriteString(host)
	b.WriteString("\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Protocol-Version: ")
	b.WriteString(protocolVersion)
	b.WriteString("\r\n")
	if token != "" {
		b.WriteString("Authorization: Bearer ")
		b.WriteString(token)
		b.WriteString("\r\n")
	}
	b.WriteString("Content-Length: ")
	b.WriteString(strconv.Itoa(len(body)))
	b.WriteString("\r\n\r\n")
	b.Write(body)
	return b.Bytes()
}

// callBody is a tools/call request in the 2025-11-25 form: no session, no
// initialize first (all servers run stateless).
func callBody(tool, argsJSON string) []byte {
	return []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":` + argsJSON + `}}`)
}

// echoWorkload builds an echo call per tenant; the message names the
// tenant so each answer can be checked.
func echoWorkload(addr string, tokens []string, n int) *workload {
	w := &workload{addr: addr}
	for i := range n {
		msg := "hello from bench-" + strconv.Itoa(i)
		tok := ""
		if tokens != nil {
			tok = tokens[i]
		}
		w.reqs = append(w.reqs, buildRequest(addr, tok, callBody("echo", `{"message":"`+msg+`"}`)))
		w.expect = append(w.expect, []byte(msg))
	}
	return w
}

// histogram is a log-linear latency histogram (about 1.5% resolution) with
// a fixed size, so recording allocates nothing.
type histogram struct {
	counts [histBuckets]uint64
}

const (
	histSubBits = 6
	histLinear  = 1 << (histSubBits + 1) // values below this are exact
	histBuckets = histLinear + (64-histSubBits-1)*(1<<histSubBits)
)

func histIndex(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	e := bits.Len64(v) - 1 // >= histSubBits+1
	sub := (v >> (e - histSubBits)) & (1<<histSubBits - 1)
	return histLinear + (e-histSubBits-1)<<histSubBits + int(sub)
}

// histValue is the middle of bucket i.
func histValue(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	i -= histLinear
	e := i>>histSubBits + histSubBits + 1
	sub := uint64(i & (1<<histSubBits - 1))
	lo := (1<<histSubBits | sub) << (e - histSubBits)
	return lo + (uint64(1)<<(e-histSubBits))/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))]++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// quantile returns the q-quantile (0 < q <= 1).
func (h *histogram) quantile(q float64) time.Duration {
	var total uint64
	for _, c := range h.counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(histValue(i))
		}
	}
	return 0
}

// conn is one load connection.
type conn struct {
	w       *workload
	tenants []int // the tenants this connection cycles through
	nc      net.Conn
	br      *bufio.Reader
	body    []byte

	// Written by the connection's goroutine, read after it stops (or
	// atomically while running).
	done     atomic.Int64 // answers read, in every state
	ok       int64        // answers counted while recording
	errs     int64
	firstErr error
	hist     histogram
}

// state of a phase: warming up, recording, stopped.
const (
	stWarm int32 = iota
	stRecord
	stStop
)

func (c *conn) dial() error {
	if c.nc != nil {
		c.nc.Close()
	}
	nc, err := net.DialTimeout("tcp", c.w.addr, 5*time.Second)
	if err != nil {
		return err
	}
	c.nc = nc
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, 32<<10)
	} else {
		c.br.Reset(nc)
	}
	return nil
}

// run sends requests until state is stStop.
func (c *conn) run(state *atomic.Int32) {
	// Label the client so a CPU profile can leave it out
	// (go tool pprof -tagignore role=client).
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("role", "client")))
	var err error
	for k := 0; ; k++ {
		st := state.Load()
		if st == stStop {
			return
		}
		t := c.tenants[k%len(c.tenants)]
		if c.nc == nil {
			if err = c.dial(); err != nil {
				c.fail(st, err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
		}
		start := time.Now()
		err = c.roundTrip(c.w.reqs[t], c.w.expect[t])
		elapsed := time.Since(start)
		c.done.Add(1)
		if err != nil {
			c.fail(st, err)
			if c.nc != nil && !errors.Is(err, errUnexpected) {
				c.nc.Close()
				c.nc = nil
			}
			continue
		}
		if st == stRecord {
			c.ok++
			c.hist.record(elapsed)
		}
	}
}

func (c *conn) fail(st int32, err error) {
	if st != stRecord {
		if c.firstErr == nil {
			c.firstErr = fmt.Errorf("during warm-up: %w", err)
		}
		return
	}
	c.errs++
	if c.firstErr == nil {
		c.firstErr = err
	}
}

var errUnexpected = errors.New("unexpected answer")

// roundTrip writes req and reads one HTTP/1.1 response, checking that it
// is a 200 whose body contains expect.
func (c *conn) roundTrip(req, expect []byte) error {
	if _, err := c.nc.Write(req); err != nil {
		return err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	status := 0
	if len(line) >= 12 && bytes.HasPrefix(line, []byte("HTTP/1.")) {
		status = atoi(line[9:12])
	}
	length, chunked, closing := -1, false, false
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(h) <= 2 {
			break
		}
		i := bytes.IndexByte(h, ':')
		if i < 0 {
			continue
		}
		name, val := h[:i], bytes.TrimSpace(h[i+1:])
		switch {
		case equalFold(name, "content-length"):
			length = atoi(val)
		case equalFold(name, "transfer-encoding"):
			chunked = bytes.Contains(val, []byte("chunked"))
		case equalFold(name, "connection"):
			closing = bytes.EqualFold(val, []byte("close"))
		}
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		for {
			sz, err := c.br.ReadSlice('\n')
			if err != nil {
				return err
			}
			n := hexAtoi(bytes.TrimSpace(sz))
			if n < 0 {
				return errors.New("bad chunk size")
			}
			if n == 0 {
				// Trailers (none expected) end with an empty line.
				for {
					l, err := c.br.ReadSlice('\n')
					if err != nil {
						return err
					}
					if len(l) <= 2 {
						break
					}
				}
				break
			}
			if err := c.readN(n + 2); err != nil {
				return err
			}
			c.body = c.body[:len(c.body)-2]
		}
	case length >= 0:
		if err := c.readN(length); err != nil {
			return err
		}
	default:
		return errors.New("response without Content-Length or chunked body")
	}
	if closing {
		c.nc.Close()
		c.nc = nil
	}
	if status != 200 || !bytes.Contains(c.body, expect) {
		return fmt.Errorf("%w: HTTP %d, body %.300q", errUnexpected, status, c.body)
	}
	return nil
}

// readN appends n body bytes to c.body.
func (c *conn) readN(n int) error {
	start := len(c.body)
	if cap(c.body)-start < n {
		nb := make([]byte, start, start+n+1024)
		copy(nb, c.body)
		c.body = nb
	}
	c.body = c.body[:start+n]
	_, err := io.ReadFull(c.br, c.body[start:])
	return err
}

func atoi(b []byte) int {
	n := 0
	if len(b) == 0 {
		return -1
	}
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return -1
		}
		n = n*10 + int(ch-'0')
	}
	return n
}

func hexAtoi(b []byte) int {
	if i := bytes.IndexByte(b, ';'); i >= 0 {
		b = b[:i]
	}
	if len(b) == 0 {
		return -1
	}
	n := 0
	for _, ch := range b {
		switch {
		case ch >= '0' && ch <= '9':
			n = n*16 + int(ch-'0')
		case ch >= 'a' && ch <= 'f':
			n = n*16 + int(ch-'a'+10)
		case ch >= 'A' && ch <= 'F':
			n = n*16 + int(ch-'A'+10)
		default:
			return -1
		}
	}
	return n
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// phaseResult is what one phase measured.
type phaseResult struct {
	Requests  int64 // answers counted while recording
	Answered  int64 // answers read in every state, warm-up included
	Errors    int64
	Elapsed   time.Duration
	Hist      histogram
	FirstErr  error
	Mallocs   uint64        // process allocations during the recording window
	HeapBytes uint64        // bytes allocated during the recording window
	CPU       time.Duration // process CPU time (client and server) during the window
	OtherCPU  time.Duration // CPU time of all other processes during the window
	// DBCPU is the CPU time of the server's PostgreSQL backends during
	// the window (w.backends); DBMeasured says it was measured.
	DBCPU      time.Duration
	DBMeasured bool
}

// phaseHooks run at the edges of the recording window (profiles).
type phaseHooks struct {
	start, stop func()
}

// runPhase drives w with nconn connections over ntenants tenants: a
// warm-up of at least warm and at least one request per tenant, then a
// recording window of dur.
func runPhase(w *workload, nconn, ntenants int, warm, dur time.Duration, hooks phaseHooks) (*phaseResult, error) {
	conns := make([]*conn, nconn)
	for k := range conns {
		c := &conn{w: w, body: make([]byte, 0, 4096)}
		if ntenants >= nconn {
			for t := k; t < ntenants; t += nconn {
				c.tenants = append(c.tenants, t)
			}
		} else {
			c.tenants = []int{k % ntenants}
		}
		if err := c.dial(); err != nil {
			for _, o := range conns[:k] {
				o.nc.Close()
			}
			return nil, fmt.Errorf("connect to %s: %w", w.addr, err)
		}
		conns[k] = c
	}
	var state atomic.Int32
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.run(&state) })
	}
	stop := func() {
		state.Store(stStop)
		wg.Wait()
		for _, c := range conns {
			if c.nc != nil {
				c.nc.Close()
			}
		}
	}

	// Warm up: the time asked for, and every tenant at least once (so
	// each token has been verified and each tenant resolved before the
	// recording starts).
	time.Sleep(warm)
	deadline := time.Now().Add(2*time.Minute + 10*warm)
	for {
		behind := false
		for _, c := range conns {
			if c.done.Load() < int64(len(c.tenants)) {
				behind = true
			}
		}
		if !behind {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("warm-up did not reach every tenant within %s", 2*time.Minute+10*warm)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var before, after memStats
	var pids []int
	var db0 time.Duration
	dbOK := false
	if w.backends != nil {
		var err error
		if pids, err = w.backends(); err != nil {
			stop()
			return nil, fmt.Errorf("list the PostgreSQL backends: %w", err)
		}
		db0, dbOK = backendsCPU(pids)
	}
	if hooks.start != nil {
		hooks.start()
	}
	before.read()
	t0 := time.Now()
	state.Store(stRecord)
	time.Sleep(dur)
	state.Store(stStop)
	elapsed := time.Since(t0)
	after.read()
	if dbOK {
		var db1 time.Duration
		db1, dbOK = backendsCPU(pids)
		db0 = db1 - db0
	}
	if hooks.stop != nil {
		hooks.stop()
	}
	stop()

	r := &phaseResult{Elapsed: elapsed, Mallocs: after.mallocs - before.mallocs, HeapBytes: after.bytes - before.bytes, CPU: after.cpu - before.cpu,
		DBCPU: db0, DBMeasured: dbOK}
	if before.busy > 0 && after.busy > 0 {
		r.OtherCPU = max(after.busy-before.busy-r.CPU, 0)
	}
	for _, c := range conns {
		r.Requests += c.ok
		r.Answered += c.done.Load()
		r.Errors += c.errs
		r.Hist.merge(&c.hist)
		if r.FirstErr == nil && c.firstErr != nil {
			r.FirstErr = c.firstErr
		}
	}
	return r, nil
}
