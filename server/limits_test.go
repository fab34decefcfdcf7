package server_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

// TestSessionsBoundToTenantAndUser: in stateful mode a session id presented
// with anyone else's token is refused, revealing nothing.
func TestSessionsBoundToTenantAndUser(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) { o.Stateful = true }})
	f.addTenant(t, "acme", nil)
	f.addTenant(t, "globex", nil)
	alice := "Bearer " + f.genericToken("acme", "alice")

	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	resp, body := rawPost(t, f.url, alice, init)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize: %d session %q body %s", resp.StatusCode, sid, body)
	}
	list := func(authz, session string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, f.url, strings.NewReader(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", authz)
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp, b.String()
	}
	if resp, body := list(alice, sid); resp.StatusCode != 200 || !strings.Contains(body, "put_document") {
		t.Fatalf("owner using its session: %d %s", resp.StatusCode, body)
	}
	for name, other := range map[string]string{
		"other tenant":            "Bearer " + f.genericToken("globex", "bob"),
		"same tenant, other user": "Bearer " + f.genericToken("acme", "mallory"),
	} {
		resp, body := list(other, sid)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "session not found") || strings.Contains(body, "put_document") {
			t.Fatalf("%s presenting alice's session: %d %s", name, resp.StatusCode, body)
		}
	}
	if resp, _ := list(alice, "mcp-session-00000000-0000-0000-0000-000000000000"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("made-up session id: %d", resp.StatusCode)
	}
}

// TestRateLimitThroughServer: a tenant over its budget gets 429 with
// Retry-After and RateLimit headers; another tenant is unaffected.
func TestRateLimitThroughServer(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) {
		o.Limiter = ratelimit.NewMemory(nil)
		o.DefaultLimit = ratelimit.Limit{PerMinute: 600, Burst: 100}
	}})
	f.addTenant(t, "noisy", func(r *registry.Tenant) { r.RateLimit, r.RateBurst = 60, 3 })
	f.addTenant(t, "quiet", nil)
	noisy := "Bearer " + f.genericToken("noisy", "u")
	quiet := "Bearer " + f.genericToken("quiet", "u")

	for i := range 3 {
		resp, body := rawPost(t, f.url, noisy, "")
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
		if pol := resp.Header.Get("RateLimit-Policy"); !strings.Contains(pol, "q=60") {
			t.Fatalf("RateLimit-Policy = %q", pol)
		}
		if rl := resp.Header.Get("RateLimit"); !strings.Contains(rl, "r="+strconv.Itoa(2-i)) {
			t.Fatalf("request %d: RateLimit = %q, want r=%d", i, rl, 2-i)
		}
	}
	resp, body := rawPost(t, f.url, noisy, "")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("4th request: %d %s", resp.StatusCode, body)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After = %q", resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(errorMessage(t, body), "rate limit exceeded") || strings.Contains(body, "quiet") {
		t.Fatalf("429 body: %s", body)
	}
	for range 20 {
		if resp, _ := rawPost(t, f.url, quiet, ""); resp.StatusCode != 200 {
			t.Fatalf("quiet tenant refused while noisy is limited: %d", resp.StatusCode)
		}
	}
}

// TestPerUserLimitAndConcurrencyCap: one user cannot take a whole tenant's
// budget, and one tenant cannot hold every worker.
func TestPerUserLimitAndConcurrencyCap(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) {
		o.Limiter = ratelimit.NewMemory(nil)
		o.DefaultLimit = ratelimit.Limit{PerMinute: 6000, Burst: 1000}
		o.PerUserLimit = ratelimit.Limit{PerMinute: 60, Burst: 2}
		o.MaxConcurrentPerTenant = 2
	}})
	f.addTenant(t, "acme", nil)
	f.addTenant(t, "globex", nil)
	alice, bob := "Bearer "+f.genericToken("acme", "alice"), "Bearer "+f.genericToken("acme", "bob")
	for range 2 {
		if resp, body := rawPost(t, f.url, alice, ""); resp.StatusCode != 200 {
			t.Fatalf("alice: %d %s", resp.StatusCode, body)
		}
	}
	resp, body := rawPost(t, f.url, alice, "")
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(errorMessage(t, body), "for this user") {
		t.Fatalf("alice over her budget: %d %s", resp.StatusCode, body)
	}
	if pol := resp.Header.Values("RateLimit-Policy"); len(pol) != 2 || !strings.Contains(strings.Join(pol, ","), `"user";q=60`) {
		t.Fatalf("RateLimit-Policy = %q, want tenant and user policies", pol)
	}
	resp, body = rawPost(t, f.url, bob, "")
	if resp.StatusCode != 200 {
		t.Fatalf("bob refused because of alice: %d %s", resp.StatusCode, body)
	}
	if rl := resp.Header.Values("RateLimit"); len(rl) != 2 || !strings.Contains(strings.Join(rl, ","), `"user";r=1`) {
		t.Fatalf("allowed response RateLimit = %q, want tenant and user budgets", rl)
	}

	// Concurrency: two calls of acme in flight; a third is refused, globex
	// is unaffected, and acme may call again once one finishes.
	gate.entered, gate.open = make(chan struct{}, 8), make(chan struct{})
	waitCall := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"wait","arguments":{}}}`
	carol, dave := "Bearer "+f.genericToken("acme", "carol"), "Bearer "+f.genericToken("acme", "dave")
	done := make(chan int, 2)
	for _, who := range []string{carol, dave} {
		go func() {
			resp, _ := rawPost(t, f.url, who, waitCall)
			done <- resp.StatusCode
		}()
	}
	<-gate.entered
	<-gate.entered
	erin := "Bearer " + f.genericToken("acme", "erin")
	resp, body = rawPost(t, f.url, erin, "")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "in flight") {
		t.Fatalf("third concurrent acme request: %d %s", resp.StatusCode, body)
	}
	if resp, _ := rawPost(t, f.url, "Bearer "+f.genericToken("globex", "gil"), ""); resp.StatusCode != 200 {
		t.Fatalf("globex refused while acme is at its cap: %d", resp.StatusCode)
	}
	close(gate.open)
	for range 2 {
		if code := <-done; code != 200 {
			t.Fatalf("held call ended with %d", code)
		}
	}
	if resp, _ := rawPost(t, f.url, erin, ""); resp.StatusCode != 200 {
		t.Fatalf("acme after its calls finished: %d", resp.StatusCode)
	}

	// Refusals are counted (on the metrics handler, not the public
	// listener).
	metrics := f.metrics(t)
	for _, want := range []string{`tenantmcp_requests_refused_total{reason="rate_limited_user"} 1`, `tenantmcp_requests_refused_total{reason="concurrency"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestBodyLimitAndHostCheck: an oversized body gets 413 before any work,
// and a loopback server refuses non-loopback Host names (DNS rebinding).
func TestBodyLimitAndHostCheck(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) { o.MaxBodyBytes = 256 }})
	f.addTenant(t, "acme", nil)
	tok := "Bearer " + f.genericToken("acme", "u")
	big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"put_document","arguments":{"key":"k","content":"` + strings.Repeat("x", 400) + `"}}}`
	if resp, body := rawPost(t, f.url, tok, big); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodPost, f.url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Host = "attacker.example"
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("rebinding Host: %d", resp.StatusCode)
	}
}
