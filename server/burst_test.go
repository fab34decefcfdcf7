package server_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

// TestDefaultBurstIsOneMinute: "100 requests per minute" admits an agent's
// first 100 parallel calls, then refuses the 101st. The limit leaves Burst
// zero, as app does when rate_limit_burst is not set, so the
// default comes from the ratelimit package; a tenant whose record sets only
// its rate gets one minute's worth of that rate. The limiter's clock is
// frozen so no unit comes back while the requests are in flight.
func TestDefaultBurstIsOneMinute(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lim := ratelimit.NewMemory(&ratelimit.MemoryOptions{Now: func() time.Time { return now }})
	t.Cleanup(func() { lim.Close() })
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) {
		o.Limiter = lim
		o.DefaultLimit = ratelimit.Limit{PerMinute: 100}
		// Keep the slow-body cap out of the way: this test is about the
		// rate limit alone.
		o.MaxBodyReadsPerTenant = 1000
	}})
	f.addTenant(t, "agent", nil)
	f.addTenant(t, "small", func(r *registry.Tenant) { r.RateLimit = 10 })

	for _, tc := range []struct {
		org  string
		rate int
	}{{"agent", 100}, {"small", 10}} {
		authz := "Bearer " + f.genericToken(tc.org, "u")
		codes := parallelPosts(f.url, authz, tc.rate)
		for i, c := range codes {
			if c != http.StatusOK {
				t.Fatalf("%s at %d/min: parallel request %d of %d got %d, want 200 for all", tc.org, tc.rate, i+1, tc.rate, c)
			}
		}
		resp, body := rawPost(t, f.url, authz, "")
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("%s: request %d got %d, want 429: %s", tc.org, tc.rate+1, resp.StatusCode, body)
		}
		if pol := resp.Header.Get("RateLimit-Policy"); !strings.Contains(pol, "q="+strconv.Itoa(tc.rate)) {
			t.Fatalf("%s: RateLimit-Policy = %q", tc.org, pol)
		}
	}
}

// parallelPosts sends n tools/list requests at once and returns their
// status codes (0 for a transport error).
func parallelPosts(url, authorization string, n int) []int {
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`))
			if err != nil {
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Authorization", authorization)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	close(start)
	wg.Wait()
	return codes
}
