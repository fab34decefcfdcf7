package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/internal/idptest"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

// These tests attack a server started with Serve on a real listener, the
// way `tenantmcp serve` runs it, with raw TCP clients that send slowly or
// not at all. They assert what happens (refused, cut off, still served),
// never how fast; durations are only logged. failsafe bounds each wait so
// that a regression fails instead of hanging.
const failsafe = 30 * time.Second

// serveSlow starts a server with Serve and the test's options; it is shut
// down, and every connection closed, when the test ends.
func serveSlow(t *testing.T, mutate func(*server.Options)) *fixture {
	t.Helper()
	idp := idptest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	f := &fixture{idp: idp, url: base + "/mcp", base: base, issuer: idp.Issuer()}
	f.verifier, err = auth.NewVerifier(context.Background(), &auth.Options{
		Issuer: f.issuer, Audience: f.url, JWKSURL: idp.JWKSURL(), Claims: genericClaims,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.verifier.Close)
	f.reg = registry.New(registry.NewMemoryStore(), nil)
	opts := server.Options{
		ResourceURL: f.url,
		Verifier:    f.verifier,
		Registry:    f.reg,
		Tools: []server.Tool{server.NewTool("nap", "Sleeps, or fails if its context ends first.", func(ctx context.Context, in struct {
			Millis int `json:"millis"`
		}) (string, error) {
			select {
			case <-time.After(time.Duration(in.Millis) * time.Millisecond):
				return "rested", nil
			case <-ctx.Done():
				return "", fmt.Errorf("nap interrupted: %w", ctx.Err())
			}
		})},
	}
	if mutate != nil {
		mutate(&opts)
	}
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, ln, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

// poster sends JSON-RPC POSTs on connections of its own, closed when the
// test ends.
type poster struct {
	c     *http.Client
	url   string
	authz string
}

func newPoster(t *testing.T, f *fixture, org string) *poster {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &poster{c: &http.Client{Transport: tr}, url: f.url, authz: "Bearer " + f.genericToken(org, "u")}
}

func (p *poster) post(t *testing.T, body string) (*http.Response, string) {
	t.Helper()
	if body == "" {
		body = `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`
	}
	req, err := http.NewRequest(http.MethodPost, p.url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", p.authz)
	resp, err := p.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// slowConn is a raw client that sends a request's headers and then its
// body a byte now and then, until the server stops taking them.
type slowConn struct {
	conn net.Conn
	br   *bufio.Reader
	stop chan struct{}
	done chan struct{} // the dribbling goroutine has ended
}

// openSlowBody sends the headers of a POST declaring contentLength bytes
// and waits for 100 Continue: the server has admitted the request and is
// reading its body. authz "" sends no token (the server answers before
// reading, so there is no 100 Continue to wait for). The connection is
// closed when the test ends.
func openSlowBody(t *testing.T, f *fixture, authz string, contentLength int) *slowConn {
	t.Helper()
	sc, err := dialSlowBody(f, authz, contentLength)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sc.close)
	return sc
}

// dialSlowBody is openSlowBody for other goroutines than the test's: the
// caller closes the connection.
func dialSlowBody(f *fixture, authz string, contentLength int) (*slowConn, error) {
	host := strings.TrimPrefix(f.base, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		return nil, err
	}
	sc := &slowConn{conn: conn, br: bufio.NewReader(conn), stop: make(chan struct{}), done: make(chan struct{})}
	var h strings.Builder
	fmt.Fprintf(&h, "POST /mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n", host)
	fmt.Fprintf(&h, "Content-Length: %d\r\n", contentLength)
	if authz != "" {
		fmt.Fprintf(&h, "Authorization: %s\r\nExpect: 100-continue\r\n", authz)
	}
	h.WriteString("\r\n")
	conn.SetDeadline(time.Now().Add(failsafe))
	if _, err := io.WriteString(conn, h.String()); err != nil {
		conn.Close()
		return nil, err
	}
	if authz != "" {
		resp, err := http.ReadResponse(sc.br, nil)
		if err != nil || resp.StatusCode != http.StatusContinue {
			conn.Close()
			return nil, fmt.Errorf("want 100 Continue, got %v %v", resp, err)
		}
	}
	go sc.dribble()
	return sc, nil
}

func (sc *slowConn) dribble() {
	defer close(sc.done)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-sc.stop:
			return
		case <-tick.C:
			if _, err := sc.conn.Write([]byte(" ")); err != nil {
				return // the server has closed the connection
			}
		}
	}
}

func (sc *slowConn) close() {
	select {
	case <-sc.stop:
	default:
		close(sc.stop)
	}
	sc.conn.Close()
	<-sc.done
}

// cutOff waits for the server to answer and close the connection. It
// returns the status answered (0 if the connection was closed or reset
// before an answer could be read) and an error if the connection was not
// closed by the server.
func (sc *slowConn) cutOff() (int, error) {
	sc.conn.SetReadDeadline(time.Now().Add(failsafe))
	status := 0
	if resp, err := http.ReadResponse(sc.br, nil); err == nil {
		status = resp.StatusCode
		io.Copy(io.Discard, resp.Body)
	} else if isTimeout(err) {
		return 0, fmt.Errorf("no answer within %s: %w", failsafe, err)
	}
	if _, err := sc.br.ReadByte(); err == nil {
		return status, errors.New("the connection is still open after the answer")
	} else if isTimeout(err) {
		return status, fmt.Errorf("the connection was not closed within %s", failsafe)
	}
	return status, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestSlowBodiesCutOff: 20 clients of one tenant that declare 1 MiB bodies
// and send a byte now and then (reconnecting each time they are cut off)
// are cut off by the read timeout, hold about what they sent rather than
// what they declared, and do not keep another tenant from being served.
func TestSlowBodiesCutOff(t *testing.T) {
	const (
		attackers   = 20
		rounds      = 3
		declared    = 1 << 20
		readTimeout = 300 * time.Millisecond
		slack       = 4 << 20 // without the fix the attack pins ≥ 20 MiB
	)
	f := serveSlow(t, func(o *server.Options) {
		o.ReadTimeout = readTimeout
		o.MaxBodyBytes = declared
	})
	f.addTenant(t, "noisy", nil)
	f.addTenant(t, "quiet", nil)
	noisy := "Bearer " + f.genericToken("noisy", "u")
	quiet := newPoster(t, f, "quiet")
	if resp, body := quiet.post(t, ""); resp.StatusCode != 200 {
		t.Fatalf("quiet tenant before the attack: %d %s", resp.StatusCode, body)
	}
	warm := openSlowBody(t, f, noisy, declared) // token cached, pools warm
	if _, err := warm.cutOff(); err != nil {
		t.Fatal(err)
	}
	warm.close()
	baseline := heapAlloc()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		lived    []time.Duration
		failures []error
	)
	attackDone := make(chan struct{})
	for range attackers {
		wg.Go(func() {
			for range rounds {
				start := time.Now()
				sc, err := dialSlowBody(f, noisy, declared)
				status := 0
				if err == nil {
					status, err = sc.cutOff()
					sc.close()
				}
				mu.Lock()
				statuses[status]++
				lived = append(lived, time.Since(start))
				if err != nil {
					failures = append(failures, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(attackDone) }()

	// While the attack lasts: the other tenant is served, and the heap is
	// sampled (most of the 20 requests are in their body read at any time).
	var latencies []time.Duration
	var peak uint64
	for attacking := true; attacking; {
		start := time.Now()
		resp, body := quiet.post(t, "")
		latencies = append(latencies, time.Since(start))
		if resp.StatusCode != 200 || !strings.Contains(body, "nap") {
			t.Errorf("quiet tenant during the attack: %d %s", resp.StatusCode, body)
		}
		if h := heapAlloc(); h > peak {
			peak = h
		}
		select {
		case <-attackDone:
			attacking = false
		case <-time.After(10 * time.Millisecond):
		}
	}
	after := heapAlloc()

	for _, err := range failures {
		t.Errorf("slow client: %v", err)
	}
	for status, n := range statuses {
		if status != http.StatusRequestTimeout && status != 0 {
			t.Errorf("%d slow clients answered %d, want 408 (or a closed connection)", n, status)
		}
	}
	if n := len(lived); n != attackers*rounds {
		t.Errorf("%d slow requests completed, want %d", n, attackers*rounds)
	}
	slices.Sort(latencies)
	slices.Sort(lived)
	t.Logf("read timeout %s; slow requests answered %v, longest lived %s", readTimeout, statuses, lived[len(lived)-1])
	t.Logf("quiet tenant: %d requests during the attack, p50 %s, p99 %s", len(latencies),
		latencies[len(latencies)/2], latencies[(len(latencies)*99)/100])
	t.Logf("heap: baseline %d KiB, peak during the attack %d KiB, after %d KiB", baseline>>10, peak>>10, after>>10)
	if peak > baseline+slack {
		t.Errorf("heap during the attack %d KiB, want at most baseline %d KiB + %d KiB: slow bodies pin buffers of their declared size",
			peak>>10, baseline>>10, slack>>10)
	}
	if after > baseline+slack {
		t.Errorf("heap after the attack %d KiB, want back near baseline %d KiB", after>>10, baseline>>10)
	}
}

// TestBodyReadCapPerTenant: once a tenant has MaxBodyReadsPerTenant bodies
// arriving, its next request is refused with 429 while another tenant's is
// served; the slot is free again when a slow body ends.
func TestBodyReadCapPerTenant(t *testing.T) {
	const max = 2
	f := serveSlow(t, func(o *server.Options) {
		o.MaxBodyReadsPerTenant = max
		o.ReadTimeout = time.Minute // the test ends the slow bodies itself
	})
	f.addTenant(t, "noisy", nil)
	f.addTenant(t, "quiet", nil)
	noisyAuthz := "Bearer " + f.genericToken("noisy", "u")
	noisy, quiet := newPoster(t, f, "noisy"), newPoster(t, f, "quiet")

	var slow []*slowConn
	for range max {
		slow = append(slow, openSlowBody(t, f, noisyAuthz, 1000))
	}
	resp, body := noisy.post(t, "")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(errorMessage(t, body), "request bodies still arriving") {
		t.Fatalf("request %d of a tenant with %d slow bodies: %d Retry-After %q %s",
			max+1, max, resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, body := quiet.post(t, ""); resp.StatusCode != 200 {
		t.Fatalf("other tenant while the first is at its cap: %d %s", resp.StatusCode, body)
	}

	slow[0].close()
	// The server sees the close when its read fails; until then the
	// tenant is still at its cap.
	for i := 0; ; i++ {
		resp, body := noisy.post(t, "")
		if resp.StatusCode == 200 {
			break
		}
		if resp.StatusCode != http.StatusTooManyRequests || i == 500 {
			t.Fatalf("after a slow body ended: %d %s", resp.StatusCode, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSlowBodyUnauthenticatedCutOff: a request refused before its body is
// read (here: no token) cannot hold the connection by dribbling the body
// net/http would otherwise wait for after the answer.
func TestSlowBodyUnauthenticatedCutOff(t *testing.T) {
	f := serveSlow(t, func(o *server.Options) { o.ReadTimeout = 300 * time.Millisecond })
	sc := openSlowBody(t, f, "", 200<<10) // small enough that net/http reads it after answering
	status, err := sc.cutOff()
	if err != nil {
		t.Fatal(err)
	}
	if status != 0 && status != http.StatusUnauthorized {
		t.Fatalf("answered %d, want 401", status)
	}
}

// TestSlowToolCallNotCut: the read and write timeouts bound the body and
// each write, not the request: a tool call that takes longer than both is
// answered, and its context is not cancelled (as http.Server.ReadTimeout
// would).
func TestSlowToolCallNotCut(t *testing.T) {
	f := serveSlow(t, func(o *server.Options) {
		o.ReadTimeout = 100 * time.Millisecond
		o.WriteTimeout = 100 * time.Millisecond
	})
	f.addTenant(t, "acme", nil)
	p := newPoster(t, f, "acme")
	call := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"nap","arguments":{"millis":500}}}`
	for range 2 { // the second on the kept-alive connection
		resp, body := p.post(t, call)
		if resp.StatusCode != 200 || !strings.Contains(body, "rested") {
			t.Fatalf("tool call longer than the timeouts: %d %s", resp.StatusCode, body)
		}
	}
}

// TestSlowReaderCutOff: a client that stops reading its response is cut
// off by the write timeout instead of holding the handler.
func TestSlowReaderCutOff(t *testing.T) {
	errc := make(chan error, 1)
	f := serveSlow(t, func(o *server.Options) {
		o.WriteTimeout = 200 * time.Millisecond
		o.Routes = map[string]http.Handler{"GET /flood": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			chunk := make([]byte, 256<<10)
			for {
				if _, err := w.Write(chunk); err != nil {
					errc <- err
					return
				}
			}
		})}
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /flood HTTP/1.1\r\nHost: %s\r\n\r\n", strings.TrimPrefix(f.base, "http://"))
	// ... and never read.
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write to a client that stopped reading: %v, want a deadline error", err)
		}
	case <-time.After(failsafe):
		t.Fatalf("the handler was still writing to a client that stopped reading after %s", failsafe)
	}
}

// TestSlowHeadersCutOff: a client that sends its headers a line now and
// then is closed by the read-header timeout, and an idle kept-alive
// connection by the idle timeout.
func TestSlowHeadersCutOff(t *testing.T) {
	f := serveSlow(t, func(o *server.Options) {
		o.ReadHeaderTimeout = 300 * time.Millisecond
		o.IdleTimeout = 300 * time.Millisecond
	})
	host := strings.TrimPrefix(f.base, "http://")
	t.Run("headers", func(t *testing.T) {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		sc := &slowConn{conn: conn, br: bufio.NewReader(conn), stop: make(chan struct{}), done: make(chan struct{})}
		defer sc.close()
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\nX-Slow: ", host)
		go sc.dribble() // the header value never ends
		if _, err := sc.cutOff(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("idle", func(t *testing.T) {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", host)
		conn.SetReadDeadline(time.Now().Add(failsafe))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		if _, err := br.ReadByte(); err == nil || isTimeout(err) {
			t.Fatalf("idle kept-alive connection: %v, want closed by the server", err)
		}
	})
}

// TestSlowBodyWithinTimeoutServed: a body that arrives in pieces, but
// within the read timeout, is served.
func TestSlowBodyWithinTimeoutServed(t *testing.T) {
	f := serveSlow(t, func(o *server.Options) { o.ReadTimeout = time.Minute })
	f.addTenant(t, "acme", nil)
	host := strings.TrimPrefix(f.base, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(failsafe))
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`
	fmt.Fprintf(conn, "POST /mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n",
		host, f.genericToken("acme", "u"), len(body))
	for piece := range slices.Chunk([]byte(body), 8) {
		time.Sleep(10 * time.Millisecond)
		if _, err := conn.Write(piece); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "nap") {
		t.Fatalf("body sent in pieces: %d %s", resp.StatusCode, b)
	}
}

// TestBodyOptionsValidated: negative timeouts and caps are refused; zero
// means the default.
func TestBodyOptionsValidated(t *testing.T) {
	base := server.Options{ResourceURL: "http://127.0.0.1:1/mcp", Registry: registry.New(registry.NewMemoryStore(), nil),
		LocalIdentity: &auth.Identity{TenantID: "t"}}
	if _, err := server.New(base); err != nil {
		t.Fatalf("zero values: %v", err)
	}
	bad := base
	bad.ReadTimeout, bad.WriteTimeout, bad.MaxBodyReadsPerTenant = -time.Second, -1, -1
	_, err := server.New(bad)
	for _, want := range []string{"ReadTimeout", "WriteTimeout", "MaxBodyReadsPerTenant"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("negative %s: %v", want, err)
		}
	}
}
