package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/server"
)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func getText(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("GET %s: Cache-Control %q, want no-store", url, cc)
	}
	return resp.StatusCode, string(b)
}

// TestHealthAndReadiness: /healthz says the process is up whatever
// Options.Ready says; /readyz answers 503 with Ready's reason until Ready
// passes, runs the check at most once per ReadyCacheFor however often it is
// polled, and needs no token.
func TestHealthAndReadiness(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
	var calls atomic.Int32
	var down atomic.Bool
	down.Store(true)
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) {
		o.Now = clk.now
		o.Ready = func(ctx context.Context) error {
			calls.Add(1)
			if _, ok := ctx.Deadline(); !ok {
				t.Error("Ready called without a deadline")
			}
			if down.Load() {
				return errors.New("database unreachable")
			}
			return nil
		}
	}})
	if code, body := getText(t, f.base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz while not ready: %d %q", code, body)
	}
	for range 20 {
		if code, body := getText(t, f.base+"/readyz"); code != 503 || body != "not ready: database unreachable\n" {
			t.Fatalf("/readyz while not ready: %d %q", code, body)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("20 polls within ReadyCacheFor ran the check %d times, want 1", n)
	}
	down.Store(false)
	if code, _ := getText(t, f.base+"/readyz"); code != 503 {
		t.Fatalf("/readyz reused no cached result: %d", code)
	}
	clk.add(server.ReadyCacheFor)
	if code, body := getText(t, f.base+"/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz once ready: %d %q", code, body)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("check ran %d times, want 2", n)
	}
	// Concurrent pollers share one check.
	clk.add(server.ReadyCacheFor)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			resp, err := http.Get(f.base + "/readyz")
			if err == nil {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 3 {
		t.Fatalf("10 concurrent polls ran the check %d times in all, want 3", n)
	}
}

// TestReadyzMultiLineReason: a long or multi-line error is answered as one
// bounded line.
func TestReadyzMultiLineReason(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) {
		o.Ready = func(context.Context) error { return errors.New("first\nsecond " + strings.Repeat("x", 500)) }
	}})
	code, body := getText(t, f.base+"/readyz")
	if code != 503 || strings.Count(body, "\n") != 1 || !strings.HasPrefix(body, "not ready: first second x") || len(body) > 240 {
		t.Fatalf("/readyz: %d %q", code, body)
	}
}

// TestReadyzWithoutCheck: no Options.Ready means ready while serving, and
// not ready once Serve is shutting down (so load balancers stop sending
// new requests to a draining replica).
func TestReadyzWithoutCheck(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims})
	if code, body := getText(t, f.base+"/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz: %d %q", code, body)
	}

	// Once Serve is shutting down, /readyz says so (on any listener the
	// server still answers, here the test's own).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, ln, 5*time.Second) }()
	if code, _ := getText(t, "http://"+ln.Addr().String()+"/readyz"); code != 200 {
		t.Fatalf("/readyz under Serve: %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if code, body := getText(t, f.base+"/readyz"); code != 503 || body != "not ready: shutting down\n" {
		t.Fatalf("/readyz after shutdown: %d %q", code, body)
	}
	if code, _ := getText(t, f.base+"/healthz"); code != 200 {
		t.Fatalf("/healthz after shutdown: %d", code)
	}
}
