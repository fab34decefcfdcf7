package server_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/server"
)

// TestConnsPerClient: Serve keeps at most MaxConnsPerClient connections of
// one client address open; one more is closed as soon as it is accepted
// and counted, and a place freed by a closed connection serves again. The
// connections held are idle ones that never authenticated, as an attacker
// would hold them. Nothing is left running afterwards.
func TestConnsPerClient(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last: after Serve and every client are closed
	f := serveSlow(t, func(o *server.Options) { o.MaxConnsPerClient = 2 })
	f.addTenant(t, "acme", nil)
	addr := strings.TrimPrefix(f.base, "http://")

	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	held := []net.Conn{dial(), dial()}
	// Both are accepted and counted once the server answers on one of them
	// (accepts are in order): a request on the second proves the first is
	// in too.
	if _, err := io.WriteString(held[1], "GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	held[1].SetReadDeadline(time.Now().Add(failsafe))
	if line := readLine(t, held[1]); !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("held connection: %q", line)
	}

	// A third connection from the same address is closed unanswered.
	third := dial()
	third.SetReadDeadline(time.Now().Add(failsafe))
	io.WriteString(third, "GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n\r\n")
	if n, err := third.Read(make([]byte, 64)); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("third connection: read %d bytes, %v; want it closed", n, err)
	}
	if m := f.metrics(t); !strings.Contains(m, "tenantmcp_connections_refused_total 1") {
		t.Errorf("refused connection not counted:\n%s", metricLines(m, "connections_refused"))
	}

	// Closing a held connection frees its place, once the server has seen
	// it close (retried until then, within the failsafe): a tenant's MCP
	// request is served on a new connection.
	held[0].Close()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	authz := "Bearer " + f.genericToken("acme", "u")
	deadline := time.Now().Add(failsafe)
	for {
		req, _ := http.NewRequest(http.MethodPost, f.url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", authz)
		resp, err := c.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), "nap") {
				t.Fatalf("tools/list: %d %s", resp.StatusCode, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served after one was closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readLine reads up to the first CRLF.
func readLine(t *testing.T, c net.Conn) string {
	t.Helper()
	var b []byte
	one := make([]byte, 1)
	for !strings.HasSuffix(string(b), "\r\n") {
		if _, err := c.Read(one); err != nil {
			t.Fatalf("read: %v (after %q)", err, b)
		}
		b = append(b, one[0])
	}
	return strings.TrimSuffix(string(b), "\r\n")
}
