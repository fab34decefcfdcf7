package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/server"
)

// These tests put one tenant at each limit against abuse (limits.go,
// connlimit.go) through the real HTTP server and check what it gets, that
// the refusal is counted and audited, and that another tenant is still
// served.

// nested is n arrays inside one another.
func nested(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// takeTool accepts any JSON values as its arguments a and b.
var takeTool = server.NewTool("take", "Accepts any values as a and b.", func(ctx context.Context, in struct {
	A json.RawMessage `json:"a"`
	B json.RawMessage `json:"b"`
}) (string, error) {
	return "took " + strconv.Itoa(len(in.A)+len(in.B)) + " bytes", nil
})

// rpcResponse decodes a JSON-RPC response body, plain or as one SSE event.
type rpcResponse struct {
	ID     json.RawMessage `json:"id"`
	Result struct {
		IsError bool `json:"isError"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decodeRPC(t *testing.T, body string) rpcResponse {
	t.Helper()
	if strings.HasPrefix(body, "event:") || strings.HasPrefix(body, "data:") {
		body = sseData(body)
	}
	var r rpcResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("not a JSON-RPC response: %v: %q", err, body)
	}
	return r
}

func (r rpcResponse) text() string {
	var parts []string
	for _, c := range r.Result.Content {
		parts = append(parts, c.Text)
	}
	return strings.Join(parts, "\n")
}

// refusalsOf returns the refusal events with the given reason, by chain.
func refusalsOf(t *testing.T, f *auditFixture, reason string) map[string][]*audit.Event {
	t.Helper()
	flush(t, f.w)
	out := map[string][]*audit.Event{}
	for chain, events := range storedEvents(t, f.store) {
		for _, e := range events {
			if e.Kind == audit.KindRefusal && e.ErrorClass == reason {
				out[chain] = append(out[chain], e)
			}
		}
	}
	return out
}

// TestHeaderSizeLimit: a header block over MaxHeaderBytes gets 431 with a
// JSON-RPC body, counted and audited; one over twice the limit is cut off
// by net/http with a bare 431; the same tenant's and another tenant's
// normal requests, on connections already open, are served.
func TestHeaderSizeLimit(t *testing.T) {
	store := audit.NewMemoryStore()
	w, err := audit.NewWriter(store, auditKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeWriter(t, w) }) // after Serve has returned
	f := &auditFixture{store: store, w: w, fixture: serveSlow(t, func(o *server.Options) {
		o.MaxHeaderBytes = 8 << 10
		o.Audit = w
	})}
	a := f.addTenant(t, "acme", nil)
	f.addTenant(t, "globex", nil)
	acme, globex := "Bearer "+f.genericToken("acme", "u"), "Bearer "+f.genericToken("globex", "u")
	if resp, body := post(t, f.url, globex, listBody, nil); resp.StatusCode != 200 {
		t.Fatalf("globex before: %d %s", resp.StatusCode, body)
	}

	resp, body := post(t, f.url, acme, listBody, map[string]string{"X-Pad": strings.Repeat("p", 10<<10)})
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("10 KiB header: %d %s", resp.StatusCode, body)
	}
	if r := decodeRPC(t, body); r.Error == nil || r.Error.Code != -32600 || !strings.Contains(r.Error.Message, "at most 8192 bytes") {
		t.Fatalf("10 KiB header: body %s", body)
	}
	// A header block the handler never sees (over twice the limit):
	// net/http answers it and closes the connection.
	if resp, _, err := postErr(f.url, acme, listBody, map[string]string{"X-Pad": strings.Repeat("p", 40<<10)}); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("40 KiB header: %v %v", resp, err)
	}
	// Just under the limit is served.
	if resp, body := post(t, f.url, acme, listBody, map[string]string{"X-Pad": strings.Repeat("p", 6<<10)}); resp.StatusCode != 200 {
		t.Fatalf("6 KiB header: %d %s", resp.StatusCode, body)
	}
	for _, who := range []string{globex, acme} {
		if resp, body := post(t, f.url, who, listBody, nil); resp.StatusCode != 200 {
			t.Fatalf("after the oversized headers: %d %s", resp.StatusCode, body)
		}
	}
	if m := f.metrics(t); !strings.Contains(m, `tenantmcp_requests_refused_total{reason="header_too_large"} 1`) {
		t.Errorf("metrics do not count the refusal:\n%s", metricLines(m, "refused_total"))
	}
	// Refused before the token is read: the system chain, not acme's.
	got := refusalsOf(t, f, "header_too_large")
	if len(got[audit.SystemChain]) != 1 || len(got[string(a.ID)]) != 0 {
		t.Fatalf("audit refusals by chain: %v", got)
	}
}

// TestJSONDepthLimit: a body nested deeper than MaxJSONDepth gets 400 with
// JSON-RPC -32600 naming the limit, in the tenant's audit chain; exactly
// the limit, and brackets inside strings, are served; another tenant is
// served throughout.
func TestJSONDepthLimit(t *testing.T) {
	f := setupAudit(t, nil, nil, func(o *server.Options) {
		o.MaxJSONDepth = 16
		o.Tools = append(o.Tools, takeTool)
	})
	a := f.addTenant(t, "acme", nil)
	f.addTenant(t, "globex", nil)
	acme, globex := "Bearer "+f.genericToken("acme", "u"), "Bearer "+f.genericToken("globex", "u")

	// The message itself is 3 deep ({ params { arguments {), so 13 more
	// arrays reach 16 and 14 exceed it.
	resp, body := post(t, f.url, acme, toolCall("take", `{"a":`+nested(14)+`}`), nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("depth 17: %d %s", resp.StatusCode, body)
	}
	r := decodeRPC(t, body)
	if r.Error == nil || r.Error.Code != -32600 || !strings.Contains(r.Error.Message, "at most 16 levels") || string(r.ID) != "7" {
		t.Fatalf("depth 17: body %s", body)
	}
	for name, args := range map[string]string{
		"depth 16":                   `{"a":` + nested(13) + `}`,
		"brackets in a string":       `{"a":"` + strings.Repeat("[{", 100) + `"}`,
		"escaped quotes and bracket": `{"a":"\\\"[[[[[[[[[[[[[[[[[[[[\\\\","b":` + nested(13) + `}`,
	} {
		if resp, body := post(t, f.url, acme, toolCall("take", args), nil); resp.StatusCode != 200 || decodeRPC(t, body).Result.IsError {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	if resp, body := post(t, f.url, globex, toolCall("whoami", `{}`), nil); resp.StatusCode != 200 || !strings.Contains(body, "globex") {
		t.Fatalf("globex: %d %s", resp.StatusCode, body)
	}
	if m := f.metrics(t); !strings.Contains(m, `tenantmcp_requests_refused_total{reason="json_too_deep"} 1`) {
		t.Errorf("metrics do not count the refusal:\n%s", metricLines(m, "refused_total"))
	}
	if got := refusalsOf(t, f, "json_too_deep"); len(got[string(a.ID)]) != 1 || len(got) != 1 {
		t.Fatalf("audit refusals by chain: %v", got)
	}
}

// TestArgumentSizeLimit: a tool call with arguments over MaxArgumentBytes
// is answered with a tool error result naming the limit, runs nothing, and
// is audited as a refusal in the tenant's chain; smaller calls, the
// tenant's and another tenant's, are served.
func TestArgumentSizeLimit(t *testing.T) {
	f := setupAudit(t, nil, nil, func(o *server.Options) { o.MaxArgumentBytes = 1024 })
	a := f.addTenant(t, "acme", nil)
	f.addTenant(t, "globex", nil)
	acme, globex := "Bearer "+f.genericToken("acme", "u"), "Bearer "+f.genericToken("globex", "u")

	big := toolCall("put_document", `{"key":"big","content":"`+strings.Repeat("x", 2000)+`"}`)
	resp, body := post(t, f.url, acme, big, nil)
	r := decodeRPC(t, body)
	if resp.StatusCode != 200 || !r.Result.IsError || !strings.Contains(r.text(), "tool arguments too large") || !strings.Contains(r.text(), "at most 1024") {
		t.Fatalf("2 KB arguments: %d %s", resp.StatusCode, body)
	}
	if _, body := post(t, f.url, acme, toolCall("get_document", `{"key":"big"}`), nil); !decodeRPC(t, body).Result.IsError {
		t.Fatalf("the refused call stored its document: %s", body)
	}
	for _, who := range []string{acme, globex} {
		resp, body := post(t, f.url, who, toolCall("put_document", `{"key":"small","content":"`+strings.Repeat("x", 900)+`"}`), nil)
		if resp.StatusCode != 200 || decodeRPC(t, body).Result.IsError {
			t.Fatalf("900-byte content: %d %s", resp.StatusCode, body)
		}
	}
	if m := f.metrics(t); !strings.Contains(m, `tenantmcp_requests_refused_total{reason="arguments_too_large"} 1`) {
		t.Errorf("metrics do not count the refusal:\n%s", metricLines(m, "refused_total"))
	}
	got := refusalsOf(t, f, "arguments_too_large")
	if len(got) != 1 || len(got[string(a.ID)]) != 1 {
		t.Fatalf("audit refusals by chain: %v", got)
	}
	if e := got[string(a.ID)][0]; e.Tool != "put_document" || e.Outcome != audit.OutcomeRefused || e.ArgsSize < 2000 {
		t.Fatalf("refusal event: %+v", e)
	}
}

// TestArgumentSizeLimitUndecoded: without the audit trail (or anything
// else that decodes bodies before the protocol library) the limit holds
// the same, also when the arguments' text stands first elsewhere in the
// message, and the refusal names their real size.
func TestArgumentSizeLimitUndecoded(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) { o.MaxArgumentBytes = 1024 }})
	f.addTenant(t, "acme", nil)
	f.addTenant(t, "globex", nil)
	acme := "Bearer " + f.genericToken("acme", "u")
	args := `{"key":"big","content":"` + strings.Repeat("x", 2000) + `"}`
	size := strconv.Itoa(len(args))
	for name, body := range map[string]string{
		"plain":            toolCall("put_document", args),
		"same text before": `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"put_document","other":` + args + `,"arguments":` + args + `}}`,
		"escaped method":   `{"jsonrpc":"2.0","id":7,"method":"tools\/call","params":{"name":"put_document","arguments":` + args + `}}`,
	} {
		resp, raw := post(t, f.url, acme, body, nil)
		r := decodeRPC(t, raw)
		if resp.StatusCode != 200 || !r.Result.IsError || !strings.Contains(r.text(), "tool arguments too large: "+size+" bytes") {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, raw)
		}
	}
	if _, raw := post(t, f.url, acme, toolCall("get_document", `{"key":"big"}`), nil); !decodeRPC(t, raw).Result.IsError {
		t.Fatalf("a refused call stored its document: %s", raw)
	}
	if resp, raw := post(t, f.url, "Bearer "+f.genericToken("globex", "u"), toolCall("put_document", `{"key":"k","content":"small"}`), nil); resp.StatusCode != 200 || decodeRPC(t, raw).Result.IsError {
		t.Fatalf("globex: %d %s", resp.StatusCode, raw)
	}
	if m := f.metrics(t); !strings.Contains(m, `tenantmcp_requests_refused_total{reason="arguments_too_large"} 3`) {
		t.Errorf("metrics do not count the refusals:\n%s", metricLines(m, "refused_total"))
	}
}

// holder is a tool that holds its calls until the test lets them go.
type holder struct{ entered, release chan struct{} }

func newHolder() *holder {
	return &holder{entered: make(chan struct{}, 64), release: make(chan struct{})}
}

func (h *holder) tool() server.Tool {
	return server.NewTool("hold", "Blocks until the test releases it.", func(ctx context.Context, _ empty) (string, error) {
		h.entered <- struct{}{}
		select {
		case <-h.release:
			return "released", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
}

// TestReplicaConcurrencyCap: the replica's cap (MaxConcurrentRequests)
// refuses with 503 and Retry-After at once, and a tenant at its own cap
// (MaxConcurrentPerTenant) is refused with 429 before it takes a replica
// slot, so another tenant is still served.
func TestReplicaConcurrencyCap(t *testing.T) {
	h := newHolder()
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) {
		o.MaxConcurrentPerTenant = 2
		o.MaxConcurrentRequests = 3
		o.Tools = append(o.Tools, h.tool())
	}})
	for _, org := range []string{"acme", "globex", "initech"} {
		f.addTenant(t, org, nil)
	}
	token := func(org string) string { return "Bearer " + f.genericToken(org, "u") }
	hold := toolCall("hold", `{}`)
	done := make(chan int, 8)
	start := func(org string) {
		go func() {
			resp, _, err := postErr(f.url, token(org), hold, nil)
			if err != nil {
				done <- -1
				return
			}
			done <- resp.StatusCode
		}()
		<-h.entered
	}
	start("acme")
	start("acme")
	// acme is at its cap: refused as acme, however often it tries, and
	// none of those takes one of the replica's slots.
	for range 5 {
		resp, body := post(t, f.url, token("acme"), listBody, nil)
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "for this tenant") {
			t.Fatalf("acme over its cap: %d %s", resp.StatusCode, body)
		}
	}
	if resp, body := post(t, f.url, token("globex"), listBody, nil); resp.StatusCode != 200 {
		t.Fatalf("globex while acme is at its cap: %d %s", resp.StatusCode, body)
	}
	// globex takes the last slot: now the replica is full.
	start("globex")
	for _, org := range []string{"initech", "globex"} {
		resp, body := post(t, f.url, token(org), listBody, nil)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
			t.Fatalf("%s with the replica full: %d %s", org, resp.StatusCode, body)
		}
		if msg := errorMessage(t, body); !strings.Contains(msg, "server busy") || strings.Contains(msg, "acme") {
			t.Fatalf("%s with the replica full: %s", org, body)
		}
	}
	m := f.metrics(t)
	for _, want := range []string{
		`tenantmcp_requests_refused_total{reason="server_busy"} 2`,
		`tenantmcp_requests_refused_total{reason="concurrency"} 5`,
		`tenantmcp_requests_in_flight 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, metricLines(m, "refused_total", "in_flight"))
		}
	}
	close(h.release)
	for range 3 {
		if code := <-done; code != 200 {
			t.Fatalf("held call ended with %d", code)
		}
	}
	for _, org := range []string{"acme", "globex", "initech"} {
		if resp, body := post(t, f.url, token(org), listBody, nil); resp.StatusCode != 200 {
			t.Fatalf("%s after the held calls: %d %s", org, resp.StatusCode, body)
		}
	}
	if m := f.metrics(t); !strings.Contains(m, "tenantmcp_requests_in_flight 0") {
		t.Errorf("slots not given back:\n%s", metricLines(m, "in_flight"))
	}
}

// TestLimitOptionsValidated: New refuses out-of-range limits, naming them.
func TestLimitOptionsValidated(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims})
	for name, tt := range map[string]struct {
		mutate func(*server.Options)
		want   string
	}{
		"negative header":         {func(o *server.Options) { o.MaxHeaderBytes = -1 }, "MaxHeaderBytes is -1"},
		"negative depth":          {func(o *server.Options) { o.MaxJSONDepth = -1 }, "MaxJSONDepth is -1"},
		"negative requests":       {func(o *server.Options) { o.MaxConcurrentRequests = -1 }, "MaxConcurrentRequests is -1"},
		"negative admin requests": {func(o *server.Options) { o.MaxConcurrentAdminRequests = -1 }, "MaxConcurrentAdminRequests is -1"},
		"negative conns":          {func(o *server.Options) { o.MaxConnsPerClient = -1 }, "MaxConnsPerClient is -1"},
		"arguments over body":     {func(o *server.Options) { o.MaxBodyBytes, o.MaxArgumentBytes = 1000, 2000 }, "MaxArgumentBytes (2000) is more than MaxBodyBytes (1000)"},
		"arguments over 1 MiB":    {func(o *server.Options) { o.MaxArgumentBytes = 2 << 20 }, "is more than MaxBodyBytes (1048576)"},
	} {
		opts := server.Options{ResourceURL: f.url, Verifier: f.verifier, Registry: f.reg}
		tt.mutate(&opts)
		if _, err := server.New(opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tt.want)
		}
	}
	// A small body lowers the default argument limit with it.
	if _, err := server.New(server.Options{ResourceURL: f.url, Verifier: f.verifier, Registry: f.reg, MaxBodyBytes: 1000}); err != nil {
		t.Fatal(err)
	}
}

// metricLines returns the lines of s that contain any of subs.
func metricLines(s string, subs ...string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(line, sub) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
