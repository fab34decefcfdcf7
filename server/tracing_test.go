package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

// tracedFixture is a real server over HTTP whose spans go to an in-memory
// recorder.
type tracedFixture struct {
	*fixture
	spans *tracetest.SpanRecorder
}

func setupTraced(t *testing.T, mutate func(*server.Options)) *tracedFixture {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) {
		o.TracerProvider = tp
		o.Tools = append(o.Tools, observedTools()...)
		o.Tools = append(o.Tools, server.NewTool("reject", "Fails with an error for the caller.", func(ctx context.Context, in noteIn) (string, error) {
			return "", server.UserErrorf("no order %s", in.Text)
		}))
		if mutate != nil {
			mutate(o)
		}
	}})
	return &tracedFixture{fixture: f, spans: rec}
}

// wait returns the first n spans to end. The server ends a request's span
// after its answer is on its way, so the client may see the answer first.
func (f *tracedFixture) wait(t *testing.T, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ended := f.spans.Ended()
		if len(ended) >= n {
			return ended
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d spans ended, want %d: %v", len(ended), n, spanNames(ended))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	out := map[string]string{}
	for _, kv := range s.Attributes() {
		out[string(kv.Key)] = kv.Value.Emit()
	}
	return out
}

// requestSpan is the one server-kind span of spans (the request's).
func requestSpan(t *testing.T, spans []sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanKind() == trace.SpanKindServer {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d request spans, want 1: %v", len(found), spanNames(spans))
	}
	return found[0]
}

// checkPrivate fails if any span attribute or status holds one of secrets.
func checkPrivate(t *testing.T, spans []sdktrace.ReadOnlySpan, secrets ...string) {
	t.Helper()
	for _, s := range spans {
		for k, v := range attrs(s) {
			for _, secret := range secrets {
				if strings.Contains(v, secret) {
					t.Errorf("span %s attribute %s = %q holds %q", s.Name(), k, v, secret)
				}
			}
		}
		for _, secret := range secrets {
			if strings.Contains(s.Status().Description, secret) || strings.Contains(s.Name(), secret) {
				t.Errorf("span %s (status %q) holds %q", s.Name(), s.Status().Description, secret)
			}
		}
	}
}

// TestTracingToolCall: a tools/call through the real HTTP server gives a
// request span and, inside it, a tool span, both with the tenant's
// internal id, and never the token or the arguments.
func TestTracingToolCall(t *testing.T) {
	f := setupTraced(t, nil)
	acme := f.addTenant(t, "acme", nil)
	tok := f.genericToken("acme", "alice")
	if resp, body := post(t, f.url, "Bearer "+tok, callBody("note", `{"text":"s3cr3t-argument"}`), nil); resp.StatusCode != 200 || !strings.Contains(body, "noted") {
		t.Fatalf("call: %d %s", resp.StatusCode, body)
	}
	spans := f.wait(t, 2)
	req := requestSpan(t, spans)
	if req.Name() != "tools/call note" {
		t.Errorf("request span name %q", req.Name())
	}
	got := attrs(req)
	want := map[string]string{
		"tenant.id": string(acme.ID), "mcp.method.name": "tools/call", "gen_ai.tool.name": "note",
		"tenantmcp.outcome": "ok", "http.response.status_code": "200",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("request span %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if got["tenantmcp.request_id"] == "" {
		t.Errorf("request span without request id: %v", got)
	}
	if req.Status().Code != codes.Unset || req.Parent().IsValid() {
		t.Errorf("request span status %v, parent %v: want unset, a root", req.Status(), req.Parent())
	}
	var tool sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == "execute_tool note" {
			tool = s
		}
	}
	if tool == nil {
		t.Fatalf("no tool span: %v", spanNames(spans))
	}
	if tool.Parent().SpanID() != req.SpanContext().SpanID() || tool.SpanContext().TraceID() != req.SpanContext().TraceID() {
		t.Errorf("tool span is not the request span's child")
	}
	ta := attrs(tool)
	if ta["tenant.id"] != string(acme.ID) || ta["gen_ai.tool.name"] != "note" || ta["gen_ai.operation.name"] != "execute_tool" ||
		ta["tenantmcp.request_id"] != got["tenantmcp.request_id"] {
		t.Errorf("tool span attributes %v", ta)
	}
	if tool.StartTime().Before(req.StartTime()) || tool.EndTime().After(req.EndTime()) {
		t.Errorf("tool span [%s, %s] outside the request's [%s, %s]", tool.StartTime(), tool.EndTime(), req.StartTime(), req.EndTime())
	}
	checkPrivate(t, spans, "s3cr3t-argument", tok)
}

// TestTracingToolErrors: a tool's error gives both spans status Error and
// its class, never its message (which may hold the tenant's data).
func TestTracingToolErrors(t *testing.T) {
	f := setupTraced(t, nil)
	f.addTenant(t, "acme", nil)
	tok := f.genericToken("acme", "alice")
	for i, tc := range []struct{ tool, class, message string }{
		{"fail", "internal", "disk on fire"},
		{"reject", "tool_error", "no order 42"},
	} {
		if resp, body := post(t, f.url, "Bearer "+tok, callBody(tc.tool, `{"text":"42"}`), nil); resp.StatusCode != 200 || !strings.Contains(body, `"isError":true`) {
			t.Fatalf("%s: %d %s", tc.tool, resp.StatusCode, body)
		}
		spans := f.wait(t, 2*(i+1))[2*i:]
		for _, s := range spans {
			if s.Status().Code != codes.Error || s.Status().Description != tc.class || attrs(s)["error.type"] != tc.class {
				t.Errorf("%s: span %s status %v, error.type %q; want Error %q", tc.tool, s.Name(), s.Status(), attrs(s)["error.type"], tc.class)
			}
		}
		if got := attrs(requestSpan(t, spans))["tenantmcp.outcome"]; got != "error" {
			t.Errorf("%s: outcome %q", tc.tool, got)
		}
		checkPrivate(t, spans, tc.message)
	}
}

const (
	remoteTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	remoteSpan   = "00f067aa0ba902b7"
	remoteParent = "00-" + remoteTrace + "-" + remoteSpan + "-01"
	metaTrace    = "0af7651916cd43dd8448eb211c80319c"
	metaSpan     = "b7ad6b7169203331"
	metaParent   = "00-" + metaTrace + "-" + metaSpan + "-01"
)

// modernCall is a 2026-07-28 tools/call of "note" with _meta trace
// context (raw JSON members, "" for none) and its headers.
func modernCall(metaTrace string) (string, map[string]string) {
	meta := `"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}`
	if metaTrace != "" {
		meta += "," + metaTrace
	}
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"note","arguments":{"text":"x"},"_meta":{` + meta + `}}}`
	return body, map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "note"}
}

// TestTracingParent: a request's spans join the caller's trace, from the
// traceparent header or, on 2026-07-28, from params._meta, which wins over
// the header (then linked), as the OpenTelemetry MCP conventions ask.
func TestTracingParent(t *testing.T) {
	f := setupTraced(t, nil)
	f.addTenant(t, "acme", nil)
	tok := f.genericToken("acme", "alice")
	modernBody, modernHeaders := modernCall(`"traceparent":"` + metaParent + `","tracestate":"congo=t61rcWkgMzE"`)
	withHeader := func(h map[string]string) map[string]string {
		out := map[string]string{"Traceparent": remoteParent, "Tracestate": "rojo=00f067aa0ba902b7"}
		for k, v := range h {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name           string
		body           string
		hdr            map[string]string
		trace, parent  string
		state, linkTo  string
		protocol       string
		requestSpanTag string
	}{
		{name: "header", body: callBody("note", `{"text":"x"}`), hdr: withHeader(nil),
			trace: remoteTrace, parent: remoteSpan, state: "rojo=00f067aa0ba902b7"},
		{name: "2026-07-28 _meta", body: modernBody, hdr: modernHeaders,
			trace: metaTrace, parent: metaSpan, state: "congo=t61rcWkgMzE", protocol: "2026-07-28"},
		{name: "_meta wins over the header, which is linked", body: modernBody, hdr: withHeader(modernHeaders),
			trace: metaTrace, parent: metaSpan, state: "congo=t61rcWkgMzE", linkTo: remoteSpan, protocol: "2026-07-28"},
	}
	seen := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp, body := post(t, f.url, "Bearer "+tok, tt.body, tt.hdr); resp.StatusCode != 200 || !strings.Contains(body, "noted") {
				t.Fatalf("call: %d %s", resp.StatusCode, body)
			}
			spans := f.wait(t, seen+2)[seen:]
			seen += 2
			req := requestSpan(t, spans)
			p := req.Parent()
			if !p.IsRemote() || p.TraceID().String() != tt.trace || p.SpanID().String() != tt.parent {
				t.Errorf("parent %s/%s (remote %v), want %s/%s", p.TraceID(), p.SpanID(), p.IsRemote(), tt.trace, tt.parent)
			}
			if got := req.SpanContext().TraceState().String(); got != tt.state {
				t.Errorf("tracestate %q, want %q", got, tt.state)
			}
			for _, s := range spans {
				if s.SpanContext().TraceID().String() != tt.trace {
					t.Errorf("span %s in trace %s, want %s", s.Name(), s.SpanContext().TraceID(), tt.trace)
				}
			}
			var links []string
			for _, l := range req.Links() {
				links = append(links, l.SpanContext.SpanID().String())
			}
			if tt.linkTo == "" && len(links) != 0 || tt.linkTo != "" && (len(links) != 1 || links[0] != tt.linkTo) {
				t.Errorf("links %v, want %q", links, tt.linkTo)
			}
			if got := attrs(req)["mcp.protocol.version"]; tt.protocol != "" && got != tt.protocol {
				t.Errorf("protocol %q, want %q", got, tt.protocol)
			}
		})
	}
}

// malformedTraceparents are values W3C Trace Context refuses.
var malformedTraceparents = []string{
	"",
	"00",
	"00-" + remoteTrace + "-" + remoteSpan, // no flags
	"00-" + remoteTrace + "-" + remoteSpan + "-1",                   // short flags
	"00-" + remoteTrace[:31] + "-" + remoteSpan + "-01",             // short trace id
	"00-" + remoteTrace + "0-" + remoteSpan + "-01",                 // long trace id
	"00-" + remoteTrace + "-" + remoteSpan[:15] + "-01",             // short span id
	"00-" + strings.ToUpper(remoteTrace) + "-" + remoteSpan + "-01", // upper case
	"00-" + remoteTrace + "-" + strings.ToUpper(remoteSpan) + "-01",
	"ff-" + remoteTrace + "-" + remoteSpan + "-01",              // version ff
	"0g-" + remoteTrace + "-" + remoteSpan + "-01",              // not hex
	"00-" + strings.Repeat("0", 32) + "-" + remoteSpan + "-01",  // all-zero trace id
	"00-" + remoteTrace + "-" + strings.Repeat("0", 16) + "-01", // all-zero span id
	"00-" + remoteTrace + "-" + remoteSpan + "-01-extra",        // version 00 has no more fields
	"00-" + remoteTrace + "-" + remoteSpan + "-01-",             // nor a trailing dash
	"00_" + remoteTrace + "_" + remoteSpan + "_01",              // wrong separators
	"00-" + remoteTrace + "-" + remoteSpan + "-zz",              // flags not hex
	"00-" + remoteTrace + "-" + remoteSpan + "-ff",              // reserved flags for version 00
}

// TestTracingMalformedTraceparent: a malformed traceparent, in the header
// or in _meta (also one that is not a string), is ignored: the request
// gets a new trace of its own, and is served as usual.
func TestTracingMalformedTraceparent(t *testing.T) {
	f := setupTraced(t, nil)
	f.addTenant(t, "acme", nil)
	tok := f.genericToken("acme", "alice")
	type attempt struct {
		name string
		body string
		hdr  map[string]string
	}
	var attempts []attempt
	for _, tp := range malformedTraceparents {
		attempts = append(attempts, attempt{"header " + tp, callBody("note", `{"text":"x"}`), map[string]string{"Traceparent": tp, "Tracestate": "rojo=1"}})
		body, hdr := modernCall(fmt.Sprintf(`"traceparent":%q,"tracestate":"rojo=1"`, tp))
		attempts = append(attempts, attempt{"_meta " + tp, body, hdr})
	}
	// HTTP trims a header value's spaces, JSON does not.
	for _, member := range []string{`"traceparent":" ` + remoteParent + `"`, `"traceparent":12`, `"traceparent":null`, `"traceparent":{"v":"` + remoteParent + `"}`, `"traceparent":["` + remoteParent + `"]`} {
		body, hdr := modernCall(member)
		attempts = append(attempts, attempt{"_meta " + member, body, hdr})
	}
	// _meta that is not an object: the protocol library refuses the call,
	// the span still has no parent.
	attempts = append(attempts, attempt{"_meta a string", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"note","arguments":{"text":"x"},"_meta":"` + remoteParent + `"}}`, nil})
	seen := 0
	traces := map[trace.TraceID]bool{}
	for _, a := range attempts {
		resp, body := post(t, f.url, "Bearer "+tok, a.body, a.hdr)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", a.name, resp.StatusCode, body)
		}
		spans := f.wait(t, seen+1)
		var req sdktrace.ReadOnlySpan
		for len(spans) > seen && req == nil { // the request span ends last
			for _, s := range spans[seen:] {
				if s.SpanKind() == trace.SpanKindServer {
					req = s
				}
			}
			if req == nil {
				spans = f.wait(t, len(spans)+1)
			}
		}
		seen = len(spans)
		if req.Parent().IsValid() || len(req.Links()) != 0 {
			t.Errorf("%s: parent %v, links %v: want a new root", a.name, req.Parent(), req.Links())
		}
		if id := req.SpanContext().TraceID(); id.String() == remoteTrace || traces[id] {
			t.Errorf("%s: trace id %s reused", a.name, id)
		} else {
			traces[id] = true
		}
		if ts := req.SpanContext().TraceState().String(); ts != "" {
			t.Errorf("%s: tracestate %q kept without its traceparent", a.name, ts)
		}
	}
}

// TestTracingTenantsInterleaved: with two tenants' calls in flight at
// once, every span carries the id of the tenant whose request it is
// (told apart by the trace each caller chose), never the other's.
func TestTracingTenantsInterleaved(t *testing.T) {
	f := setupTraced(t, nil)
	tenants := map[string]*registry.Tenant{"a": f.addTenant(t, "acme", nil), "b": f.addTenant(t, "globex", nil)}
	tokens := map[string]string{"a": f.genericToken("acme", "alice"), "b": f.genericToken("globex", "bob")}
	const perTenant = 20
	var wg sync.WaitGroup
	for who := range tenants {
		for i := range perTenant {
			wg.Go(func() {
				tp := fmt.Sprintf("00-%s%030x-%016x-01", strings.Repeat(who, 2), i+1, i+1)
				body := callBody("note", `{"text":"x"}`)
				if i%2 == 1 {
					body = listBody
				}
				resp, b, err := postErr(f.url, "Bearer "+tokens[who], body, map[string]string{"Traceparent": tp})
				if err != nil || resp.StatusCode != 200 {
					t.Errorf("%s %d: %v %s", who, i, err, b)
				}
			})
		}
	}
	wg.Wait()
	spans := f.wait(t, 2*perTenant*3/2) // per tenant: 10 calls (2 spans) and 10 lists (1)
	for _, s := range spans {
		who := s.SpanContext().TraceID().String()[:1]
		if got, want := attrs(s)["tenant.id"], string(tenants[who].ID); got != want {
			t.Errorf("span %s of tenant %s's trace %s has tenant.id %q, want %q", s.Name(), who, s.SpanContext().TraceID(), got, want)
		}
	}
}

// TestTracingRefusals: refused requests get a span with status Error and
// the refusal's class; tenant.id only once the tenant is known (a
// suspended tenant's refusal has it, a request without a token not), and
// a refusal after the body was read still joins the trace in its _meta.
func TestTracingRefusals(t *testing.T) {
	f := setupTraced(t, func(o *server.Options) {
		o.Limiter = ratelimit.NewMemory(nil)
		o.DefaultLimit = ratelimit.Limit{PerMinute: 1, Burst: 1}
	})
	acme := f.addTenant(t, "acme", nil)
	frozen := f.addTenant(t, "frozen", func(r *registry.Tenant) { r.Status = registry.StatusSuspended })
	limited := f.addTenant(t, "limited", nil)
	scopedBody, scopedHeaders := modernCall(`"traceparent":"` + metaParent + `"`)
	scopedBody = strings.Replace(scopedBody, `"name":"note"`, `"name":"admin_reset"`, 1)
	scopedHeaders["Mcp-Name"] = "admin_reset"
	post(t, f.url, "Bearer "+f.genericToken("limited", "u"), listBody, nil) // spends the budget
	f.wait(t, 1)
	tests := []struct {
		name, auth, body string
		hdr              map[string]string
		status           int
		class, tenant    string
		spanName         string
		parent           string
	}{
		{name: "no token", body: listBody, status: 401, class: "no_token", spanName: "POST /mcp"},
		{name: "bad token", auth: "Bearer not.a.token", body: listBody, status: 401, class: "invalid_token", spanName: "POST /mcp",
			hdr: map[string]string{"Traceparent": remoteParent}, parent: remoteSpan},
		{name: "unknown tenant", auth: "Bearer " + f.genericToken("nobody", "u"), body: listBody, status: 403, class: "unknown_tenant", spanName: "POST /mcp"},
		{name: "suspended", auth: "Bearer " + f.genericToken("frozen", "u"), body: listBody, status: 403, class: "suspended", tenant: string(frozen.ID), spanName: "POST /mcp"},
		{name: "rate limited", auth: "Bearer " + f.genericToken("limited", "u"), body: listBody, status: 429, class: "rate_limited_tenant", tenant: string(limited.ID), spanName: "POST /mcp"},
		{name: "scope after _meta", auth: "Bearer " + f.genericToken("acme", "u"), body: scopedBody, hdr: scopedHeaders, status: 403,
			class: "insufficient_scope", tenant: string(acme.ID), spanName: "tools/call admin_reset", parent: metaSpan},
	}
	seen := 1
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, f.url, tt.auth, tt.body, tt.hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			spans := f.wait(t, seen+1)[seen:]
			seen++
			s := requestSpan(t, spans)
			a := attrs(s)
			if s.Name() != tt.spanName || s.Status().Code != codes.Error || s.Status().Description != tt.class ||
				a["error.type"] != tt.class || a["tenantmcp.outcome"] != "refused" || a["http.response.status_code"] != fmt.Sprint(tt.status) {
				t.Errorf("span %q status %v attributes %v; want %q, Error %q", s.Name(), s.Status(), a, tt.spanName, tt.class)
			}
			if got, ok := a["tenant.id"]; got != tt.tenant || ok != (tt.tenant != "") {
				t.Errorf("tenant.id %q (set %v), want %q", got, ok, tt.tenant)
			}
			if got := s.Parent().SpanID(); tt.parent != "" && got.String() != tt.parent || tt.parent == "" && s.Parent().IsValid() {
				t.Errorf("parent %s, want %q", got, tt.parent)
			}
			if s.StartTime().After(s.EndTime()) || s.StartTime().IsZero() {
				t.Errorf("span times %s .. %s", s.StartTime(), s.EndTime())
			}
		})
	}
}

// TestTracingAuditTraceID: with tracing on, the audit event and the access
// log line carry the trace id of the request's span, which is the one the
// collector sees: a new trace's, or _meta's over the header's.
func TestTracingAuditTraceID(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	store := audit.NewMemoryStore()
	f := setupAudit(t, store, nil, func(o *server.Options) { o.TracerProvider = tp })
	f.addTenant(t, "acme", nil)
	tok := f.genericToken("acme", "alice")
	modernBody, hdr := modernCall(`"traceparent":"` + metaParent + `"`)
	hdr["Traceparent"] = remoteParent
	post(t, f.url, "Bearer "+tok, modernBody, hdr)                                      // _meta's trace
	post(t, f.url, "Bearer "+tok, listBody, nil)                                        // a new trace
	post(t, f.url, "", listBody, map[string]string{"Traceparent": remoteParent})        // a refusal: the header's
	post(t, f.url, "", listBody, map[string]string{"Traceparent": "00-zz-not-a-trace"}) // malformed: a new trace
	flush(t, f.w)
	var spanTraces []string
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindServer {
			spanTraces = append(spanTraces, s.SpanContext().TraceID().String())
		}
	}
	var eventTraces []string
	for _, events := range storedEvents(t, store) {
		for _, e := range events {
			eventTraces = append(eventTraces, e.TraceID)
		}
	}
	if len(spanTraces) != 4 || len(eventTraces) != 4 {
		t.Fatalf("%d request spans, %d events: want 4 of each", len(spanTraces), len(eventTraces))
	}
	for _, id := range eventTraces {
		if !contains(spanTraces, id) {
			t.Errorf("event trace id %q is no span's (spans: %v)", id, spanTraces)
		}
	}
	if !contains(eventTraces, metaTrace) || !contains(eventTraces, remoteTrace) {
		t.Errorf("event trace ids %v: want %s (from _meta) and %s (refusal's header)", eventTraces, metaTrace, remoteTrace)
	}
}

// TestTracingOff: without a TracerProvider the server makes no spans, not
// even through OpenTelemetry's global provider.
func TestTracingOff(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	defer otel.SetTracerProvider(prev)
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) { o.Tools = append(o.Tools, observedTools()...) }})
	f.addTenant(t, "acme", nil)
	tok := f.genericToken("acme", "alice")
	for _, body := range []string{callBody("note", `{"text":"x"}`), listBody} {
		if rr := serveOne(t, f.srv, f.url, tok, body); rr.Code != 200 {
			t.Fatalf("%d %s", rr.Code, rr.Body)
		}
	}
	if rr := serveOne(t, f.srv, f.url, "", listBody); rr.Code != 401 {
		t.Fatalf("%d", rr.Code)
	}
	if n := len(rec.Ended()) + len(rec.Started()); n != 0 {
		t.Errorf("%d spans with tracing off", n)
	}
}

// BenchmarkTracedToolCall measures what tracing costs a tools/call: off
// (no TracerProvider), and on with every span recorded, then dropped.
// The caller is a LocalIdentity, so no token is verified.
func BenchmarkTracedToolCall(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("tracing=%v", on), func(b *testing.B) {
			reg := registry.New(registry.NewMemoryStore(), nil)
			if _, err := reg.Add(context.Background(), registry.Tenant{Issuer: "urn:bench", ExternalID: "acme"}); err != nil {
				b.Fatal(err)
			}
			opts := server.Options{
				ResourceURL:   "http://127.0.0.1/mcp",
				LocalIdentity: &auth.Identity{Issuer: "urn:bench", TenantID: "acme", UserID: "alice"},
				Registry:      reg,
				Tools:         []server.Tool{server.NewTool("echo", "echo", func(ctx context.Context, in echoIn) (string, error) { return in.Text, nil })},
			}
			if on {
				tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(discardSpans{}))
				defer tp.Shutdown(context.Background())
				opts.TracerProvider = tp
			}
			srv, err := server.New(opts)
			if err != nil {
				b.Fatal(err)
			}
			run(b, srv, "")
		})
	}
}

// discardSpans is a span processor that keeps nothing.
type discardSpans struct{}

func (discardSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (discardSpans) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (discardSpans) Shutdown(context.Context) error                  { return nil }
func (discardSpans) ForceFlush(context.Context) error                { return nil }
