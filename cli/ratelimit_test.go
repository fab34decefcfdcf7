package cli_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/internal/idptest"
)

// post sends one stateless tools/list and returns its status and headers.
func post(url, authorization string) (int, http.Header, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header, nil
}

// parallel sends n requests at once and fails the test unless every one
// was answered 200. It returns the headers of the answers.
func parallel(t *testing.T, url, authorization string, n int) []http.Header {
	t.Helper()
	codes, headers, errs := make([]int, n), make([]http.Header, n), make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			codes[i], headers[i], errs[i] = post(url, authorization)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || codes[i] != http.StatusOK {
			t.Fatalf("parallel request %d of %d: %d %v (want 200 for all)", i+1, n, codes[i], errs[i])
		}
	}
	return headers
}

// refusedNext checks that once a budget of rate/min is spent, requests are
// refused with 429. The budget refills continuously (one unit every
// 60 s / rate), so a slow machine may see a unit or two come back while the
// burst was being sent: requests are sent one by one until one is refused,
// and no more may pass than the units that came back since the first.
func refusedNext(t *testing.T, url, authorization string, since time.Time, rate int) {
	t.Helper()
	extra := 0
	for {
		code, h, err := post(url, authorization)
		if err != nil {
			t.Fatal(err)
		}
		if code == http.StatusTooManyRequests {
			if h.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			break
		}
		if code != http.StatusOK {
			t.Fatalf("request after the burst: %d", code)
		}
		extra++
		if refilled := int(time.Since(since)*time.Duration(rate)/time.Minute) + 1; extra > refilled {
			t.Fatalf("%d requests admitted beyond the burst, but only %d units came back since the first request", extra, refilled)
		}
	}
	if extra > 0 {
		t.Logf("%d units came back while the burst was sent; then refused", extra)
	}
}

// TestServeDefaultBurst: with the default configuration a tenant at
// 100/min gets 100 parallel requests admitted and the 101st refused; a
// tenant whose record sets only its rate gets that rate as its burst, and
// one whose record sets a burst gets that.
func TestServeDefaultBurst(t *testing.T) {
	idp := idptest.New(t)
	addr, data := freeAddr(t), t.TempDir()
	// max_body_reads_per_tenant is raised so that the slow-body cap (32
	// bodies arriving at once per tenant) cannot interfere: this test is
	// about the rate limit.
	path := writeConfig(t, fmt.Sprintf(`
[server]
listen = %q
data_dir = %q
max_body_reads_per_tenant = 1000

[auth]
provider = "generic"
issuer = %q
jwks_url = %q

[auth.multi_tenant]
enabled = true
tenant_claim = "org_id"
`, addr, data, idp.Issuer(), idp.JWKSURL()))
	for _, args := range [][]string{
		{"--external-id", "org_acme"},
		{"--external-id", "org_small", "--rate-limit", "10"},
		{"--external-id", "org_steady", "--rate-limit", "6", "--burst", "3"},
	} {
		if code, _, errOut := run(t, nil, append([]string{"tenant", "add", "--config", path}, args...)...); code != 0 {
			t.Fatalf("tenant add %v: %s", args, errOut)
		}
	}
	start(t, nil, "serving MCP", "serve", "--config", path)
	url := "http://" + addr + "/mcp"
	bearer := func(org string) string {
		return "Bearer " + idp.Sign(idp.GenericClaims(url, "user@"+org, []string{"execute:tools"}, map[string]any{"org_id": org}))
	}

	// The first request shows the whole minute's budget, less itself.
	acme := bearer("org_acme")
	began := time.Now()
	code, h, err := post(url, acme)
	if err != nil || code != http.StatusOK {
		t.Fatalf("first request: %d %v", code, err)
	}
	if pol, rl := h.Get("RateLimit-Policy"), h.Get("RateLimit"); pol != `"tenant";q=100;w=60` || !strings.HasPrefix(rl, `"tenant";r=99;`) {
		t.Fatalf("first request: RateLimit-Policy %q, RateLimit %q; want q=100 and r=99 (burst 100)", pol, rl)
	}
	parallel(t, url, acme, 99)
	refusedNext(t, url, acme, began, 100)

	for _, tc := range []struct {
		org         string
		rate, burst int
	}{
		{"org_small", 10, 10},
		{"org_steady", 6, 3},
	} {
		tok := bearer(tc.org)
		began := time.Now()
		for _, h := range parallel(t, url, tok, tc.burst) {
			if pol := h.Get("RateLimit-Policy"); pol != fmt.Sprintf(`"tenant";q=%d;w=60`, tc.rate) {
				t.Fatalf("%s: RateLimit-Policy %q", tc.org, pol)
			}
		}
		refusedNext(t, url, tok, began, tc.rate)
	}
}

// TestServeNoAuthNoRateLimit: [auth] enabled = false (local use) applies no
// rate limit unless one is configured, so a local client or conformance
// suite is never refused; configured explicitly, it applies.
func TestServeNoAuthNoRateLimit(t *testing.T) {
	addr := freeAddr(t)
	path := writeConfig(t, fmt.Sprintf("[server]\nlisten = %q\ndata_dir = %q\nmax_body_reads_per_tenant = 1000\n[auth]\nenabled = false\n", addr, t.TempDir()))
	srv := start(t, nil, "serving MCP", "serve", "--config", path)
	url := "http://" + addr + "/mcp"
	for _, h := range parallel(t, url, "", 150) {
		if h.Get("RateLimit-Policy") != "" {
			t.Fatalf("auth disabled, no rate-limit key: a limit applies: %q", h.Get("RateLimit-Policy"))
		}
	}
	srv.stop(t)

	// Set explicitly (in the file or, here, the environment), it applies.
	addr = freeAddr(t)
	path = writeConfig(t, fmt.Sprintf("[server]\nlisten = %q\ndata_dir = %q\n[auth]\nenabled = false\n[auth.multi_tenant]\nrate_limit_burst = 2\n", addr, t.TempDir()))
	start(t, []string{"TENANTMCP_AUTH_MULTI_TENANT_DEFAULT_RATE_LIMIT=6"}, "serving MCP", "serve", "--config", path)
	url = "http://" + addr + "/mcp"
	began := time.Now()
	for _, h := range parallel(t, url, "", 2) {
		if pol := h.Get("RateLimit-Policy"); pol != `"tenant";q=6;w=60` {
			t.Fatalf("auth disabled, default_rate_limit = 6: RateLimit-Policy %q", pol)
		}
	}
	refusedNext(t, url, "", began, 6)
}
