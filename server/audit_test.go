package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

var auditKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

// auditFixture is a server with an audit writer.
type auditFixture struct {
	*fixture
	store audit.Store
	w     *audit.Writer
}

func setupAudit(t *testing.T, store audit.Store, wopts *audit.WriterOptions, mutate func(*server.Options)) *auditFixture {
	t.Helper()
	if store == nil {
		store = audit.NewMemoryStore()
	}
	w, err := audit.NewWriter(store, auditKey, wopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeWriter(t, w) })
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) {
		o.Audit = w
		if mutate != nil {
			mutate(o)
		}
	}})
	return &auditFixture{fixture: f, store: store, w: w}
}

// post sends one JSON-RPC message with the given Authorization ("" =
// none) and extra headers.
func post(t *testing.T, url, authorization, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	resp, b, err := postErr(url, authorization, body, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// postErr is post for goroutines other than the test's.
func postErr(url, authorization, body string, hdr map[string]string) (*http.Response, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func toolCall(name, args string) string {
	return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + name + `","arguments":` + args + `}}`
}

const listBody = `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`

func traceparent(i int) string { return fmt.Sprintf("00-%032x-%016x-01", i+1, i+1) }

// storedEvents verifies every chain of store (links, and checkpoints
// signed with auditKey) and returns its events by chain.
func storedEvents(t *testing.T, store audit.Store) map[string][]*audit.Event {
	t.Helper()
	ctx := context.Background()
	chains, err := store.Chains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*audit.Event{}
	for _, c := range chains {
		v := audit.NewVerifier(c)
		hashes := map[uint64]audit.Hash{}
		err := store.Scan(ctx, c, 1, func(r *audit.Record) error {
			if err := v.Next(r); err != nil {
				return err
			}
			hashes[r.Seq] = r.Hash
			e, err := r.Event()
			if err != nil {
				return err
			}
			if e.Chain() != c {
				t.Errorf("event of chain %q stored in chain %q", e.Chain(), c)
			}
			out[c] = append(out[c], e)
			return nil
		})
		if err != nil {
			t.Fatalf("chain %q: %v", c, err)
		}
		cps, err := store.Checkpoints(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, cp := range cps {
			if err := cp.VerifySignature(auditKey.Public().(ed25519.PublicKey)); err != nil {
				t.Fatal(err)
			}
			if err := v.Check(&cp, func(seq uint64) (audit.Hash, bool) { h, ok := hashes[seq]; return h, ok }); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

func flush(t *testing.T, w *audit.Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// closeWriter closes w, failing (rather than hanging) if it cannot drain:
// Close waits for every reserved slot to be committed.
func closeWriter(t *testing.T, w *audit.Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Error(err)
	}
}

// TestAuditOneEventPerRequest: requests of every kind (tool calls, other
// methods, tool errors, and refusals without a token, with a bad token,
// for an unknown tenant, over the rate limit and without a scope) each
// leave exactly one event, in the right chain, with the right fields.
func TestAuditOneEventPerRequest(t *testing.T) {
	limiter := ratelimit.NewMemory(nil)
	t.Cleanup(func() { limiter.Close() })
	f := setupAudit(t, nil, nil, func(o *server.Options) { o.Limiter = limiter })
	acme := f.addTenant(t, "acme", nil)
	globex := f.addTenant(t, "globex", nil)
	slow := f.addTenant(t, "slow", func(r *registry.Tenant) { r.RateLimit, r.RateBurst = 1, 1 })
	iss := f.issuer

	type req struct {
		name, authz, body string
		hdr               map[string]string
		status            int
		chain             string
		want              audit.Event // compared without time, request id, latency, trace id, args hash
	}
	reqs := []req{
		{name: "tool call", authz: "Bearer " + f.genericToken("acme", "alice"), body: toolCall("whoami", `{}`), status: 200, chain: string(acme.ID),
			hdr:  map[string]string{"Mcp-Protocol-Version": "2025-11-25"},
			want: audit.Event{Tenant: string(acme.ID), ExternalID: "acme", Issuer: iss, User: "alice", Kind: audit.KindToolCall, Method: "tools/call", Tool: "whoami", Outcome: audit.OutcomeOK, Protocol: "2025-11-25", ArgsSize: 2}},
		{name: "tools/list", authz: "Bearer " + f.genericToken("globex", "bob"), body: listBody, status: 200, chain: string(globex.ID),
			want: audit.Event{Tenant: string(globex.ID), ExternalID: "globex", Issuer: iss, User: "bob", Kind: audit.KindRequest, Method: "tools/list", Outcome: audit.OutcomeOK}},
		{name: "tool error", authz: "Bearer " + f.genericToken("acme", "alice"), body: toolCall("get_document", `{"key":"missing"}`), status: 200, chain: string(acme.ID),
			want: audit.Event{Tenant: string(acme.ID), ExternalID: "acme", Issuer: iss, User: "alice", Kind: audit.KindToolCall, Method: "tools/call", Tool: "get_document", Outcome: audit.OutcomeError, ErrorClass: "tool_error", ArgsSize: 17}},
		{name: "unknown tool", authz: "Bearer " + f.genericToken("acme", "alice"), body: toolCall("nope", `{}`), status: 200, chain: string(acme.ID),
			want: audit.Event{Tenant: string(acme.ID), ExternalID: "acme", Issuer: iss, User: "alice", Kind: audit.KindToolCall, Method: "tools/call", Tool: "nope", Outcome: audit.OutcomeError, ErrorClass: "tool_not_found", ArgsSize: 2}},
		{name: "unknown method", authz: "Bearer " + f.genericToken("acme", "alice"), body: `{"jsonrpc":"2.0","id":3,"method":"no/such"}`, status: 200, chain: string(acme.ID),
			want: audit.Event{Tenant: string(acme.ID), ExternalID: "acme", Issuer: iss, User: "alice", Kind: audit.KindRequest, Method: "no/such", Outcome: audit.OutcomeError, ErrorClass: "protocol_error"}},
		{name: "no token", body: listBody, status: 401, chain: audit.SystemChain,
			want: audit.Event{Kind: audit.KindRefusal, Outcome: audit.OutcomeRefused, ErrorClass: "no_token"}},
		{name: "bad token", authz: "Bearer not-a-jwt", body: listBody, status: 401, chain: audit.SystemChain,
			want: audit.Event{Kind: audit.KindRefusal, Outcome: audit.OutcomeRefused, ErrorClass: "invalid_token"}},
		{name: "unknown tenant", authz: "Bearer " + f.genericToken("initech", "peter"), body: listBody, status: 403, chain: audit.SystemChain,
			want: audit.Event{ExternalID: "initech", Issuer: iss, User: "peter", Kind: audit.KindRefusal, Outcome: audit.OutcomeRefused, ErrorClass: "unknown_tenant"}},
		{name: "within the rate limit", authz: "Bearer " + f.genericToken("slow", "sam"), body: listBody, status: 200, chain: string(slow.ID),
			want: audit.Event{Tenant: string(slow.ID), ExternalID: "slow", Issuer: iss, User: "sam", Kind: audit.KindRequest, Method: "tools/list", Outcome: audit.OutcomeOK}},
		{name: "rate limited", authz: "Bearer " + f.genericToken("slow", "sam"), body: listBody, status: 429, chain: string(slow.ID),
			want: audit.Event{Tenant: string(slow.ID), ExternalID: "slow", Issuer: iss, User: "sam", Kind: audit.KindRefusal, Outcome: audit.OutcomeRefused, ErrorClass: "rate_limited_tenant"}},
		{name: "DNS rebinding", authz: "Bearer " + f.genericToken("acme", "alice"), body: listBody, status: 403, chain: audit.SystemChain,
			hdr:  map[string]string{"Host": "attacker.example"},
			want: audit.Event{Kind: audit.KindRefusal, Outcome: audit.OutcomeRefused, ErrorClass: "host"}},
		{name: "missing scope", authz: "Bearer " + f.genericToken("acme", "alice"), body: toolCall("admin_reset", `{}`), status: 403, chain: string(acme.ID),
			want: audit.Event{Tenant: string(acme.ID), ExternalID: "acme", Issuer: iss, User: "alice", Kind: audit.KindRefusal, Method: "tools/call", Tool: "admin_reset", Outcome: audit.OutcomeRefused, ErrorClass: "insufficient_scope", ArgsSize: 2}},
	}
	for i, r := range reqs {
		hdr := map[string]string{"Traceparent": traceparent(i)}
		for k, v := range r.hdr {
			hdr[k] = v
		}
		if resp, body := post(t, f.url, r.authz, r.body, hdr); resp.StatusCode != r.status {
			t.Fatalf("%s: status %d, want %d: %s", r.name, resp.StatusCode, r.status, body)
		}
	}
	// A malformed traceparent is not recorded.
	if resp, _ := post(t, f.url, "", listBody, map[string]string{"Traceparent": "00-zz-not-a-trace"}); resp.StatusCode != 401 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	closeWriter(t, f.w)

	byChain := storedEvents(t, f.store)
	total := 0
	byTrace := map[string]*audit.Event{}
	ids := map[string]bool{}
	var untraced []*audit.Event
	for chain, events := range byChain {
		for _, e := range events {
			total++
			if e.RequestID == "" || ids[e.RequestID] {
				t.Errorf("chain %q: request id %q missing or repeated", chain, e.RequestID)
			}
			ids[e.RequestID] = true
			if e.LatencyMicros <= 0 || e.Time.IsZero() {
				t.Errorf("event %+v: no time or latency", e)
			}
			if e.TraceID == "" {
				untraced = append(untraced, e)
				continue
			}
			byTrace[e.TraceID] = e
		}
	}
	if total != len(reqs)+1 {
		t.Fatalf("%d events for %d requests", total, len(reqs)+1)
	}
	if len(untraced) != 1 || untraced[0].ErrorClass != "no_token" {
		t.Fatalf("events without a trace id: %+v, want the one with a malformed traceparent", untraced)
	}
	ignore := cmpopts.IgnoreFields(audit.Event{}, "Time", "RequestID", "LatencyMicros", "TraceID", "ArgsSHA256")
	for i, r := range reqs {
		id := traceparent(i)[3:35]
		e, ok := byTrace[id]
		if !ok {
			t.Errorf("%s: no event", r.name)
			continue
		}
		if e.Chain() != r.chain {
			t.Errorf("%s: in chain %q, want %q", r.name, e.Chain(), r.chain)
		}
		if diff := cmp.Diff(&r.want, e, ignore); diff != "" {
			t.Errorf("%s: event (-want +got):\n%s", r.name, diff)
		}
		if (e.ArgsSize > 0) != (e.ArgsSHA256 != "") || e.Args != nil {
			t.Errorf("%s: args size %d sha %q args %s", r.name, e.ArgsSize, e.ArgsSHA256, e.Args)
		}
	}
	// Every chain got its final checkpoint on Close.
	for chain, events := range byChain {
		cps, _ := f.store.Checkpoints(context.Background(), chain)
		if len(cps) == 0 || cps[len(cps)-1].Count != uint64(len(events)) {
			t.Errorf("chain %q: checkpoints %+v, want one at %d", chain, cps, len(events))
		}
	}
}

// TestAuditArguments: tool arguments are stored only for a tenant whose
// audit_arguments flag (or the deployment default) says so; every tool
// call event has their size and SHA-256.
func TestAuditArguments(t *testing.T) {
	args := `{ "key": "notes/<plan>.md", "content": "secret" }`
	compact := `{"key":"notes/\u003cplan\u003e.md","content":"secret"}` // as an event stores JSON
	sum := sha256.Sum256([]byte(compact))
	for _, tc := range []struct {
		name       string
		deployment bool
		flag       *bool
		stored     bool
	}{
		{"default: not stored", false, nil, false},
		{"tenant flag on", false, ptr(true), true},
		{"deployment default on", true, nil, true},
		{"tenant flag off overrides the deployment", true, ptr(false), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setupAudit(t, nil, nil, func(o *server.Options) { o.AuditArguments = tc.deployment })
			rec := f.addTenant(t, "acme", func(r *registry.Tenant) {
				if tc.flag != nil {
					r.Flags = map[string]bool{server.FlagAuditArguments: *tc.flag}
				}
			})
			if resp, body := post(t, f.url, "Bearer "+f.genericToken("acme", "alice"), toolCall("put_document", args), nil); resp.StatusCode != 200 || strings.Contains(body, "isError\":true") {
				t.Fatalf("put_document: %d %s", resp.StatusCode, body)
			}
			flush(t, f.w)
			events := storedEvents(t, f.store)[string(rec.ID)]
			if len(events) != 1 {
				t.Fatalf("%d events", len(events))
			}
			e := events[0]
			if e.ArgsSize != len(compact) || e.ArgsSHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("args size %d sha %s, want %d %x", e.ArgsSize, e.ArgsSHA256, len(compact), sum)
			}
			switch {
			case tc.stored && string(e.Args) != compact:
				t.Errorf("args %s, want %s", e.Args, compact)
			case !tc.stored && e.Args != nil:
				t.Errorf("args stored: %s", e.Args)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// holdTool blocks its calls until release is closed.
type holdTool struct {
	entered chan struct{}
	release chan struct{}
}

func (h *holdTool) tool() server.Tool {
	return server.NewTool("hold", "Blocks until the test releases it.", func(ctx context.Context, _ empty) (string, error) {
		h.entered <- struct{}{}
		<-h.release
		return "released", nil
	})
}

// TestAuditShutdownCountsEveryRequest: requests under load, some still in
// flight when Serve's context is cancelled; after Serve returns and the
// writer is closed, every request that was answered has exactly one event
// and every chain verifies, up to a final checkpoint.
func TestAuditShutdownCountsEveryRequest(t *testing.T) {
	hold := &holdTool{entered: make(chan struct{}, 16), release: make(chan struct{})}
	f := setup(t, setupOptions{claims: genericClaims})
	tenants := []string{"acme", "globex", "initech"}
	for _, name := range tenants {
		f.addTenant(t, name, nil)
	}
	store := audit.NewMemoryStore()
	w, err := audit.NewWriter(store, auditKey, &audit.WriterOptions{BatchSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{
		ResourceURL: f.url, Verifier: f.verifier, Registry: f.reg, Audit: w,
		Tools: append(testTools(), hold.tool()),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln, 30*time.Second) }()
	url := "http://" + ln.Addr().String() + "/mcp"

	var mu sync.Mutex
	answered := 0
	send := func(authz, body string) {
		if _, _, err := postErr(url, authz, body, nil); err != nil {
			t.Error(err) // every request is sent before the shutdown, so every one is answered
			return
		}
		mu.Lock()
		answered++
		mu.Unlock()
	}
	const held = 8
	var inflight sync.WaitGroup
	for i := range held {
		inflight.Go(func() { send("Bearer "+f.genericToken(tenants[i%3], "u"), toolCall("hold", `{}`)) })
	}
	for range held {
		<-hold.entered
	}
	var load sync.WaitGroup
	for g := range 16 {
		load.Go(func() {
			for i := range 25 {
				switch (g + i) % 4 {
				case 0:
					send("", listBody) // refused: system chain
				case 1:
					send("Bearer "+f.genericToken(tenants[i%3], "u"), toolCall("whoami", `{}`))
				default:
					send("Bearer "+f.genericToken(tenants[g%3], "u"), listBody)
				}
			}
		})
	}
	load.Wait()
	cancel() // SIGTERM: Serve stops accepting and drains the held calls
	time.Sleep(10 * time.Millisecond)
	close(hold.release)
	inflight.Wait()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	closeWriter(t, w)

	byChain := storedEvents(t, store)
	total := 0
	for chain, events := range byChain {
		total += len(events)
		cps, _ := store.Checkpoints(context.Background(), chain)
		if len(cps) == 0 || cps[len(cps)-1].Count != uint64(len(events)) {
			t.Errorf("chain %q: no final checkpoint at %d", chain, len(events))
		}
	}
	if want := held + 16*25; answered != want || total != want {
		t.Fatalf("%d requests answered, %d events stored, want %d of each", answered, total, want)
	}
	if st := w.Stats(); st.Dropped != 0 {
		t.Fatalf("%d events dropped", st.Dropped)
	}
}

// blockingStore holds every Append until open is closed.
type blockingStore struct {
	audit.Store
	open chan struct{}
}

func (s *blockingStore) Append(ctx context.Context, recs []audit.Record) error {
	select {
	case <-s.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.Append(ctx, recs)
}

// TestAuditBackpressure: with the audit store stuck, the queue fills;
// then requests are refused with 503 and Retry-After (not served
// unaudited), refusal events that find no room are counted as dropped,
// and once the store moves every admitted request's event is stored.
func TestAuditBackpressure(t *testing.T) {
	store := &blockingStore{Store: audit.NewMemoryStore(), open: make(chan struct{})}
	f := setupAudit(t, store, &audit.WriterOptions{QueueSize: 4, MaxWait: 20 * time.Millisecond, FlushInterval: time.Millisecond}, nil)
	acme := f.addTenant(t, "acme", nil)
	token := "Bearer " + f.genericToken("acme", "alice")
	for i := range 4 {
		if resp, body := post(t, f.url, token, listBody, map[string]string{"Traceparent": traceparent(i)}); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, body := post(t, f.url, token, toolCall("whoami", `{}`), nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || strings.Contains(body, string(acme.ID)) {
		t.Fatalf("with the audit queue full: %d Retry-After %q %s, want 503 with Retry-After, not served", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, _ := post(t, f.url, "", listBody, nil); resp.StatusCode != 401 {
		t.Fatalf("refusal: %d", resp.StatusCode)
	}
	metrics := f.metrics(t)
	for _, want := range []string{
		`tenantmcp_requests_refused_total{reason="audit_backpressure"} 1`,
		"tenantmcp_audit_events_dropped_total 2", // the 503's refusal and the 401's
		"tenantmcp_audit_queue_depth 4",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	close(store.open)
	flush(t, f.w)
	events := storedEvents(t, f.store)
	if n := len(events[string(acme.ID)]); n != 4 || len(events) != 1 {
		t.Fatalf("stored %d events of acme (chains %d), want the 4 admitted", n, len(events))
	}
	for _, e := range events[string(acme.ID)] {
		if e.Outcome != audit.OutcomeOK {
			t.Errorf("admitted request recorded as %+v", e)
		}
	}
	if resp, body := post(t, f.url, token, listBody, nil); resp.StatusCode != 200 {
		t.Fatalf("after the store recovered: %d %s", resp.StatusCode, body)
	}
}

type auditLogPage struct {
	Events []struct {
		Seq   uint64      `json:"seq"`
		Hash  string      `json:"hash"`
		Event audit.Event `json:"event"`
	} `json:"events"`
	NextCursor string `json:"next_cursor"`
}

// auditLog calls audit_log with args and decodes its page.
func auditLog(t *testing.T, url, token, args string) (*http.Response, auditLogPage, string) {
	t.Helper()
	resp, body := post(t, url, token, toolCall("audit_log", args), nil)
	var m struct {
		Result struct {
			IsError    bool         `json:"isError"`
			Structured auditLogPage `json:"structuredContent"`
		} `json:"result"`
	}
	if resp.StatusCode == 200 {
		if err := json.Unmarshal([]byte(sseData(body)), &m); err != nil {
			t.Fatalf("audit_log answer %q: %v", body, err)
		}
		if m.Result.IsError {
			return resp, auditLogPage{}, body
		}
	}
	return resp, m.Result.Structured, body
}

// sseData returns the JSON of a response, whether plain or one SSE event.
func sseData(body string) string {
	if i := strings.Index(body, "data: "); i >= 0 {
		return strings.TrimSpace(body[i+len("data: "):])
	}
	return body
}

// TestAuditLogTool: audit_log shows the caller's tenant its own events
// only, pages and filters them, refuses without its scope, and is not
// there at all unless the deployment enables it.
func TestAuditLogTool(t *testing.T) {
	f := setupAudit(t, nil, nil, func(o *server.Options) { o.AuditLogTool = true })
	acme := f.addTenant(t, "acme", nil)
	globex := f.addTenant(t, "globex", nil)
	acmeTok := "Bearer " + f.genericToken("acme", "alice", "audit:read")
	globexTok := "Bearer " + f.genericToken("globex", "bob", "audit:read")
	for range 3 {
		post(t, f.url, acmeTok, toolCall("whoami", `{}`), nil)
	}
	post(t, f.url, "Bearer "+f.genericToken("acme", "carol"), listBody, nil)
	for range 2 {
		post(t, f.url, globexTok, listBody, nil)
	}
	post(t, f.url, "", listBody, nil) // system chain
	flush(t, f.w)

	for _, tc := range []struct {
		token, tenant string
		want          int
	}{{acmeTok, string(acme.ID), 4}, {globexTok, string(globex.ID), 2}} {
		resp, page, body := auditLog(t, f.url, tc.token, `{}`)
		if resp.StatusCode != 200 || len(page.Events) != tc.want || page.NextCursor != "" {
			t.Fatalf("tenant %s: %d, %d events (cursor %q), want %d: %s", tc.tenant, resp.StatusCode, len(page.Events), page.NextCursor, tc.want, body)
		}
		for i, e := range page.Events {
			if e.Event.Tenant != tc.tenant {
				t.Fatalf("tenant %s sees an event of %q", tc.tenant, e.Event.Tenant)
			}
			if i > 0 && e.Seq >= page.Events[i-1].Seq {
				t.Fatalf("not newest first: %d after %d", e.Seq, page.Events[i-1].Seq)
			}
		}
	}

	// Paging: 2 per page, then the rest; filters.
	_, p1, _ := auditLog(t, f.url, acmeTok, `{"limit":2,"tool":"whoami"}`)
	if len(p1.Events) != 2 || p1.NextCursor == "" {
		t.Fatalf("page 1: %+v", p1)
	}
	_, p2, _ := auditLog(t, f.url, acmeTok, `{"limit":2,"tool":"whoami","cursor":"`+p1.NextCursor+`"}`)
	if len(p2.Events) != 1 || p2.NextCursor != "" || p2.Events[0].Seq >= p1.Events[1].Seq {
		t.Fatalf("page 2: %+v", p2)
	}
	if _, p, _ := auditLog(t, f.url, acmeTok, `{"user":"carol"}`); len(p.Events) != 1 || p.Events[0].Event.Method != "tools/list" {
		t.Fatalf("user filter: %+v", p)
	}
	if _, p, _ := auditLog(t, f.url, acmeTok, `{"until":"2000-01-01T00:00:00Z"}`); len(p.Events) != 0 {
		t.Fatalf("until filter: %+v", p)
	}
	// No argument names a chain.
	if _, _, body := auditLog(t, f.url, acmeTok, `{"tenant":"`+string(globex.ID)+`"}`); !strings.Contains(body, "invalid arguments") {
		t.Fatalf("an argument naming another tenant: %s", body)
	}
	if _, _, body := auditLog(t, f.url, acmeTok, `{"limit":500}`); !strings.Contains(body, "limit 500") {
		t.Fatalf("limit 500: %s", body)
	}

	// Without the scope: 403 insufficient_scope.
	resp, _ := post(t, f.url, "Bearer "+f.genericToken("acme", "alice"), toolCall("audit_log", `{}`), nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "audit:read") {
		t.Fatalf("without audit:read: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	c := connect(t, f.url, strings.TrimPrefix(acmeTok, "Bearer "), "")
	if names := toolNames(t, c); !contains(names, "audit_log") {
		t.Fatalf("tools/list lacks audit_log: %v", names)
	}

	// Not enabled: not listed, and called, unknown.
	off := setupAudit(t, nil, nil, nil)
	off.addTenant(t, "acme", nil)
	tok := off.genericToken("acme", "alice", "audit:read")
	if names := toolNames(t, connect(t, off.url, tok, "")); contains(names, "audit_log") {
		t.Fatalf("audit_log listed without AuditLogTool: %v", names)
	}
	if _, body := post(t, off.url, "Bearer "+tok, toolCall("audit_log", `{}`), nil); strings.Contains(body, "events") || !strings.Contains(body, "error") {
		t.Fatalf("audit_log called without AuditLogTool: %s", body)
	}
	if _, err := server.New(server.Options{ResourceURL: f.url, Verifier: f.verifier, Registry: f.reg, AuditLogTool: true}); err == nil {
		t.Fatal("AuditLogTool without Audit accepted")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// nullStore keeps nothing: for benchmarks of the request path alone.
type nullStore struct{ audit.Store }

func (nullStore) Append(context.Context, []audit.Record) error           { return nil }
func (nullStore) Head(context.Context, string) (audit.Head, error)       { return audit.Head{}, nil }
func (nullStore) PutCheckpoint(context.Context, *audit.Checkpoint) error { return nil }

// BenchmarkAuditedToolCall is BenchmarkToolCall's tenantmcp case with an
// audit trail (into a store that keeps nothing): what one event per
// request costs the request path.
func BenchmarkAuditedToolCall(b *testing.B) {
	for _, audited := range []bool{false, true} {
		b.Run(fmt.Sprintf("audit=%v", audited), func(b *testing.B) {
			const resource = "http://127.0.0.1/mcp"
			key, _ := auth.GenerateDevKey()
			iss, _ := auth.NewDevIssuer("http://127.0.0.1/dev", key)
			v, err := auth.NewVerifier(context.Background(), &auth.Options{Issuer: iss.Issuer(), Audience: resource, JWKS: iss.JWKS(), Claims: auth.DevClaimMap()})
			if err != nil {
				b.Fatal(err)
			}
			defer v.Close()
			reg := registry.New(registry.NewMemoryStore(), nil)
			if _, err := reg.Add(context.Background(), registry.Tenant{Issuer: iss.Issuer(), ExternalID: "acme", Name: "Acme"}); err != nil {
				b.Fatal(err)
			}
			opts := server.Options{
				ResourceURL: resource,
				Verifier:    v,
				Registry:    reg,
				Tools: []server.Tool{server.NewTool("echo", "echo", func(ctx context.Context, in echoIn) (string, error) {
					return in.Text, nil
				})},
			}
			if audited {
				w, err := audit.NewWriter(nullStore{}, auditKey, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer w.Close(context.Background())
				opts.Audit = w
			}
			srv, err := server.New(opts)
			if err != nil {
				b.Fatal(err)
			}
			tok, _ := iss.Mint(auth.TokenRequest{Audience: resource, TenantID: "acme", UserID: "alice"})
			run(b, srv, tok)
		})
	}
}
