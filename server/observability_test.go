package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

type noteIn struct {
	Text string `json:"text"`
}

// observedTools log through server.Logger, fail on request, and echo.
func observedTools() []server.Tool {
	return []server.Tool{
		server.NewTool("note", "Logs a line through server.Logger.", func(ctx context.Context, in noteIn) (string, error) {
			log := server.Logger(ctx)
			log.Info("tool note", "length", len(in.Text))
			log.InfoContext(ctx, "tool note with context")
			return "noted", nil
		}),
		server.NewTool("fail", "Fails with an internal error.", func(ctx context.Context, in noteIn) (string, error) {
			return "", errors.New("disk on fire")
		}),
	}
}

// serveOne sends one JSON-RPC message straight to the handler (so its
// access line is written when it returns) and returns the answer.
func serveOne(t *testing.T, h http.Handler, url, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func callBody(name, args string) string {
	return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + name + `","arguments":` + args + `}}`
}

// logLines decodes JSON log lines.
func logLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		lines = append(lines, m)
	}
	return lines
}

// TestAccessLog: every MCP request, served or refused, gets one info line
// "request" with who, what and how it ended; every line logged during a
// request (the tool's own, through server.Logger, and the refusal's)
// carries its tenant_id and request_id, once.
func TestAccessLog(t *testing.T) {
	var logs syncBuffer
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.Tools = append(o.Tools, observedTools()...)
		o.Limiter = ratelimit.NewMemory(nil)
		o.DefaultLimit = ratelimit.Limit{PerMinute: 1000, Burst: 1000}
	}})
	acme := f.addTenant(t, "acme", nil)
	slow := f.addTenant(t, "slow", func(r *registry.Tenant) { r.RateLimit, r.RateBurst = 1, 1 })

	if rec := serveOne(t, f.srv, f.url, f.genericToken("acme", "alice"), callBody("note", `{"text":"hi"}`)); rec.Code != 200 || !strings.Contains(rec.Body.String(), "noted") {
		t.Fatalf("note: %d %s", rec.Code, rec.Body)
	}
	if rec := serveOne(t, f.srv, f.url, "", callBody("note", `{}`)); rec.Code != 401 {
		t.Fatalf("no token: %d, want 401", rec.Code)
	}
	slowTok := f.genericToken("slow", "bob")
	serveOne(t, f.srv, f.url, slowTok, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	if rec := serveOne(t, f.srv, f.url, slowTok, `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`); rec.Code != 429 {
		t.Fatalf("over the rate limit: %d, want 429", rec.Code)
	}
	if rec := serveOne(t, f.srv, f.url, f.genericToken("acme", "alice"), callBody("fail", `{}`)); rec.Code != 200 || !strings.Contains(rec.Body.String(), "internal error") {
		t.Fatalf("fail: %d %s", rec.Code, rec.Body)
	}

	out := logs.String()
	lines := logLines(t, out)
	var access []map[string]any
	for _, l := range lines {
		if l["msg"] == "request" {
			access = append(access, l)
		}
	}
	if len(access) != 5 {
		t.Fatalf("%d access lines, want 5 (one per request):\n%s", len(access), out)
	}
	type want struct {
		tenant, external, user, method, tool, outcome, reason string
		status                                                float64
	}
	wants := []want{
		{string(acme.ID), "acme", "alice", "tools/call", "note", "ok", "", 200},
		{"", "", "", "", "", "refused", "no_token", 401}, // refused before the body is read

		{string(slow.ID), "slow", "bob", "tools/list", "", "ok", "", 200},
		{string(slow.ID), "slow", "bob", "", "", "refused", "rate_limited_tenant", 429},
		{string(acme.ID), "acme", "alice", "tools/call", "fail", "error", "internal", 200},
	}
	ids := map[string]bool{}
	for i, w := range wants {
		l := access[i]
		got := want{str(l["tenant_id"]), str(l["external_tenant_id"]), str(l["user"]), str(l["method"]), str(l["tool"]),
			str(l["outcome"]), str(l["reason"]), num(l["status"])}
		if got != w {
			t.Errorf("access line %d:\n got %+v\nwant %+v", i, got, w)
		}
		if l["level"] != "INFO" || l["protocol"] != "2025-11-25" {
			t.Errorf("access line %d: level %v protocol %v, want INFO 2025-11-25", i, l["level"], l["protocol"])
		}
		if lat, ok := l["latency"].(float64); !ok || lat <= 0 {
			t.Errorf("access line %d: latency %v, want a positive duration", i, l["latency"])
		}
		id := str(l["request_id"])
		if id == "" || ids[id] {
			t.Errorf("access line %d: request_id %q, want a new one", i, id)
		}
		ids[id] = true
	}

	// Every line carries the request id, and the tenant once it is known.
	byID := map[string]map[string]any{}
	for _, l := range access {
		byID[str(l["request_id"])] = l
	}
	for _, l := range lines {
		req := byID[str(l["request_id"])]
		if req == nil {
			t.Errorf("line without a request's request_id: %v", l)
			continue
		}
		if str(l["tenant_id"]) != str(req["tenant_id"]) {
			t.Errorf("line %q: tenant_id %v, want %v", l["msg"], l["tenant_id"], req["tenant_id"])
		}
	}
	for _, msg := range []string{"tool note", "tool note with context", "tool failed"} {
		l := find(lines, msg)
		if l == nil || str(l["tenant_id"]) != string(acme.ID) {
			t.Errorf("line %q: %v, want tenant_id %s and the call's request_id", msg, l, acme.ID)
		}
	}
	refusals := 0
	for _, l := range lines {
		if l["msg"] == "request refused" && l["reason"] == "rate_limited_tenant" {
			refusals++
			if str(l["tenant_id"]) != string(slow.ID) {
				t.Errorf("refusal line: tenant_id %v, want %s", l["tenant_id"], slow.ID)
			}
		}
	}
	if refusals != 1 {
		t.Errorf("%d debug lines for the rate-limit refusal, want 1", refusals)
	}
	for _, raw := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Count(raw, `"tenant_id"`) > 1 || strings.Count(raw, `"request_id"`) > 1 {
			t.Errorf("attribute repeated: %s", raw)
		}
	}
}

func str(v any) string { s, _ := v.(string); return s }

func num(v any) float64 { n, _ := v.(float64); return n }

func find(lines []map[string]any, msg string) map[string]any {
	for _, l := range lines {
		if l["msg"] == msg {
			return l
		}
	}
	return nil
}

// TestLogsHoldNoSecrets: with everything logged (debug), neither a bearer
// token (valid or not) nor tool argument values reach the log.
func TestLogsHoldNoSecrets(t *testing.T) {
	var logs syncBuffer
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.Tools = append(o.Tools, observedTools()...)
	}})
	f.addTenant(t, "acme", nil)
	token := f.genericToken("acme", "alice")
	const secret = "sk_live_51HsecretArgumentValue"
	bad := token[:len(token)-4] + "AAAA" // a valid token with its signature broken
	for _, c := range []struct{ token, body string }{
		{token, callBody("note", `{"text":"`+secret+`"}`)},
		{token, callBody("fail", `{"text":"`+secret+`"}`)},
		{token, callBody("note", `{"password":"`+secret+`"}`)}, // invalid arguments
		{token, callBody("nosuchtool", `{"api_key":"`+secret+`"}`)},
		{bad, callBody("note", `{"text":"`+secret+`"}`)},
		{token, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"note","arguments":{"text":"` + secret + `"}` + strings.Repeat(" ", 2<<20)}, // too large
	} {
		serveOne(t, f.srv, f.url, c.token, c.body)
	}
	out := logs.String()
	if n := strings.Count(out, `"msg":"request"`); n != 6 {
		t.Fatalf("%d access lines, want 6:\n%s", n, out)
	}
	parts := strings.Split(token, ".")
	for name, s := range map[string]string{"token": token, "broken token": bad, "token signature": parts[2], "token payload": parts[1], "argument": secret, "argument prefix": secret[:12]} {
		if strings.Contains(out, s) {
			t.Errorf("the log holds the %s:\n%s", name, out)
		}
	}
}

// tenantTokens is a Verifier for many tenants at no signing cost: token
// "tok-<external id>" is that tenant's user "u".
type tenantTokens struct{ issuer string }

func (v tenantTokens) Verify(_ context.Context, token string) (*auth.Identity, error) {
	ext, ok := strings.CutPrefix(token, "tok-")
	if !ok {
		return nil, auth.ErrInvalidToken
	}
	return &auth.Identity{Issuer: v.issuer, TenantID: ext, UserID: "u"}, nil
}

var tenantLabelRE = regexp.MustCompile(`tenant="([^"]*)"`)

// scrape reads the metrics handler's exposition.
func scrape(t *testing.T, srv *server.Server) string {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

// sample returns the value of the series named exactly (name and labels).
func sample(exposition, series string) (float64, bool) {
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// TestMetricsTenantLabelsBounded: 10,000 tenants call; the tenant label
// takes at most MetricsTopTenants tenant ids plus "other", on every
// metric, and the counts still add up.
func TestMetricsTenantLabelsBounded(t *testing.T) {
	const tenants, top = 10000, 20
	const issuer = "https://idp.example"
	ctx := context.Background()
	reg := registry.New(registry.NewMemoryStore(), nil)
	for i := range tenants {
		if _, err := reg.Add(ctx, registry.Tenant{Issuer: issuer, ExternalID: fmt.Sprintf("org%05d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	const url = "http://127.0.0.1/mcp"
	srv, err := server.New(server.Options{
		ResourceURL: url, Verifier: tenantTokens{issuer}, Registry: reg,
		Limiter: ratelimit.NewMemory(nil), DefaultLimit: ratelimit.Limit{PerMinute: 100},
	}) // MetricsTopTenants 0: the default, 20
	if err != nil {
		t.Fatal(err)
	}
	for i := range tenants {
		if rec := serveOne(t, srv, url, fmt.Sprintf("tok-org%05d", i), `{"jsonrpc":"2.0","id":1,"method":"ping"}`); rec.Code != 200 {
			t.Fatalf("tenant %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	serveOne(t, srv, url, "", `{"jsonrpc":"2.0","id":1,"method":"ping"}`) // no tenant

	out := scrape(t, srv)
	labels := map[string]bool{}
	for _, m := range tenantLabelRE.FindAllStringSubmatch(out, -1) {
		labels[m[1]] = true
	}
	delete(labels, "") // requests without a tenant
	if len(labels) > top+1 || !labels["other"] {
		t.Fatalf("%d tenant label values, want at most %d including \"other\": %v", len(labels), top+1, labels)
	}
	var total float64
	for l := range labels {
		n, _ := sample(out, `tenantmcp_requests_total{outcome="ok",tenant="`+l+`"}`)
		total += n
		if l != "other" && n != 1 {
			t.Errorf("tenant %s: %v requests, want 1", l, n)
		}
	}
	if other, _ := sample(out, `tenantmcp_requests_total{outcome="ok",tenant="other"}`); total != tenants || other != tenants-top {
		t.Errorf("requests: %v in all, %v other; want %d and %d", total, other, tenants, tenants-top)
	}
	if n, _ := sample(out, `tenantmcp_requests_total{outcome="refused",tenant=""}`); n != 1 {
		t.Errorf("refused without a tenant: %v, want 1", n)
	}
	if n, _ := sample(out, `tenantmcp_request_duration_seconds_count{tenant="other"}`); n != tenants-top {
		t.Errorf("request duration count of other: %v, want %d", n, tenants-top)
	}
	if series := strings.Count(out, "\ntenantmcp_requests_total{"); series > 3*(top+1)+1 {
		t.Errorf("%d series of tenantmcp_requests_total, want at most %d", series, 3*(top+1)+1)
	}
}

// TestMetricsAfterRequests: after a few requests every metric family has
// sane values: requests and refusals, latencies, rate-limit rejections,
// tool calls, the audit writer's queue and the registry's and token
// verifier's caches.
func TestMetricsAfterRequests(t *testing.T) {
	f := setupAudit(t, nil, nil, func(o *server.Options) {
		o.Tools = append(o.Tools, observedTools()...)
		o.Limiter = ratelimit.NewMemory(nil)
		o.DefaultLimit = ratelimit.Limit{PerMinute: 1000, Burst: 1000}
	})
	acme := f.addTenant(t, "acme", nil)
	slow := f.addTenant(t, "slow", func(r *registry.Tenant) { r.RateLimit, r.RateBurst = 1, 1 })
	tok := f.genericToken("acme", "alice")
	serveOne(t, f.srv, f.url, tok, callBody("note", `{"text":"a"}`))
	serveOne(t, f.srv, f.url, tok, callBody("fail", `{}`))
	serveOne(t, f.srv, f.url, "", callBody("note", `{}`))
	slowTok := f.genericToken("slow", "bob")
	serveOne(t, f.srv, f.url, slowTok, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	serveOne(t, f.srv, f.url, slowTok, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)

	out := scrape(t, f.srv)
	a, s := string(acme.ID), string(slow.ID)
	for series, want := range map[string]float64{
		`tenantmcp_requests_total{outcome="ok",tenant="` + a + `"}`:                  1,
		`tenantmcp_requests_total{outcome="error",tenant="` + a + `"}`:               1,
		`tenantmcp_requests_total{outcome="refused",tenant=""}`:                      1,
		`tenantmcp_requests_total{outcome="ok",tenant="` + s + `"}`:                  1,
		`tenantmcp_requests_total{outcome="refused",tenant="` + s + `"}`:             1,
		`tenantmcp_requests_refused_total{reason="rate_limited_tenant"}`:             1,
		`tenantmcp_requests_refused_total{reason="no_token"}`:                        1,
		`tenantmcp_ratelimit_rejected_total{limit="tenant",tenant="` + s + `"}`:      1,
		`tenantmcp_ratelimit_rejected_total{limit="user",tenant="` + s + `"}`:        0,
		`tenantmcp_request_duration_seconds_count{tenant="` + a + `"}`:               2,
		`tenantmcp_request_duration_seconds_count{tenant=""}`:                        1,
		`tenantmcp_tool_calls_total{outcome="ok",tool="note"}`:                       1,
		`tenantmcp_tool_calls_total{outcome="error",tool="fail"}`:                    1,
		`tenantmcp_tool_call_duration_seconds_count{tool="note"}`:                    1,
		`tenantmcp_tool_call_duration_seconds_count{tool="fail"}`:                    1,
		`tenantmcp_tool_call_duration_seconds_bucket{tool="note",le="+Inf"}`:         1,
		`tenantmcp_requests_admitted_total`:                                          3,
		`tenantmcp_token_cache_misses_total`:                                         2, // acme's and slow's token, once each
		`tenantmcp_token_cache_hits_total`:                                           2,
		`tenantmcp_token_cache_entries`:                                              2,
		`tenantmcp_audit_events_dropped_total`:                                       0,
		`tenantmcp_audit_queue_capacity`:                                             audit.DefaultQueueSize,
		`tenantmcp_ratelimit_rejected_total{limit="concurrency",tenant="` + a + `"}`: 0,
	} {
		got, ok := sample(out, series)
		if !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if hits, _ := sample(out, "tenantmcp_registry_cache_hits_total"); hits < 2 {
		t.Errorf("registry cache hits %v, want at least 2 (each tenant's second request)", hits)
	}
	for _, name := range []string{"tenantmcp_registry_cache_misses_total ", "tenantmcp_audit_queue_depth ", "tenantmcp_audit_batch_duration_seconds_count ",
		"tenantmcp_request_duration_seconds_sum{tenant=\"" + a + "\"} "} {
		if !strings.Contains(out, "\n"+name) {
			t.Errorf("metrics lack %s", name)
		}
	}
	if sum, _ := sample(out, `tenantmcp_request_duration_seconds_sum{tenant="`+a+`"}`); sum <= 0 || sum > 60 {
		t.Errorf("request duration sum %v s, want a small positive number", sum)
	}
}
