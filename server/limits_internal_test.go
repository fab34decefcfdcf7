package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestJSONTooDeep(t *testing.T) {
	for _, tt := range []struct {
		body  string
		depth int // the nesting jsonTooDeep must count
	}{
		{``, 0},
		{`1`, 0},
		{`{}`, 1},
		{`[[]]`, 2},
		{`{"a":{"b":[1,{"c":[]}]}}`, 5},
		{`{"a":"[[[[{{{{"}`, 1},
		{`{"a":"\"[[[[","b":"\\"}`, 1},
		{`{"a":"\\\"[[[["}`, 1},
		{`{"a":"\\\\"}[[[`, 3},
		{`]]]]]]]][[[`, 3}, // a stray closer cannot hide what follows
		{`"unterminated [[[[`, 0},
		{`[` + strings.Repeat(`1,`, 1000) + `1]`, 1},
	} {
		if tt.depth > 0 && !jsonTooDeep([]byte(tt.body), tt.depth-1) {
			t.Errorf("%q: not deeper than %d", tt.body, tt.depth-1)
		}
		if jsonTooDeep([]byte(tt.body), tt.depth) {
			t.Errorf("%q: deeper than %d", tt.body, tt.depth)
		}
	}
}

// referenceDepth is the nesting of valid JSON, by a standard decoder.
func referenceDepth(b []byte) (int, bool) {
	if !json.Valid(b) {
		return 0, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	depth, most := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return most, errors.Is(err, io.EOF)
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
			most = max(most, depth)
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}

// FuzzJSONDepth: the depth scanner never panics, and on every valid JSON
// text it counts exactly the nesting a standard decoder sees (so no
// escaping trick hides depth from it, and no string makes it refuse a
// shallow body).
func FuzzJSONDepth(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":[[[[1]]]]}}}`,
		strings.Repeat("[", 100) + strings.Repeat("]", 100),
		strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70),
		`[` + strings.Repeat(`{},`, 500) + `{}]`,
		`{"a":"` + strings.Repeat(`[{`, 100) + `"}`,
		`{"a":"\"[[[[[[","b":"\\","c":[[["\\\""]]]}`,
		`{"a":"\u005b\u007b","b":"\\u005b"}`,
		`"\\\\\\\\"`,
		`]]]]]]]]` + strings.Repeat("[", 10),
		`{"a":"unterminated [[[[`,
		"[\"\xff\xfe[\"]",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, valid := referenceDepth(b)
		for _, limit := range []int{0, 1, 2, 3, 8, 64} {
			got := jsonTooDeep(b, limit)
			if valid && got != (want > limit) {
				t.Fatalf("limit %d: jsonTooDeep = %v, but the decoder sees depth %d in %q", limit, got, want, b)
			}
		}
	})
}

func TestHeaderSizeCounted(t *testing.T) {
	s := &Server{opts: Options{MaxHeaderBytes: 1000}}
	r := httptestRequest(t, map[string]string{"X-Pad": strings.Repeat("p", 900)})
	if err := s.checkHeaderSize(r); err != nil {
		t.Fatalf("900-byte header: %v", err)
	}
	r = httptestRequest(t, map[string]string{"X-Pad": strings.Repeat("p", 500), "X-Other": strings.Repeat("q", 500)})
	var hs *headerSizeError
	if err := s.checkHeaderSize(r); !errors.As(err, &hs) || hs.max != 1000 {
		t.Fatalf("two 500-byte headers: %v", err)
	}
}

func TestClientAddr(t *testing.T) {
	for _, tt := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}, "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 2}, "192.0.2.1"}, // IPv4 in IPv6: the same client
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 3, Zone: "eth0"}, "2001:db8::1"},
		{fakeAddr("[2001:db8::2]:443"), "2001:db8::2"},
		{fakeAddr("198.51.100.7:80"), "198.51.100.7"},
	} {
		got, ok := clientAddr(tt.addr)
		if !ok || got.String() != tt.want {
			t.Errorf("%v: %v %v, want %s", tt.addr, got, ok, tt.want)
		}
	}
	if _, ok := clientAddr(&net.UnixAddr{Name: "/tmp/sock", Net: "unix"}); ok {
		t.Error("a Unix socket address is limited")
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

// pipeListener hands out one end of in-memory connections with the remote
// addresses the test chooses.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

// dial connects from remote and returns the client's end.
func (l *pipeListener) dial(t *testing.T, remote string) net.Conn {
	t.Helper()
	server, client := net.Pipe()
	l.conns <- addrConn{Conn: server, remote: fakeAddr(remote)}
	t.Cleanup(func() { client.Close() })
	return client
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *pipeListener) Addr() net.Addr { return fakeAddr("127.0.0.1:1") }

type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// TestConnLimitByAddress: each address (IPv4, IPv6, IPv4 mapped into
// IPv6 counted as the IPv4 one) has its own count; one at its cap does not
// keep another out; the log says so at most once per interval.
func TestConnLimitByAddress(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var logs bytes.Buffer
	now := time.Unix(1_000_000, 0)
	l := newConnLimiter(2, slog.New(slog.NewTextHandler(&logs, nil)), func() time.Time { return now })
	inner := newPipeListener()
	ln := &limitListener{Listener: inner, l: l}
	defer ln.Close()

	accepted := make(chan net.Conn)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	var open []net.Conn
	accept := func(remote string) {
		t.Helper()
		inner.dial(t, remote)
		open = append(open, <-accepted)
	}
	refused := func(remote string) {
		t.Helper()
		client := inner.dial(t, remote)
		// The listener closes it without handing it out: the client's
		// end sees the close.
		if _, err := client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: read %v, want EOF", remote, err)
		}
	}
	accept("192.0.2.1:1000")
	accept("[::ffff:192.0.2.1]:1001")
	refused("192.0.2.1:1002") // its third
	accept("[2001:db8::1]:1000")
	accept("[2001:db8::1]:1001")
	refused("[2001:db8::1]:1002")
	accept("198.51.100.7:1") // another address is not affected
	refused("192.0.2.1:1003")
	if got := strings.Count(logs.String(), "connections refused"); got != 1 {
		t.Fatalf("%d log lines within one interval, want 1:\n%s", got, logs.String())
	}
	now = now.Add(connLogInterval)
	refused("[2001:db8::1]:1003")
	if out := logs.String(); strings.Count(out, "connections refused") != 2 || !strings.Contains(out, "refused=3") {
		t.Fatalf("after the interval, want a second line counting the 3 since the first:\n%s", out)
	}

	// Closing frees the place, once however often it is closed.
	open[0].Close()
	open[0].Close()
	accept("192.0.2.1:1004")
	refused("192.0.2.1:1005")
	for _, c := range open {
		c.Close()
	}
	l.mu.Lock()
	left := len(l.open)
	l.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d addresses still counted after every connection closed", left)
	}
	ln.Close()
	if _, ok := <-accepted; ok {
		t.Fatal("accepted after close")
	}
}

func httptestRequest(t *testing.T, hdr map[string]string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return r
}

// BenchmarkLimitChecks: what the header-size and depth checks add to a
// request: a typical tools/call and headers, and a body near the default
// argument limit (mostly one long string, skipped with IndexByte).
func BenchmarkLimitChecks(b *testing.B) {
	s := &Server{opts: Options{MaxHeaderBytes: DefaultMaxHeaderBytes, MaxJSONDepth: DefaultMaxJSONDepth}}
	call := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}`)
	big := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"put_document","arguments":{"key":"k","content":"` + strings.Repeat("x", 250<<10) + `"}}}`)
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", nil)
	for k, v := range map[string]string{"Authorization": "Bearer " + strings.Repeat("t", 900), "Content-Type": "application/json",
		"Accept": "application/json, text/event-stream", "Mcp-Protocol-Version": "2025-11-25", "User-Agent": "bench/1"} {
		r.Header.Set(k, v)
	}
	b.Run("headers", func(b *testing.B) {
		for b.Loop() {
			if s.checkHeaderSize(r) != nil {
				b.Fatal("refused")
			}
		}
	})
	for name, body := range map[string][]byte{"depth/call": call, "depth/250KiB": big} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if s.checkBodyDepth(body) != nil {
					b.Fatal("refused")
				}
			}
		})
	}
}
