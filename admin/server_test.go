package admin_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/examples/documents"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenanttest"
)

// These tests drive cross-tenant administration through the real server
// over HTTP: tokens signed by a development issuer and verified against
// its JWKS, an SQLite registry, an SQLite file per tenant and filesystem
// blobs, the admin service (with a lifecycle manager archiving into a
// directory) behind the MCP admin tools and the /admin/v1 API, and an
// audit writer whose events are read back from its store.

// The tools the issues require an admin to see: exactly these.
var adminToolNames = []string{
	"archive_tenant", "create_tenant", "delete_tenant", "end_impersonation", "get_tenant", "impersonate_tenant",
	"list_all_tenants", "list_impersonations", "purge_due_tenants", "purge_tenant", "restore_tenant",
	"resume_tenant", "suspend_tenant", "update_tenant",
}

var (
	documentTools = []string{"delete_document", "get_document", "list_documents", "put_document"}
	readOnlyTools = []string{"get_document", "list_documents"}
)

const adminScope = server.DefaultAdminScope

// logLines decodes the server's JSON log lines.
func logLines(t *testing.T, b *testenv.SyncBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

// wantClientTools connects an MCP client of protocol revision version
// ("" = the newest) with token and wants it shown exactly want.
func (f *fixture) wantClientTools(t *testing.T, token, version string, want []string) *tenanttest.Client {
	t.Helper()
	c := tenanttest.Dial(t, f.h.URL, token, version)
	got := c.ToolNames(t)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("client (protocol %q) tools/list: %v, want %v", version, got, want)
	}
	return c
}

// fixture is a real server with tenants, administration enabled and an
// audit trail.
type fixture struct {
	h        *tenanttest.Harness
	reg      *registry.Registry
	grants   *admin.MemoryStore
	events   *audit.MemoryStore
	w        *audit.Writer
	clock    *testenv.Clock
	logs     *testenv.SyncBuffer
	base     string          // http://host:port
	issuer   string          // the tenants' issuer
	adminIss *auth.DevIssuer // mints admin tokens: h.Issuer unless separate
	client   *http.Client
	gate     *gate // closed: the audit store stops storing
	tenants  int   // the harness's
	// The lifecycle: the harness's stores (docs: an SQLite file per
	// tenant; blobs: files), the archive directory and the manager.
	stores   *store.Set
	archives *archive.DirStore
	lc       *lifecycle.Manager
	faults   faults // failures of the backends' exports
}

// gate holds the audit store's writes while closed.
type gate struct {
	mu      sync.Mutex
	closed  bool
	release chan struct{}
}

// close makes every write wait until open.
func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed, g.release = true, make(chan struct{})
	}
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		g.closed = false
		close(g.release)
	}
}

func (g *gate) wait(ctx context.Context) error {
	g.mu.Lock()
	closed, release := g.closed, g.release
	g.mu.Unlock()
	if !closed {
		return nil
	}
	select {
	case <-release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gatedStore is an audit store whose writes wait at its gate: a store
// that is not keeping up.
type gatedStore struct {
	*audit.MemoryStore
	gate *gate
}

func (s *gatedStore) Append(ctx context.Context, recs []audit.Record) error {
	if err := s.gate.wait(ctx); err != nil {
		return err
	}
	return s.MemoryStore.Append(ctx, recs)
}

type setupOptions struct {
	// tenants the harness registers ("test-tenant-<i>"); 0 = 2.
	tenants int
	// separateIssuer gives admins an identity provider of their own.
	separateIssuer bool
	// impersonation, if set, wraps the service as the server's
	// impersonation authenticator.
	impersonation func(server.ImpersonationAuthenticator) server.ImpersonationAuthenticator
	// writer adjusts the audit writer's options.
	writer *audit.WriterOptions
	// server, if set, adjusts the server options last.
	server func(*server.Options)
	// noArchiveStore leaves the lifecycle without an archive store.
	noArchiveStore bool
}

var auditKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

func setup(t *testing.T, so setupOptions) *fixture {
	t.Helper()
	if so.tenants == 0 {
		so.tenants = 2
	}
	f := &fixture{
		tenants: so.tenants,
		grants:  admin.NewMemoryStore(),
		events:  audit.NewMemoryStore(),
		gate:    &gate{},
		clock:   testenv.NewClock(time.Now().UTC()),
		logs:    &testenv.SyncBuffer{},
		client:  &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second},
	}
	t.Cleanup(f.client.CloseIdleConnections)
	wopts := audit.WriterOptions{FlushInterval: time.Millisecond}
	if so.writer != nil {
		wopts = *so.writer
	}
	w, err := audit.NewWriter(&gatedStore{MemoryStore: f.events, gate: f.gate}, auditKey, &wopts)
	if err != nil {
		t.Fatal(err)
	}
	f.w = w
	// Registered before the harness: runs after its server has stopped,
	// when every request has committed its event.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(f.gate.open) // before the writer closes
	f.h = tenanttest.New(t, so.tenants, &tenanttest.Options{
		Tools: documents.Tools(),
		Server: func(o *server.Options) {
			f.reg = o.Registry.(*registry.Registry)
			f.issuer = o.Metadata.AuthorizationServers[0]
			f.base = strings.TrimSuffix(o.ResourceURL, "/mcp")
			f.stores = o.Stores
			f.lc = f.lifecycle(t, so)
			svc, err := admin.NewService(admin.Options{
				Registry:    f.reg,
				Store:       f.grants,
				Audit:       w,
				Lifecycle:   f.lc,
				Issuer:      f.issuer,
				AdminScopes: []string{adminScope},
				Now:         f.clock.Now,
			})
			if err != nil {
				t.Fatal(err)
			}
			// The harness does not stop its rate limiter's sweeper; goleak
			// (main_test.go) would report it.
			if m, ok := o.Limiter.(*ratelimit.Memory); ok {
				t.Cleanup(func() { m.Close() })
			}
			o.Audit = w
			o.Logger = slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			ao := &server.AdminOptions{
				Issuer:        f.issuer,
				Tools:         admin.Tools(svc),
				API:           admin.Handler(svc),
				Impersonation: svc,
			}
			if so.impersonation != nil {
				ao.Impersonation = so.impersonation(svc)
			}
			if !so.separateIssuer {
				// Admins share the tenants' issuer: its verifier accepts a
				// token without a tenant claim, as the app configures it
				// (the harness's own does not).
				dev, ok := o.Routes["GET /dev/jwks.json"].(*auth.DevIssuer)
				if !ok {
					t.Fatal("the harness serves no dev issuer JWKS")
				}
				v, err := auth.NewVerifier(context.Background(), &auth.Options{
					Issuer:         f.issuer,
					Audience:       o.ResourceURL,
					JWKS:           dev.JWKS(),
					Claims:         auth.DevClaimMap(),
					TenantOptional: true,
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(v.Close)
				o.Verifier = v
			} else {
				key, err := auth.GenerateDevKey()
				if err != nil {
					t.Fatal(err)
				}
				f.adminIss, err = auth.NewDevIssuer(f.base+"/admin-idp", key)
				if err != nil {
					t.Fatal(err)
				}
				v, err := auth.NewVerifier(context.Background(), &auth.Options{
					Issuer:   f.adminIss.Issuer(),
					Audience: o.ResourceURL,
					JWKS:     f.adminIss.JWKS(),
					Claims:   auth.ClaimMap{User: "sub", Scopes: []string{"scope"}},
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(v.Close)
				ao.Verifier, ao.Issuer = v, f.adminIss.Issuer()
			}
			o.Admin = ao
			if so.server != nil {
				so.server(o)
			}
		},
	})
	if f.adminIss == nil {
		f.adminIss = f.h.Issuer
	}
	// Every test needs admins: say at once if this mode has none.
	resp, r := f.rpc(t, f.adminToken(t, "probe"), "tools/list", map[string]any{})
	if resp.StatusCode != http.StatusOK || r.Error != nil {
		t.Fatalf("an admin token of %s (admin scope, no tenant claim) is refused: %d %+v", f.adminIss.Issuer(), resp.StatusCode, r.Error)
	}
	return f
}

// lifecycle makes the lifecycle manager over the harness's stores, with
// an archive directory of the test's own, recording into the fixture's
// audit writer and clock.
func (f *fixture) lifecycle(t *testing.T, so setupOptions) *lifecycle.Manager {
	t.Helper()
	archives, err := archive.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { archives.Close() })
	f.archives = archives
	var backends []lifecycle.Backend
	for _, b := range []struct {
		name string
		be   store.Backend
	}{{"docs", f.stores.Docs}, {"blobs", f.stores.Blobs}} {
		data, ok := b.be.(store.Portable)
		if !ok {
			t.Fatalf("the harness's %s store (%T) is not portable", b.name, b.be)
		}
		backends = append(backends, lifecycle.Backend{Name: b.name, Data: &faultyExport{Portable: data, name: b.name, faults: &f.faults}})
	}
	var archiveStore archive.Store = archives
	if so.noArchiveStore {
		archiveStore = nil
	}
	lc, err := lifecycle.New(lifecycle.Options{
		Registry:   f.reg,
		Backends:   backends,
		Archives:   archiveStore,
		Audit:      f.w,
		AuditStore: f.events,
		Strategy:   config.IsolationDatabase,
		TempDir:    t.TempDir(),
		Now:        f.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return lc
}

// adminToken mints a token of the admin issuer for sub, without a tenant
// claim; scopes nil = the admin scope.
func (f *fixture) adminToken(t *testing.T, sub string, scopes ...string) string {
	t.Helper()
	if scopes == nil {
		scopes = []string{adminScope}
	}
	tok, err := f.adminIss.Mint(auth.TokenRequest{Audience: f.h.URL, UserID: sub, Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tenantIssuerToken mints a token of the tenants' issuer; org "" = no
// tenant claim.
func (f *fixture) tenantIssuerToken(t *testing.T, org, sub string, scopes ...string) string {
	t.Helper()
	tok, err := f.h.Issuer.Mint(auth.TokenRequest{Audience: f.h.URL, TenantID: org, UserID: sub, Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// do sends an HTTP request to path on the server with a bearer token (""
// = none) and returns the response and its body.
func (f *fixture) do(t *testing.T, method, path, token, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	resp, b, err := f.doErr(method, path, token, body, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// doErr is do for goroutines other than the test's; hdr is pairs of
// header name and value.
func (f *fixture) doErr(method, path, token, body string, hdr ...string) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// apiJSON calls the admin API, wants status and decodes the body into
// out (nil = not decoded).
func (f *fixture) apiJSON(t *testing.T, method, path, token, body string, status int, out any, hdr ...string) *http.Response {
	t.Helper()
	resp, b := f.do(t, method, path, token, body, hdr...)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp
}

// apiError is the body of an admin API error.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// apiRefusal calls the admin API and wants it refused with status and
// error code.
func (f *fixture) apiRefusal(t *testing.T, method, path, token, body string, status int, code string, hdr ...string) (*http.Response, apiError) {
	t.Helper()
	resp, b := f.do(t, method, path, token, body, hdr...)
	var e apiError
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%s %s: status %d, body is not an API error: %s", method, path, resp.StatusCode, b)
	}
	if resp.StatusCode != status || e.Error.Code != code {
		t.Fatalf("%s %s: status %d code %q, want %d %q: %s", method, path, resp.StatusCode, e.Error.Code, status, code, b)
	}
	return resp, e
}

// rpcResponse is a JSON-RPC response of the MCP endpoint.
type rpcResponse struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// rpc posts one JSON-RPC request to the MCP endpoint with token and
// returns the HTTP response and the decoded JSON-RPC response.
func (f *fixture) rpc(t *testing.T, token, method string, params any) (*http.Response, rpcResponse) {
	t.Helper()
	p, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":%q,"params":%s}`, method, p)
	resp, b := f.do(t, http.MethodPost, "/mcp", token, body, "Accept", "application/json, text/event-stream")
	var r rpcResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: status %d, body is not JSON-RPC: %s", method, resp.StatusCode, b)
	}
	return resp, r
}

// toolsList lists the tool names the server shows token over raw
// JSON-RPC, sorted.
func (f *fixture) toolsList(t *testing.T, token string) []string {
	t.Helper()
	resp, r := f.rpc(t, token, "tools/list", map[string]any{})
	if resp.StatusCode != http.StatusOK || r.Error != nil {
		t.Fatalf("tools/list: status %d, error %+v", resp.StatusCode, r.Error)
	}
	var res struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(r.Result, &res); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

// toolResult is the result of a tools/call over raw JSON-RPC.
type toolResult struct {
	IsError    bool            `json:"isError"`
	Structured json.RawMessage `json:"structuredContent"`
	Content    []struct {
		Text string `json:"text"`
	} `json:"content"`
}

func (r *toolResult) text() string {
	var parts []string
	for _, c := range r.Content {
		parts = append(parts, c.Text)
	}
	return strings.Join(parts, "\n")
}

// callTool calls a tool over raw JSON-RPC; a JSON-RPC error (an unknown
// tool) is returned as an error, a refused request fails the test.
func (f *fixture) callTool(t *testing.T, token, name string, args any) (*toolResult, error) {
	t.Helper()
	resp, r := f.rpc(t, token, "tools/call", map[string]any{"name": name, "arguments": args})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tools/call %s: status %d, error %+v", name, resp.StatusCode, r.Error)
	}
	if r.Error != nil {
		return nil, errors.New(r.Error.Message)
	}
	var res toolResult
	if err := json.Unmarshal(r.Result, &res); err != nil {
		t.Fatal(err)
	}
	return &res, nil
}

// callOK calls a tool that must succeed and decodes its structured
// result into out (nil = not decoded).
func (f *fixture) callOK(t *testing.T, token, name string, args, out any) {
	t.Helper()
	res, err := f.callTool(t, token, name, args)
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("tools/call %s: tool error: %s", name, res.text())
	}
	if out != nil {
		if err := json.Unmarshal(res.Structured, out); err != nil {
			t.Fatalf("tools/call %s: %v: %s", name, err, res.Structured)
		}
	}
}

// callToolError calls a tool that must fail with a tool error and returns
// its message.
func (f *fixture) callToolError(t *testing.T, token, name string, args any) string {
	t.Helper()
	res, err := f.callTool(t, token, name, args)
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	if !res.IsError {
		t.Fatalf("tools/call %s succeeded, want a tool error: %s", name, res.text())
	}
	return res.text()
}

// wantRefused wants an MCP request with token refused with HTTP status
// and, for 401 and 403 challenges, the RFC 6750 error code in
// WWW-Authenticate ("" = no code checked); it returns the JSON-RPC error
// message.
func (f *fixture) wantRefused(t *testing.T, token string, status int, code string) string {
	t.Helper()
	resp, r := f.rpc(t, token, "tools/list", map[string]any{})
	if resp.StatusCode != status || r.Error == nil {
		t.Fatalf("tools/list: status %d error %+v, want refused %d", resp.StatusCode, r.Error, status)
	}
	if code != "" {
		if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="`+code+`"`) {
			t.Fatalf("WWW-Authenticate %q, want error=%q", ch, code)
		}
	}
	return r.Error.Message
}

// chain returns the events of one chain stored so far, after verifying
// its links.
func (f *fixture) chain(t *testing.T, chain string) []*audit.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	v := audit.NewVerifier(chain)
	var out []*audit.Event
	err := f.events.Scan(ctx, chain, 1, func(r *audit.Record) error {
		if err := v.Next(r); err != nil {
			return err
		}
		e, err := r.Event()
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitEvents returns the events of chain that match, once there are at
// least n: a request's event is committed as its response goes out, so
// it may reach the writer just after the client has the answer.
func (f *fixture) waitEvents(t *testing.T, chain string, n int, match func(*audit.Event) bool) []*audit.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var sel []*audit.Event
		for _, e := range f.chain(t, chain) {
			if match(e) {
				sel = append(sel, e)
			}
		}
		if len(sel) >= n || time.Now().After(deadline) {
			if len(sel) < n {
				t.Fatalf("chain %q: %d matching events, want %d", chain, len(sel), n)
			}
			return sel
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// adminEvent finds the one successful admin event of method in chain and
// checks who did it and how.
func (f *fixture) adminEvent(t *testing.T, chain, method, sub, via string) *audit.Event {
	t.Helper()
	found := f.adminEvents(t, chain, method, sub, via)
	if len(found) != 1 {
		t.Fatalf("chain %q: %d successful admin/%s events, want 1", chain, len(found), method)
	}
	if e := found[0]; e.Tenant != chain {
		t.Errorf("admin/%s: tenant %q in chain %q", method, e.Tenant, chain)
	}
	return found[0]
}

// adminEvents returns the successful admin events of method in chain,
// each checked for who did it and how.
func (f *fixture) adminEvents(t *testing.T, chain, method, sub, via string) []*audit.Event {
	t.Helper()
	var found []*audit.Event
	for _, e := range f.chain(t, chain) {
		if e.Kind != audit.KindAdmin || e.Method != "admin/"+method || e.Outcome != audit.OutcomeOK {
			continue
		}
		if e.Actor == nil || e.Actor.Sub != sub || e.Actor.Issuer != f.adminIss.Issuer() || e.Detail["via"] != via {
			t.Errorf("admin/%s in chain %q: act %+v via %q, want sub %q iss %q via %q", method, chain, e.Actor, e.Detail["via"], sub, f.adminIss.Issuer(), via)
		}
		found = append(found, e)
	}
	return found
}

// snapshot is every tenant record, for before/after comparisons.
func (f *fixture) snapshot(t *testing.T) []*registry.Tenant {
	t.Helper()
	all, err := f.reg.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func (f *fixture) grantsList(t *testing.T) []*admin.Impersonation {
	t.Helper()
	gs, err := f.grants.ListImpersonations(context.Background(), admin.ImpersonationFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return gs
}

// issuerModes are the two ways admins sign in: at the tenants' identity
// provider (a token with the admin scope and no tenant claim), and at an
// identity provider of their own (AdminOptions.Verifier).
var issuerModes = []struct {
	name     string
	separate bool
}{{"tenant issuer", false}, {"admin issuer", true}}

// forEachIssuer runs test on a fresh fixture in each issuer mode.
func forEachIssuer(t *testing.T, so setupOptions, test func(t *testing.T, f *fixture)) {
	for _, m := range issuerModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			so := so
			so.separateIssuer = m.separate
			test(t, setup(t, so))
		})
	}
}

// TestAdminToolsOverMCP: an admin token (the tenants' issuer, no tenant
// claim, the admin scope) sees exactly the admin tools, and each works and
// is audited in the target tenant's chain with the admin as act.
func TestAdminToolsOverMCP(t *testing.T) {
	forEachIssuer(t, setupOptions{}, testAdminToolsOverMCP)
}

func testAdminToolsOverMCP(t *testing.T, f *fixture) {
	const ops = "ops@example.com"
	tok := f.adminToken(t, ops)

	if got := f.toolsList(t, tok); !slices.Equal(got, adminToolNames) {
		t.Fatalf("admin tools/list: %v, want %v", got, adminToolNames)
	}
	// So do real MCP clients, of this protocol revision and of the
	// previous one (with initialize).
	f.wantClientTools(t, tok, "", adminToolNames)
	old := f.wantClientTools(t, tok, "2025-11-25", adminToolNames)
	if res := old.Call(t, "list_all_tenants", map[string]any{"limit": 1}); res.IsError || !strings.Contains(res.Text, `"next"`) {
		t.Fatalf("admin 2025-11-25 client list_all_tenants: %+v", res)
	}
	// An admin has no tenant: the tenants' tools are not there.
	if _, err := f.callTool(t, tok, "list_documents", map[string]any{}); err == nil {
		t.Fatal("an admin called a tenant tool")
	}

	// create_tenant
	names := []string{"Acme East", "Acme West", "Globex", "Initech", "ACME North"}
	created := map[string]*registry.Tenant{}
	for i, name := range names {
		var rec registry.Tenant
		f.callOK(t, tok, "create_tenant", map[string]any{
			"external_id": fmt.Sprintf("org_%d", i), "name": name, "rate_limit": 100 + i,
		}, &rec)
		if rec.ID == "" || rec.Issuer != f.issuer || rec.Name != name || rec.Status != registry.StatusActive || rec.RateLimit != 100+i {
			t.Fatalf("create_tenant %s: %+v", name, rec)
		}
		stored, err := f.reg.Get(context.Background(), rec.ID)
		if err != nil || !cmp.Equal(stored, &rec) {
			t.Fatalf("create_tenant %s: stored %+v, %v; returned %+v", name, stored, err, rec)
		}
		created[name] = &rec
		e := f.adminEvent(t, string(rec.ID), "create_tenant", ops, admin.ViaMCP)
		if e.ExternalID != rec.ExternalID || e.Outcome != audit.OutcomeOK {
			t.Errorf("create_tenant event: %+v", e)
		}
	}
	// Creating one that exists is an error the admin sees; nothing changes.
	before := f.snapshot(t)
	if msg := f.callToolError(t, tok, "create_tenant", map[string]any{"external_id": "org_0"}); !strings.Contains(msg, "already") {
		t.Errorf("duplicate create_tenant: %q", msg)
	}
	if diff := cmp.Diff(before, f.snapshot(t)); diff != "" {
		t.Fatalf("a refused create changed the registry (-before +after):\n%s", diff)
	}

	// list_all_tenants pages through every tenant exactly once, in id order.
	all := f.snapshot(t) // 2 harness tenants + 5
	if len(all) != 7 {
		t.Fatalf("%d tenants", len(all))
	}
	var paged []*registry.Tenant
	after, pages := "", 0
	for {
		var page admin.TenantPage
		f.callOK(t, tok, "list_all_tenants", map[string]any{"limit": 3, "after": after}, &page)
		pages++
		if len(page.Tenants) > 3 {
			t.Fatalf("page of %d with limit 3", len(page.Tenants))
		}
		paged = append(paged, page.Tenants...)
		if page.Next == "" {
			break
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		after = string(page.Next)
	}
	if diff := cmp.Diff(all, paged); diff != "" {
		t.Fatalf("paged listing (-registry +paged):\n%s", diff)
	}
	if pages != 3 {
		t.Errorf("%d pages of 3 for 7 tenants", pages)
	}

	// suspend_tenant, then the status filter.
	globex := created["Globex"]
	var rec registry.Tenant
	f.callOK(t, tok, "suspend_tenant", map[string]any{"tenant": string(globex.ID), "reason": "unpaid invoice"}, &rec)
	if rec.Status != registry.StatusSuspended {
		t.Fatalf("suspend_tenant: %+v", rec)
	}
	e := f.adminEvent(t, string(globex.ID), "suspend_tenant", ops, admin.ViaMCP)
	if e.Detail["reason"] != "unpaid invoice" || e.Detail["previous_status"] != "active" {
		t.Errorf("suspend event detail %v", e.Detail)
	}
	var page admin.TenantPage
	f.callOK(t, tok, "list_all_tenants", map[string]any{"status": "suspended"}, &page)
	if len(page.Tenants) != 1 || page.Tenants[0].ID != globex.ID || page.Next != "" {
		t.Fatalf("status=suspended: %+v", page)
	}
	f.callOK(t, tok, "list_all_tenants", map[string]any{"status": "active", "limit": 100}, &page)
	if len(page.Tenants) != 6 || slices.ContainsFunc(page.Tenants, func(t *registry.Tenant) bool { return t.ID == globex.ID }) {
		t.Fatalf("status=active: %d tenants", len(page.Tenants))
	}
	// The name filter is case-insensitive and matches names and external ids.
	f.callOK(t, tok, "list_all_tenants", map[string]any{"name": "acme"}, &page)
	var got3 []string
	for _, t := range page.Tenants {
		got3 = append(got3, t.Name)
	}
	slices.Sort(got3)
	if want := []string{"ACME North", "Acme East", "Acme West"}; !slices.Equal(got3, want) {
		t.Fatalf("name=acme: %v, want %v", got3, want)
	}
	f.callOK(t, tok, "list_all_tenants", map[string]any{"name": "test-tenant-1"}, &page)
	if len(page.Tenants) != 1 || page.Tenants[0].ID != f.h.Tenant(1).Record.ID {
		t.Fatalf("name=test-tenant-1: %+v", page)
	}
	f.callOK(t, tok, "list_all_tenants", map[string]any{"name": "acme", "status": "suspended"}, &page)
	if len(page.Tenants) != 0 {
		t.Fatalf("name=acme status=suspended: %+v", page)
	}
	if msg := f.callToolError(t, tok, "list_all_tenants", map[string]any{"status": "gone"}); !strings.Contains(msg, "status") {
		t.Errorf("bad status filter: %q", msg)
	}
	if msg := f.callToolError(t, tok, "list_all_tenants", map[string]any{"limit": 5000}); !strings.Contains(msg, "limit") {
		t.Errorf("limit 5000: %q", msg)
	}
	// Listing acts on no tenant: its events are in the system chain.
	lists := 0
	for _, e := range f.chain(t, audit.SystemChain) {
		if e.Kind == audit.KindAdmin && e.Method == "admin/list_all_tenants" {
			lists++
			if e.Actor == nil || e.Actor.Sub != ops || e.Detail["via"] != admin.ViaMCP {
				t.Errorf("list event %+v", e)
			}
		}
	}
	if lists != pages+8 {
		t.Errorf("%d list_all_tenants events, want %d", lists, pages+8)
	}

	// get_tenant
	var g registry.Tenant
	f.callOK(t, tok, "get_tenant", map[string]any{"tenant": string(globex.ID)}, &g)
	if g.ID != globex.ID || g.Status != registry.StatusSuspended {
		t.Fatalf("get_tenant: %+v", g)
	}
	f.adminEvent(t, string(globex.ID), "get_tenant", ops, admin.ViaMCP)
	for _, id := range []string{"t" + strings.Repeat("a", 20), "not-an-id", ""} {
		if msg := f.callToolError(t, tok, "get_tenant", map[string]any{"tenant": id}); !strings.Contains(msg, "not found") {
			t.Errorf("get_tenant %q: %q", id, msg)
		}
	}

	// update_tenant changes only the fields given.
	f.callOK(t, tok, "update_tenant", map[string]any{
		"tenant": string(globex.ID), "name": "Globex Corp", "rate_limit": 42,
		"flags": map[string]bool{"beta": true}, "allowed_tools": []string{"get_document"},
	}, &g)
	stored, err := f.reg.Get(context.Background(), globex.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Name != "Globex Corp" || stored.RateLimit != 42 || !stored.Flags["beta"] ||
		!slices.Equal(stored.AllowedTools, []string{"get_document"}) || stored.Status != registry.StatusSuspended || stored.ExternalID != "org_2" {
		t.Fatalf("after update_tenant: %+v", stored)
	}
	e = f.adminEvent(t, string(globex.ID), "update_tenant", ops, admin.ViaMCP)
	if e.Detail["fields"] != "name,rate_limit,allowed_tools,flags" {
		t.Errorf("update event fields %q", e.Detail["fields"])
	}
	before = f.snapshot(t)
	for _, args := range []map[string]any{
		{"tenant": string(globex.ID)},                          // nothing to change
		{"tenant": string(globex.ID), "rate_limit": -5},        // invalid
		{"tenant": string(globex.ID), "external_id": "x"},      // immutable: not an argument
		{"tenant": "t" + strings.Repeat("b", 20), "name": "x"}, // unknown tenant
	} {
		f.callToolError(t, tok, "update_tenant", args)
	}
	if diff := cmp.Diff(before, f.snapshot(t)); diff != "" {
		t.Fatalf("refused updates changed the registry (-before +after):\n%s", diff)
	}

	// resume_tenant
	f.callOK(t, tok, "resume_tenant", map[string]any{"tenant": string(globex.ID), "reason": "paid"}, &g)
	if g.Status != registry.StatusActive {
		t.Fatalf("resume_tenant: %+v", g)
	}
	e = f.adminEvent(t, string(globex.ID), "resume_tenant", ops, admin.ViaMCP)
	if e.Detail["previous_status"] != "suspended" || e.Detail["reason"] != "paid" {
		t.Errorf("resume event detail %v", e.Detail)
	}

	// delete_tenant archives the tenant and marks it deleted; deleting it
	// again changes nothing; with purge_now its data is purged and its
	// registration removed. Every call is in its own chain.
	initech := created["Initech"]
	var deleted, purged registry.Tenant
	f.callOK(t, tok, "delete_tenant", map[string]any{"tenant": string(initech.ID)}, &deleted)
	stored, err = f.reg.Get(context.Background(), initech.ID)
	if err != nil || stored.Status != registry.StatusArchived || !stored.Lifecycle.Deleted || stored.Lifecycle.Archive == "" || !cmp.Equal(stored, &deleted) {
		t.Fatalf("after delete_tenant: %+v, %v; returned %+v", stored, err, deleted)
	}
	f.callOK(t, tok, "delete_tenant", map[string]any{"tenant": string(initech.ID)}, nil)
	if again, err := f.reg.Get(context.Background(), initech.ID); err != nil || !cmp.Equal(again, stored) {
		t.Fatalf("a second delete_tenant changed the tenant: %s", cmp.Diff(stored, again))
	}
	f.callOK(t, tok, "delete_tenant", map[string]any{"tenant": string(initech.ID), "purge_now": true}, &purged)
	if purged.Status != registry.StatusPurged || purged.Lifecycle.PurgedAt.IsZero() {
		t.Fatalf("delete_tenant purge_now: %+v", purged)
	}
	if _, err := f.reg.Get(context.Background(), initech.ID); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("after delete_tenant purge_now: %v", err)
	}
	var deletes []string
	for _, e := range f.chain(t, string(initech.ID)) {
		if e.Kind == audit.KindAdmin && e.Method == "admin/delete_tenant" && e.Outcome == audit.OutcomeOK && e.Actor.Sub == ops && e.Detail["via"] == admin.ViaMCP {
			deletes = append(deletes, e.Detail["purge_now"])
		}
	}
	if !slices.Equal(deletes, []string{"false", "false", "true"}) {
		t.Errorf("delete_tenant events' purge_now: %v, want false, false, true", deletes)
	}
	if msg := f.callToolError(t, tok, "delete_tenant", map[string]any{"tenant": string(initech.ID)}); !strings.Contains(msg, "not found") {
		t.Errorf("delete_tenant of a purged, deleted tenant: %q", msg)
	}

	// The admin's own MCP requests are audited too (system chain), with
	// the admin as the user.
	calls := 0
	for _, e := range f.chain(t, audit.SystemChain) {
		if e.Kind == audit.KindToolCall && e.Tool == "delete_tenant" {
			calls++
			if e.User != ops {
				t.Errorf("admin tool call event user %q", e.User)
			}
		}
	}
	if calls != 4 {
		t.Errorf("%d delete_tenant tool call events, want 4", calls)
	}
}

// adminEndpoints are every endpoint of the admin API, for refusal tests.
func adminEndpoints(victim string) []struct{ method, path, body string } {
	return []struct{ method, path, body string }{
		{"GET", "/admin/v1/tenants", ""},
		{"GET", "/admin/v1/tenants?status=active&limit=5", ""},
		{"POST", "/admin/v1/tenants", `{"external_id":"evil"}`},
		{"GET", "/admin/v1/tenants/" + victim, ""},
		{"PATCH", "/admin/v1/tenants/" + victim, `{"name":"pwned"}`},
		{"DELETE", "/admin/v1/tenants/" + victim, ""},
		{"POST", "/admin/v1/tenants/" + victim + "/suspend", `{"reason":"x"}`},
		{"POST", "/admin/v1/tenants/" + victim + "/resume", ""},
		{"POST", "/admin/v1/tenants/" + victim + "/impersonations", `{"reason":"curious"}`},
		{"DELETE", "/admin/v1/tenants/" + victim + "?purge_now=true", ""},
		{"POST", "/admin/v1/tenants/" + victim + "/archive", ""},
		{"POST", "/admin/v1/tenants/" + victim + "/purge", ""},
		{"GET", "/admin/v1/tenants/" + victim + "/export", ""},
		{"POST", "/admin/v1/restore", `{"archive":"` + victim + `/20261201T000000.000000Z.tar.gz"}`},
		{"POST", "/admin/v1/purge-due", ""},
		{"GET", "/admin/v1/tenants?trial_ends_before=2030-01-01T00:00:00Z", ""},
		{"GET", "/admin/v1/impersonations", ""},
		{"POST", "/admin/v1/impersonations/imp_x/end", ""},
		{"GET", "/admin/v1/no-such-endpoint", ""},
	}
}

// wantForbidden wants every admin endpoint refused for token with 403
// insufficient_scope naming the admin scope, and nothing about any tenant
// in the answer.
func (f *fixture) wantForbidden(t *testing.T, token string) {
	t.Helper()
	f.eachRefusal(t, token, func(resp *http.Response, b []byte) string {
		ch := resp.Header.Get("WWW-Authenticate")
		var e apiError
		switch {
		case resp.StatusCode != http.StatusForbidden:
			return "want 403"
		case !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="`+adminScope+`"`):
			return "want a challenge naming the admin scope"
		case json.Unmarshal(b, &e) != nil || e.Error.Code != "insufficient_scope":
			return "want error code insufficient_scope"
		}
		return ""
	})
}

// wantNotAdmin wants every admin endpoint refused for a token that has no
// tenant claim and is no admin's: 401 (no tenant claim) or 403
// (insufficient scope), with a challenge, and nothing about any tenant in
// the answer.
func (f *fixture) wantNotAdmin(t *testing.T, token string) {
	t.Helper()
	f.eachRefusal(t, token, func(resp *http.Response, b []byte) string {
		ch := resp.Header.Get("WWW-Authenticate")
		switch {
		case resp.StatusCode == http.StatusUnauthorized && strings.Contains(ch, `error="invalid_token"`):
		case resp.StatusCode == http.StatusForbidden && strings.Contains(ch, `error="insufficient_scope"`):
		default:
			return "want 401 invalid_token or 403 insufficient_scope"
		}
		return ""
	})
}

// eachRefusal calls every admin endpoint with token; check says what is
// wrong with an answer ("" = nothing). No answer may mention a tenant.
func (f *fixture) eachRefusal(t *testing.T, token string, check func(*http.Response, []byte) string) {
	t.Helper()
	victim := string(f.h.Tenant(1).Record.ID)
	for _, ep := range adminEndpoints(victim) {
		resp, b := f.do(t, ep.method, ep.path, token, ep.body)
		if problem := check(resp, b); problem != "" {
			t.Errorf("%s %s: status %d, WWW-Authenticate %q: %s: %s", ep.method, ep.path, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), problem, b)
		}
		for _, leak := range []string{victim, "test-tenant-1", "Test Tenant"} {
			if bytes.Contains(b, []byte(leak)) {
				t.Errorf("%s %s: refusal mentions %q: %s", ep.method, ep.path, leak, b)
			}
		}
	}
}

// TestTenantTokensNeverReachAdmin: a tenant's token, whatever scopes it
// carries, sees no admin tool, cannot call one, and is refused by every
// admin API endpoint; nothing changes and nothing is listed.
func TestTenantTokensNeverReachAdmin(t *testing.T) {
	forEachIssuer(t, setupOptions{}, testTenantTokensNeverReachAdmin)
}

func testTenantTokensNeverReachAdmin(t *testing.T, f *fixture) {
	before := f.snapshot(t)

	plain := f.h.Tenant(0).Token
	escalated := f.h.Token(0, auth.TokenRequest{Scopes: append(slices.Clone(tenanttest.DefaultScopes), adminScope)})
	onlyAdmin := f.h.Token(0, auth.TokenRequest{Scopes: []string{adminScope}})
	for name, tok := range map[string]string{"plain": plain, "admin scope": escalated, "only admin scope": onlyAdmin} {
		t.Run(name, func(t *testing.T) {
			if got := f.toolsList(t, tok); !slices.Equal(got, documentTools) {
				t.Fatalf("tenant tools/list: %v, want %v", got, documentTools)
			}
			c := f.h.Connect(tok)
			if got := c.ToolNames(t); slices.ContainsFunc(got, func(n string) bool { return slices.Contains(adminToolNames, n) }) {
				t.Fatalf("tenant client sees admin tools: %v", got)
			}
			victim := string(f.h.Tenant(1).Record.ID)
			for _, name := range adminToolNames {
				args := map[string]any{"tenant": victim, "reason": "x", "external_id": "evil", "impersonation_id": "imp_x", "archive": victim + "/x.tar.gz", "purge_now": true}
				if name == "list_all_tenants" || name == "list_impersonations" || name == "purge_due_tenants" {
					args = map[string]any{}
				}
				_, err := f.callTool(t, tok, name, args)
				if err == nil {
					t.Errorf("tenant called %s", name)
					continue
				}
				if !strings.Contains(err.Error(), "not found") || strings.Contains(err.Error(), "test-tenant-1") {
					t.Errorf("tenant calling %s: %v", name, err)
				}
				if _, err := c.CallErr(context.Background(), name, args); err == nil {
					t.Errorf("tenant client called %s", name)
				}
			}
			f.wantForbidden(t, tok)
		})
	}
	// A token of the tenants' issuer without the admin scope and without a
	// tenant claim is no admin either.
	f.wantNotAdmin(t, f.tenantIssuerToken(t, "", "ops@example.com", "read:tools"))

	if diff := cmp.Diff(before, f.snapshot(t)); diff != "" {
		t.Fatalf("tenant tokens changed the registry (-before +after):\n%s", diff)
	}
	if gs := f.grantsList(t); len(gs) != 0 {
		t.Fatalf("tenant tokens started impersonations: %+v", gs)
	}
	// No admin operation ran, so no admin event exists anywhere.
	chains, err := f.events.Chains(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chains {
		for _, e := range f.chain(t, c) {
			if e.Kind == audit.KindAdmin {
				t.Errorf("chain %q: admin event %+v", c, e)
			}
		}
	}
	// The refusals themselves are recorded.
	refusals := f.waitEvents(t, audit.SystemChain, 1, func(e *audit.Event) bool {
		return e.Kind == audit.KindRefusal && e.ErrorClass == "insufficient_scope" && e.ExternalID == "test-tenant-0"
	})
	if refusals[0].User != "user-0" || !strings.HasPrefix(refusals[0].Method, "admin ") {
		t.Errorf("refusal event %+v", refusals[0])
	}

	// No token at all: 401 with a challenge, on the API and over MCP.
	for _, ep := range adminEndpoints(string(f.h.Tenant(1).Record.ID)) {
		resp, b := f.do(t, ep.method, ep.path, "", ep.body)
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s %s without a token: %d %q: %s", ep.method, ep.path, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), b)
		}
	}
	f.wantRefused(t, "", http.StatusUnauthorized, "")
	// A forged or expired admin token: 401 invalid_token.
	expired, err := f.h.Issuer.Mint(auth.TokenRequest{Audience: f.h.URL, UserID: "ops", Scopes: []string{adminScope}, TTL: -time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f.apiRefusal(t, "GET", "/admin/v1/tenants", expired, "", http.StatusUnauthorized, "invalid_token")
	f.apiRefusal(t, "GET", "/admin/v1/tenants", "not.a.jwt", "", http.StatusUnauthorized, "invalid_token")
	f.wantRefused(t, expired, http.StatusUnauthorized, "invalid_token")
}

// TestSeparateAdminIssuer: with admins at an identity provider of their
// own, only its tokens with the admin scope are admins; tokens of the
// tenants' identity provider never are, whatever they claim.
func TestSeparateAdminIssuer(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{separateIssuer: true})
	before := f.snapshot(t)

	// A tenant IdP token with admin:global and no tenant claim: the
	// tenants' verifier wants a tenant claim, and it is no admin.
	selfAsserted := f.tenantIssuerToken(t, "", "mallory", adminScope)
	if msg := f.wantRefused(t, selfAsserted, http.StatusUnauthorized, "invalid_token"); !strings.Contains(msg, "tenant claim") {
		t.Errorf("self-asserted admin over MCP: %q", msg)
	}
	f.wantNotAdmin(t, selfAsserted)
	// With a tenant claim and admin:global it is that tenant's user.
	orgAdmin := f.tenantIssuerToken(t, "test-tenant-0", "mallory", append(slices.Clone(tenanttest.DefaultScopes), adminScope)...)
	if got := f.toolsList(t, orgAdmin); !slices.Equal(got, documentTools) {
		t.Fatalf("tenant admin's tools/list: %v", got)
	}
	f.wantForbidden(t, orgAdmin)

	// A token naming the admin issuer but signed with another key.
	key, err := auth.GenerateDevKey()
	if err != nil {
		t.Fatal(err)
	}
	forger, err := auth.NewDevIssuer(f.adminIss.Issuer(), key)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := forger.Mint(auth.TokenRequest{Audience: f.h.URL, UserID: "mallory", Scopes: []string{adminScope}})
	if err != nil {
		t.Fatal(err)
	}
	f.wantRefused(t, forged, http.StatusUnauthorized, "invalid_token")
	f.apiRefusal(t, "GET", "/admin/v1/tenants", forged, "", http.StatusUnauthorized, "invalid_token")

	// The admin IdP's token without the admin scope: 403 insufficient_scope.
	noScope := f.adminToken(t, "ops@example.com", "read:tools")
	f.wantRefused(t, noScope, http.StatusForbidden, "insufficient_scope")
	f.wantForbidden(t, noScope)

	if diff := cmp.Diff(before, f.snapshot(t)); diff != "" {
		t.Fatalf("non-admins changed the registry (-before +after):\n%s", diff)
	}

	// The admin IdP's token with the admin scope is an admin.
	tok := f.adminToken(t, "ops@example.com")
	if got := f.toolsList(t, tok); !slices.Equal(got, adminToolNames) {
		t.Fatalf("admin tools/list: %v", got)
	}
	var page admin.TenantPage
	f.apiJSON(t, "GET", "/admin/v1/tenants", tok, "", http.StatusOK, &page)
	if len(page.Tenants) != 2 {
		t.Fatalf("admin listing: %+v", page)
	}
	var rec registry.Tenant
	f.callOK(t, tok, "suspend_tenant", map[string]any{"tenant": string(f.h.Tenant(1).Record.ID)}, &rec)
	e := f.adminEvent(t, string(rec.ID), "suspend_tenant", "ops@example.com", admin.ViaMCP)
	if e.Actor.Issuer != f.adminIss.Issuer() {
		t.Errorf("act iss %q", e.Actor.Issuer)
	}
	// A tenant created by such an admin belongs to the tenants' issuer.
	f.apiJSON(t, "POST", "/admin/v1/tenants", tok, `{"external_id":"org_new"}`, http.StatusCreated, &rec)
	if rec.Issuer != f.issuer {
		t.Errorf("new tenant's issuer %q, want the tenants' %q", rec.Issuer, f.issuer)
	}
}

// TestAdminHTTPAPI: the JSON API under /admin/v1: idempotent create under
// retry and concurrency, validation, unknown tenants, and a suspension
// that the tenant's next request meets at once.
func TestAdminHTTPAPI(t *testing.T) {
	forEachIssuer(t, setupOptions{}, testAdminHTTPAPI)
}

func testAdminHTTPAPI(t *testing.T, f *fixture) {
	const ops = "billing-system"
	tok := f.adminToken(t, ops)
	ctx := context.Background()

	count := func(externalID string) int {
		n := 0
		for _, rec := range f.snapshot(t) {
			if rec.ExternalID == externalID {
				n++
			}
		}
		return n
	}

	t.Run("idempotent create", func(t *testing.T) {
		body := `{"external_id":"org_signup","name":"Signup Co","trial_days":14}`
		var first, again registry.Tenant
		resp := f.apiJSON(t, "POST", "/admin/v1/tenants", tok, body, http.StatusCreated, &first, "Idempotency-Key", "signup-1")
		if first.Status != registry.StatusTrial || first.TrialEndsAt.IsZero() || resp.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("create: %+v %v", first, resp.Header)
		}
		if loc := resp.Header.Get("Location"); loc != "/admin/v1/tenants/"+string(first.ID) {
			t.Errorf("Location %q", loc)
		}
		resp = f.apiJSON(t, "POST", "/admin/v1/tenants", tok, body, http.StatusOK, &again, "Idempotency-Key", "signup-1")
		if resp.Header.Get("Idempotent-Replayed") != "true" || again.ID != first.ID {
			t.Fatalf("retry: %+v %v", again, resp.Header)
		}
		if n := count("org_signup"); n != 1 {
			t.Fatalf("%d tenants org_signup", n)
		}
		// The same key with another body: 409, nothing made.
		_, e := f.apiRefusal(t, "POST", "/admin/v1/tenants", tok, `{"external_id":"org_other"}`, http.StatusConflict, "idempotency_conflict", "Idempotency-Key", "signup-1")
		if !strings.Contains(e.Error.Message, "different request") {
			t.Errorf("conflict message %q", e.Error.Message)
		}
		if n := count("org_other"); n != 0 {
			t.Fatalf("a conflicting create made %d tenants", n)
		}
		// Without a key a repeat is a duplicate: 409 exists.
		f.apiRefusal(t, "POST", "/admin/v1/tenants", tok, body, http.StatusConflict, "exists")
		// Both the create and the replay are in the tenant's chain.
		var creates []*audit.Event
		for _, e := range f.chain(t, string(first.ID)) {
			if e.Method == "admin/create_tenant" {
				creates = append(creates, e)
			}
		}
		if len(creates) != 2 || creates[0].Detail["replayed"] != "" || creates[1].Detail["replayed"] != "true" ||
			creates[1].Detail["idempotency_key"] != "signup-1" || creates[1].Detail["via"] != admin.ViaHTTP || creates[1].Actor.Sub != ops {
			t.Errorf("create events %+v", creates)
		}
	})

	t.Run("concurrent retries", func(t *testing.T) {
		const n = 10
		type answer struct {
			status int
			id     string
			err    error
		}
		answers := make([]answer, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				resp, b, err := f.doErr("POST", "/admin/v1/tenants", tok, `{"external_id":"org_burst"}`, "Idempotency-Key", "burst-1")
				if err != nil {
					answers[i].err = err
					return
				}
				var rec registry.Tenant
				json.Unmarshal(b, &rec)
				answers[i] = answer{status: resp.StatusCode, id: string(rec.ID)}
			})
		}
		close(start)
		wg.Wait()
		created, id := 0, ""
		for _, a := range answers {
			switch {
			case a.err != nil:
				t.Fatal(a.err)
			case a.status == http.StatusCreated:
				created++
				id = a.id
			case a.status == http.StatusOK, a.status == http.StatusConflict: // replayed, or the first still running
			default:
				t.Fatalf("status %d", a.status)
			}
		}
		if created != 1 {
			t.Fatalf("%d creates answered 201, want 1: %+v", created, answers)
		}
		for _, a := range answers {
			if a.status == http.StatusOK && a.id != id {
				t.Fatalf("a replay returned %s, the create %s", a.id, id)
			}
		}
		if c := count("org_burst"); c != 1 {
			t.Fatalf("%d tenants org_burst", c)
		}
		var rec registry.Tenant
		f.apiJSON(t, "POST", "/admin/v1/tenants", tok, `{"external_id":"org_burst"}`, http.StatusOK, &rec, "Idempotency-Key", "burst-1")
		if string(rec.ID) != id {
			t.Fatalf("replay after the burst: %s, want %s", rec.ID, id)
		}
	})

	t.Run("invalid bodies", func(t *testing.T) {
		before := f.snapshot(t)
		for _, c := range []struct{ body, field string }{
			{`{"name":"No External Id"}`, "external_id"},
			{`{"external_id":"org_x","status":"suspended"}`, "status"},
			{`{"external_id":"org_x","trial_days":-1}`, "trial_days"},
			{`{"external_id":"org_x","status":"trial"}`, "trial"},
			{`{"external_id":"org_x","rate_limit":-1}`, "rate_limit"},
			{`{"external_id":"org_x","tenant_id":"t123"}`, "tenant_id"},
			{`{"external_id":"org_x"} {"external_id":"org_y"}`, "body"},
			{`[1,2]`, "body"},
			{`not json`, "body"},
		} {
			_, e := f.apiRefusal(t, "POST", "/admin/v1/tenants", tok, c.body, http.StatusBadRequest, "invalid_request", "Idempotency-Key", "bad-1")
			if !strings.Contains(e.Error.Message, c.field) {
				t.Errorf("%s: message %q does not name %s", c.body, e.Error.Message, c.field)
			}
		}
		f.apiRefusal(t, "POST", "/admin/v1/tenants", tok, "", http.StatusBadRequest, "invalid_request")
		f.apiRefusal(t, "POST", "/admin/v1/tenants", tok, `{"external_id":"org_x"}`, http.StatusBadRequest, "invalid_request", "Idempotency-Key", strings.Repeat("k", 300))
		if diff := cmp.Diff(before, f.snapshot(t)); diff != "" {
			t.Fatalf("invalid creates changed the registry (-before +after):\n%s", diff)
		}
		// A key whose request was refused is free for a valid one.
		f.apiJSON(t, "POST", "/admin/v1/tenants", tok, `{"external_id":"org_x"}`, http.StatusCreated, nil, "Idempotency-Key", "bad-1")

		id := string(f.h.Tenant(0).Record.ID)
		before = f.snapshot(t)
		for _, body := range []string{`{}`, `{"rate_limit":-3}`, `{"status":"suspended"}`, `{"external_id":"moved"}`, `nope`} {
			f.apiRefusal(t, "PATCH", "/admin/v1/tenants/"+id, tok, body, http.StatusBadRequest, "invalid_request")
		}
		f.apiRefusal(t, "POST", "/admin/v1/tenants/"+id+"/suspend", tok, `{"reason":"bad\u0001text"}`, http.StatusBadRequest, "invalid_request")
		f.apiRefusal(t, "GET", "/admin/v1/tenants?limit=abc", tok, "", http.StatusBadRequest, "invalid_request")
		f.apiRefusal(t, "GET", "/admin/v1/tenants?status=deleted", tok, "", http.StatusBadRequest, "invalid_request")
		if diff := cmp.Diff(before, f.snapshot(t)); diff != "" {
			t.Fatalf("invalid updates changed the registry (-before +after):\n%s", diff)
		}
	})

	t.Run("unknown tenant", func(t *testing.T) {
		for _, id := range []string{"t" + strings.Repeat("z", 20), "nope", "..%2F..%2Fetc"} {
			for _, ep := range []struct{ method, path, body string }{
				{"GET", "/admin/v1/tenants/" + id, ""},
				{"PATCH", "/admin/v1/tenants/" + id, `{"name":"x"}`},
				{"DELETE", "/admin/v1/tenants/" + id, ""},
				{"POST", "/admin/v1/tenants/" + id + "/suspend", ""},
				{"POST", "/admin/v1/tenants/" + id + "/resume", ""},
				{"POST", "/admin/v1/tenants/" + id + "/impersonations", `{"reason":"support"}`},
				{"DELETE", "/admin/v1/tenants/" + id + "?purge_now=true", ""},
				{"POST", "/admin/v1/tenants/" + id + "/archive", ""},
				{"POST", "/admin/v1/tenants/" + id + "/purge", ""},
				{"GET", "/admin/v1/tenants/" + id + "/export", ""},
			} {
				f.apiRefusal(t, ep.method, ep.path, tok, ep.body, http.StatusNotFound, "not_found")
			}
		}
		f.apiRefusal(t, "POST", "/admin/v1/impersonations/imp_nope/end", tok, "", http.StatusNotFound, "not_found")
		f.apiRefusal(t, "GET", "/admin/v1/elsewhere", tok, "", http.StatusNotFound, "not_found")
	})

	t.Run("suspend takes effect at once", func(t *testing.T) {
		ten := f.h.Tenant(0)
		// Served first, so the registry has the tenant cached as active.
		if got := f.toolsList(t, ten.Token); !slices.Equal(got, documentTools) {
			t.Fatalf("tools/list: %v", got)
		}
		var rec registry.Tenant
		path := "/admin/v1/tenants/" + string(ten.Record.ID)
		f.apiJSON(t, "POST", path+"/suspend", tok, `{"reason":"chargeback"}`, http.StatusOK, &rec)
		if rec.Status != registry.StatusSuspended {
			t.Fatalf("suspend: %+v", rec)
		}
		if msg := f.wantRefused(t, ten.Token, http.StatusForbidden, ""); !strings.Contains(msg, "suspended") {
			t.Fatalf("suspended tenant's request: %q", msg)
		}
		if _, err := ten.CallErr(ctx, "list_documents", map[string]any{}); err == nil {
			t.Fatal("a connected client of a suspended tenant was served")
		}
		// Its other tenant is served as before.
		if got := f.toolsList(t, f.h.Tenant(1).Token); !slices.Equal(got, documentTools) {
			t.Fatalf("other tenant's tools/list: %v", got)
		}
		e := f.adminEvent(t, string(ten.Record.ID), "suspend_tenant", ops, admin.ViaHTTP)
		if e.Detail["reason"] != "chargeback" {
			t.Errorf("suspend event %+v", e)
		}
		// The refusal is in the tenant's own chain.
		f.waitEvents(t, string(ten.Record.ID), 1, func(e *audit.Event) bool {
			return e.Kind == audit.KindRefusal && e.ErrorClass == "suspended"
		})
		f.apiJSON(t, "POST", path+"/resume", tok, "", http.StatusOK, &rec)
		if got := f.toolsList(t, ten.Token); !slices.Equal(got, documentTools) {
			t.Fatalf("resumed tenant's tools/list: %v", got)
		}
	})

	t.Run("read update delete", func(t *testing.T) {
		var rec registry.Tenant
		f.apiJSON(t, "POST", "/admin/v1/tenants", tok, `{"external_id":"org_rud","name":"RUD"}`, http.StatusCreated, &rec)
		path := "/admin/v1/tenants/" + string(rec.ID)
		var got registry.Tenant
		f.apiJSON(t, "GET", path, tok, "", http.StatusOK, &got)
		if !cmp.Equal(got, rec) {
			t.Fatalf("GET: %s", cmp.Diff(rec, got))
		}
		f.apiJSON(t, "PATCH", path, tok, `{"name":"RUD 2","config":{"region":"eu"}}`, http.StatusOK, &got)
		if got.Name != "RUD 2" || got.Config["region"] != "eu" {
			t.Fatalf("PATCH: %+v", got)
		}
		var removed registry.Tenant
		f.apiJSON(t, "PATCH", path, tok, `{"config":{"region":null}}`, http.StatusOK, &removed)
		if _, ok := removed.Config["region"]; ok || removed.Name != "RUD 2" {
			t.Fatalf("PATCH removing a key: %+v", removed)
		}
		var page admin.TenantPage
		f.apiJSON(t, "GET", "/admin/v1/tenants?name=rud", tok, "", http.StatusOK, &page)
		if len(page.Tenants) != 1 || page.Tenants[0].ID != rec.ID {
			t.Fatalf("name=rud: %+v", page)
		}
		// DELETE archives the tenant (still shown, archived and deleted);
		// with purge_now its data is purged and its registration removed.
		var deleted, shown, purged registry.Tenant
		f.apiRefusal(t, "DELETE", path+"?purge_now=yes", tok, "", http.StatusBadRequest, "invalid_request")
		f.apiJSON(t, "DELETE", path, tok, "", http.StatusOK, &deleted)
		f.apiJSON(t, "GET", path, tok, "", http.StatusOK, &shown)
		if deleted.Status != registry.StatusArchived || !deleted.Lifecycle.Deleted || !cmp.Equal(shown, deleted) {
			t.Fatalf("DELETE: %+v; then GET: %+v", deleted, shown)
		}
		f.apiJSON(t, "DELETE", path+"?purge_now=true", tok, "", http.StatusOK, &purged)
		if purged.Status != registry.StatusPurged || purged.ID != rec.ID {
			t.Fatalf("DELETE ?purge_now=true: %+v", purged)
		}
		f.apiRefusal(t, "GET", path, tok, "", http.StatusNotFound, "not_found")
		f.apiRefusal(t, "DELETE", path, tok, "", http.StatusNotFound, "not_found")
		for _, m := range []string{"get_tenant", "update_tenant"} {
			if n := len(f.adminEvents(t, string(rec.ID), m, ops, admin.ViaHTTP)); n < 2 {
				t.Errorf("%d admin/%s events, want at least 2", n, m)
			}
		}
		if n := len(f.adminEvents(t, string(rec.ID), "delete_tenant", ops, admin.ViaHTTP)); n != 2 {
			t.Errorf("%d admin/delete_tenant events, want 2", n)
		}
	})
}

// impersonate starts an impersonation through the API and returns the
// grant.
func (f *fixture) impersonate(t *testing.T, adminTok string, id string, body string) *admin.Grant {
	t.Helper()
	var g admin.Grant
	f.apiJSON(t, "POST", "/admin/v1/tenants/"+id+"/impersonations", adminTok, body, http.StatusCreated, &g)
	if !strings.HasPrefix(g.Credential, admin.CredentialPrefix) || g.Impersonation == nil || g.ID == "" {
		t.Fatalf("grant %+v", g)
	}
	return &g
}

// TestImpersonation: an admin acts as one tenant, for a reason, with a
// short-lived read-only credential that never carries admin scope, is
// audited in the tenant's own trail with both identities, and stops
// working when it expires or is ended.
func TestImpersonation(t *testing.T) {
	forEachIssuer(t, setupOptions{tenants: 3}, testImpersonation)
}

func testImpersonation(t *testing.T, f *fixture) {
	const ops, other = "ops@example.com", "lead@example.com"
	tok := f.adminToken(t, ops)
	t0, t1, t2 := f.h.Tenant(0), f.h.Tenant(1), f.h.Tenant(2)
	// Each tenant stores a document under the same key.
	for i, ten := range []*tenanttest.Tenant{t0, t1, t2} {
		if res := ten.Call(t, "put_document", map[string]any{"key": "notes/plan", "content": fmt.Sprintf("secret of tenant %d", i)}); res.IsError {
			t.Fatalf("put_document: %s", res.Text)
		}
	}
	id0 := string(t0.Record.ID)

	t.Run("refused requests", func(t *testing.T) {
		for _, c := range []struct{ body, field string }{
			{`{}`, "reason"},
			{`{"reason":"   "}`, "reason"},
			{`{"reason":"x","scopes":["` + adminScope + `"]}`, "admin scope"},
			{`{"reason":"x","scopes":["read:tools","` + adminScope + `"]}`, "admin scope"},
			{`{"reason":"x","scopes":["two words"]}`, "scopes"},
			{`{"reason":"x","duration":"9h"}`, "duration"},
			{`{"reason":"x","duration":"10s"}`, "duration"},
			{`{"reason":"x","duration":"soon"}`, "duration"},
			{`{"reason":"x","ticket":"` + strings.Repeat("T", admin.MaxTicketLen+1) + `"}`, "ticket"},
			{`{"reason":"x","tenant":"` + string(t1.Record.ID) + `"}`, "tenant"},
		} {
			_, e := f.apiRefusal(t, "POST", "/admin/v1/tenants/"+id0+"/impersonations", tok, c.body, http.StatusBadRequest, "invalid_request")
			if !strings.Contains(e.Error.Message, c.field) {
				t.Errorf("%s: message %q does not name %s", c.body, e.Error.Message, c.field)
			}
		}
		if msg := f.callToolError(t, tok, "impersonate_tenant", map[string]any{"tenant": id0}); !strings.Contains(msg, "reason") {
			t.Errorf("impersonate_tenant without a reason: %q", msg)
		}
		if msg := f.callToolError(t, tok, "impersonate_tenant", map[string]any{"tenant": id0, "reason": "x", "scopes": []string{adminScope}}); !strings.Contains(msg, "admin scope") {
			t.Errorf("impersonate_tenant with the admin scope: %q", msg)
		}
		if gs := f.grantsList(t); len(gs) != 0 {
			t.Fatalf("refused requests made grants: %+v", gs)
		}
	})

	var readGrant *admin.Grant
	t.Run("read-only by default", func(t *testing.T) {
		var g admin.Grant
		f.callOK(t, tok, "impersonate_tenant", map[string]any{
			"tenant": id0, "reason": "customer cannot see their plan", "ticket": "SUP-123", "user": "user-0",
		}, &g)
		readGrant = &g
		if !g.ReadOnly || g.Tenant != t0.Record.ID || g.Admin != ops || g.User != "user-0" || g.Ticket != "SUP-123" ||
			g.ExpiresAt.Sub(g.CreatedAt) != admin.DefaultImpersonationTTL || slices.Contains(g.Scopes, adminScope) {
			t.Fatalf("grant %+v", g.Impersonation)
		}
		cred := g.Credential
		// Exactly the read-only tools; no admin tool.
		if got := f.toolsList(t, cred); !slices.Equal(got, readOnlyTools) {
			t.Fatalf("impersonated tools/list: %v, want %v", got, readOnlyTools)
		}
		// A real MCP client works with it too.
		f.wantClientTools(t, cred, "", readOnlyTools)
		// Reads the tenant's own data, never another's.
		var doc documents.Document
		f.callOK(t, cred, "get_document", map[string]any{"key": "notes/plan"}, &doc)
		if doc.Content != "secret of tenant 0" {
			t.Fatalf("impersonated get_document: %q", doc.Content)
		}
		var keys documents.ListOutput
		f.callOK(t, cred, "list_documents", map[string]any{}, &keys)
		if !slices.Equal(keys.Keys, []string{"notes/plan"}) {
			t.Fatalf("impersonated list_documents: %v", keys.Keys)
		}
		// Writes and admin tools are unknown tools; the data is unchanged.
		for _, name := range []string{"put_document", "delete_document", "list_all_tenants", "impersonate_tenant"} {
			if _, err := f.callTool(t, cred, name, map[string]any{"key": "notes/plan", "content": "overwritten", "tenant": id0, "reason": "x"}); err == nil {
				t.Errorf("impersonation (read-only) called %s", name)
			}
		}
		if res := t0.Call(t, "get_document", map[string]any{"key": "notes/plan"}); !strings.Contains(res.Text, "secret of tenant 0") {
			t.Fatalf("tenant 0's document after refused writes: %s", res.Text)
		}
		// Never on the admin API.
		f.wantForbidden(t, cred)

		// Every request made with it is in tenant 0's chain with both
		// identities; none anywhere else.
		// Requests made with it, besides the client's discovery: 2
		// tools/list, 2 reads, 4 refused calls, and the admin API
		// refusals.
		const mcpRequests = 2 + 2 + 4
		made := mcpRequests + len(adminEndpoints(""))
		isImp := func(e *audit.Event) bool {
			return e.Kind != audit.KindAdmin && e.Detail["impersonation_id"] == g.ID
		}
		counted := func(e *audit.Event) bool {
			return isImp(e) && (e.Method == "tools/list" || e.Method == "tools/call" || strings.HasPrefix(e.Method, "admin "))
		}
		evs := f.waitEvents(t, id0, made, counted)
		if len(evs) != made {
			t.Errorf("%d events of requests made with the credential, want %d", len(evs), made)
		}
		for _, e := range evs {
			if e.Actor == nil || e.Actor.Sub != ops || e.Actor.Issuer != f.adminIss.Issuer() || e.User != "user-0" || e.Tenant != id0 || e.ExternalID != "test-tenant-0" {
				t.Errorf("impersonated event %+v (act %+v)", e, e.Actor)
			}
		}
		var tools []string
		for _, e := range evs {
			if e.Kind == audit.KindToolCall {
				tools = append(tools, e.Tool+":"+e.Outcome)
			}
		}
		for _, want := range []string{"get_document:ok", "list_documents:ok", "put_document:error"} {
			if !slices.Contains(tools, want) {
				t.Errorf("no %s event among %v", want, tools)
			}
		}
		for _, c := range []string{string(t1.Record.ID), string(t2.Record.ID), audit.SystemChain} {
			for _, e := range f.chain(t, c) {
				if isImp(e) || e.Actor != nil && e.Kind != audit.KindAdmin {
					t.Errorf("chain %q has an impersonated event %+v", c, e)
				}
			}
		}
		// The start is in the tenant's trail too, with the reason.
		start := f.adminEvent(t, id0, "impersonate_tenant", ops, admin.ViaMCP)
		if start.Detail["reason"] != "customer cannot see their plan" || start.Detail["ticket"] != "SUP-123" || start.Detail["impersonation_id"] != g.ID {
			t.Errorf("impersonate event detail %v", start.Detail)
		}
		if strings.Contains(fmt.Sprint(start.Detail), cred) {
			t.Error("the credential is in the audit trail")
		}
		// Each such request is logged at warn with both identities.
		warned := 0
		for _, l := range logLines(t, f.logs) {
			if l["msg"] == "impersonated request" {
				warned++
				if l["level"] != "WARN" || l["impersonation_id"] != g.ID || l["admin"] != ops || l["tenant_id"] != id0 {
					t.Errorf("impersonated request log line %v", l)
				}
			}
		}
		if warned < mcpRequests {
			t.Errorf("%d impersonated request log lines, want at least %d", warned, mcpRequests)
		}
	})

	var writeGrant *admin.Grant
	t.Run("write access when asked", func(t *testing.T) {
		g := f.impersonate(t, tok, string(t2.Record.ID), `{"reason":"restore a deleted note","write":true,"duration":"10m"}`)
		if g.ReadOnly || g.User != "impersonator:"+ops || g.ExpiresAt.Sub(g.CreatedAt) != 10*time.Minute {
			t.Fatalf("grant %+v", g.Impersonation)
		}
		writeGrant = g
		if got := f.toolsList(t, g.Credential); !slices.Equal(got, documentTools) {
			t.Fatalf("write impersonation's tools/list: %v", got)
		}
		old := f.wantClientTools(t, g.Credential, "2025-11-25", documentTools)
		if res := old.Call(t, "list_documents", map[string]any{}); res.IsError || !strings.Contains(res.Text, "notes/plan") {
			t.Fatalf("impersonating 2025-11-25 client list_documents: %+v", res)
		}
		f.callOK(t, g.Credential, "put_document", map[string]any{"key": "notes/restored", "content": "back"}, nil)
		if res := t2.Call(t, "get_document", map[string]any{"key": "notes/restored"}); !strings.Contains(res.Text, "back") {
			t.Fatalf("tenant 2 does not see the restored note: %s", res.Text)
		}
		if res := t0.Call(t, "get_document", map[string]any{"key": "notes/restored"}); !res.IsError {
			t.Fatalf("tenant 0 sees tenant 2's note: %s", res.Text)
		}
		if _, err := f.callTool(t, g.Credential, "list_all_tenants", map[string]any{}); err == nil {
			t.Fatal("a write impersonation called an admin tool")
		}
		f.wantForbidden(t, g.Credential)
		evs := f.waitEvents(t, string(t2.Record.ID), 1, func(e *audit.Event) bool {
			return e.Tool == "put_document" && e.Detail["impersonation_id"] == g.ID
		})
		if evs[0].User != "impersonator:"+ops || evs[0].Actor.Sub != ops || evs[0].Outcome != audit.OutcomeOK {
			t.Errorf("put_document event %+v", evs[0])
		}
	})

	t.Run("suspended tenant", func(t *testing.T) {
		id1 := string(t1.Record.ID)
		f.apiJSON(t, "POST", "/admin/v1/tenants/"+id1+"/suspend", tok, `{"reason":"locked out"}`, http.StatusOK, nil)
		_, e := f.apiRefusal(t, "POST", "/admin/v1/tenants/"+id1+"/impersonations", tok, `{"reason":"help"}`, http.StatusBadRequest, "invalid_request")
		if !strings.Contains(e.Error.Message, "include_suspended") {
			t.Errorf("message %q", e.Error.Message)
		}
		if msg := f.callToolError(t, tok, "impersonate_tenant", map[string]any{"tenant": id1, "reason": "help"}); !strings.Contains(msg, "suspended") {
			t.Errorf("impersonate_tenant of a suspended tenant: %q", msg)
		}
		g := f.impersonate(t, tok, id1, `{"reason":"customer locked out","include_suspended":true}`)
		var doc documents.Document
		f.callOK(t, g.Credential, "get_document", map[string]any{"key": "notes/plan"}, &doc)
		if doc.Content != "secret of tenant 1" {
			t.Fatalf("get_document: %q", doc.Content)
		}
		// The tenant itself stays refused.
		f.wantRefused(t, t1.Token, http.StatusForbidden, "")
		start := f.adminEvent(t, id1, "impersonate_tenant", ops, admin.ViaHTTP)
		if start.Detail["include_suspended"] != "true" || start.Outcome != audit.OutcomeOK {
			t.Errorf("impersonate event %+v", start)
		}
		// A credential without include_suspended stops when its tenant is
		// suspended, and works again when it is resumed.
		if writeGrant == nil {
			t.Skip("no write grant")
		}
		id2 := string(t2.Record.ID)
		f.apiJSON(t, "POST", "/admin/v1/tenants/"+id2+"/suspend", tok, "", http.StatusOK, nil)
		if msg := f.wantRefused(t, writeGrant.Credential, http.StatusForbidden, ""); !strings.Contains(msg, "suspended") {
			t.Errorf("impersonating a suspended tenant without include_suspended: %q", msg)
		}
		f.apiJSON(t, "POST", "/admin/v1/tenants/"+id2+"/resume", tok, "", http.StatusOK, nil)
		if got := f.toolsList(t, writeGrant.Credential); !slices.Equal(got, documentTools) {
			t.Fatalf("after resume: %v", got)
		}
	})

	t.Run("end and revoke", func(t *testing.T) {
		if readGrant == nil {
			t.Skip("no read-only grant")
		}
		cred := readGrant.Credential
		if got := f.toolsList(t, cred); !slices.Equal(got, readOnlyTools) {
			t.Fatalf("before ending: %v", got)
		}
		var ended admin.Impersonation
		f.callOK(t, tok, "end_impersonation", map[string]any{"impersonation_id": readGrant.ID}, &ended)
		if ended.EndedAt.IsZero() || ended.EndedBy != ops {
			t.Fatalf("ended %+v", ended)
		}
		if msg := f.wantRefused(t, cred, http.StatusUnauthorized, "invalid_token"); !strings.Contains(msg, "ended") {
			t.Errorf("ended credential: %q", msg)
		}
		e := f.adminEvent(t, id0, "end_impersonation", ops, admin.ViaMCP)
		if e.Detail["impersonation_id"] != readGrant.ID || e.Detail["revoked_admin"] != "" {
			t.Errorf("end event %v", e.Detail)
		}
		// Ending it again changes nothing.
		var again admin.Impersonation
		f.callOK(t, tok, "end_impersonation", map[string]any{"impersonation_id": readGrant.ID}, &again)
		if !again.EndedAt.Equal(ended.EndedAt) || again.EndedBy != ops {
			t.Errorf("ended twice: %+v", again)
		}

		// Another admin revokes a grant through the API.
		g := f.impersonate(t, tok, id0, `{"reason":"second look"}`)
		if got := f.toolsList(t, g.Credential); !slices.Equal(got, readOnlyTools) {
			t.Fatalf("new grant: %v", got)
		}
		otherTok := f.adminToken(t, other)
		var revoked admin.Impersonation
		f.apiJSON(t, "POST", "/admin/v1/impersonations/"+g.ID+"/end", otherTok, "", http.StatusOK, &revoked)
		if revoked.EndedBy != other || revoked.Admin != ops {
			t.Fatalf("revoked %+v", revoked)
		}
		f.wantRefused(t, g.Credential, http.StatusUnauthorized, "invalid_token")
		var revokes []*audit.Event
		for _, e := range f.chain(t, id0) {
			if e.Method == "admin/end_impersonation" && e.Actor.Sub == other {
				revokes = append(revokes, e)
			}
		}
		if len(revokes) != 1 || revokes[0].Detail["revoked_admin"] != ops || revokes[0].Detail["via"] != admin.ViaHTTP {
			t.Errorf("revoke events %+v", revokes)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		var g admin.Grant
		f.callOK(t, tok, "impersonate_tenant", map[string]any{"tenant": id0, "reason": "quick check", "duration": "5m"}, &g)
		if g.ExpiresAt.Sub(g.CreatedAt) != 5*time.Minute {
			t.Fatalf("grant %+v", g.Impersonation)
		}
		if got := f.toolsList(t, g.Credential); !slices.Equal(got, readOnlyTools) {
			t.Fatalf("fresh grant: %v", got)
		}
		f.clock.Advance(5*time.Minute - time.Second)
		if got := f.toolsList(t, g.Credential); !slices.Equal(got, readOnlyTools) {
			t.Fatalf("a second before expiry: %v", got)
		}
		f.clock.Advance(time.Second)
		if msg := f.wantRefused(t, g.Credential, http.StatusUnauthorized, "invalid_token"); !strings.Contains(msg, "expired") {
			t.Errorf("expired credential: %q", msg)
		}
		// The refusal is recorded; not as the tenant (the credential no
		// longer stands for it).
		f.waitEvents(t, audit.SystemChain, 1, func(e *audit.Event) bool {
			return e.Kind == audit.KindRefusal && e.ErrorClass == "invalid_token"
		})
	})

	t.Run("listing", func(t *testing.T) {
		var all, active struct {
			Impersonations []*admin.Impersonation `json:"impersonations"`
		}
		resp, body := f.do(t, "GET", "/admin/v1/impersonations", tok, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("list: %d %s", resp.StatusCode, body)
		}
		if bytes.Contains(body, []byte(admin.CredentialPrefix)) || bytes.Contains(body, []byte(`"credential"`)) {
			t.Fatalf("the listing shows credentials: %s", body)
		}
		if err := json.Unmarshal(body, &all); err != nil {
			t.Fatal(err)
		}
		stored := f.grantsList(t)
		if len(all.Impersonations) != len(stored) || len(stored) < 5 {
			t.Fatalf("listed %d grants, stored %d", len(all.Impersonations), len(stored))
		}
		for i := 1; i < len(all.Impersonations); i++ {
			if all.Impersonations[i].CreatedAt.After(all.Impersonations[i-1].CreatedAt) {
				t.Fatal("not newest first")
			}
		}
		now := f.clock.Now()
		var wantActive []string
		for _, g := range stored {
			if g.ActiveAt(now) {
				wantActive = append(wantActive, g.ID)
			}
		}
		f.apiJSON(t, "GET", "/admin/v1/impersonations?active=true", tok, "", http.StatusOK, &active)
		var gotActive []string
		for _, g := range active.Impersonations {
			gotActive = append(gotActive, g.ID)
		}
		if len(wantActive) == 0 || len(wantActive) == len(stored) || !slices.Equal(gotActive, wantActive) {
			t.Fatalf("active=true: %v, want %v (of %d)", gotActive, wantActive, len(stored))
		}
		var mcpActive struct {
			Impersonations []*admin.Impersonation `json:"impersonations"`
		}
		f.callOK(t, tok, "list_impersonations", map[string]any{"active": true}, &mcpActive)
		if len(mcpActive.Impersonations) != len(wantActive) {
			t.Fatalf("list_impersonations active: %d, want %d", len(mcpActive.Impersonations), len(wantActive))
		}
		var one struct {
			Impersonations []*admin.Impersonation `json:"impersonations"`
		}
		f.apiJSON(t, "GET", "/admin/v1/impersonations?tenant="+string(t1.Record.ID), tok, "", http.StatusOK, &one)
		if len(one.Impersonations) != 1 || one.Impersonations[0].Tenant != t1.Record.ID || !one.Impersonations[0].IncludeSuspended {
			t.Fatalf("tenant=%s: %+v", t1.Record.ID, one.Impersonations)
		}
		f.apiJSON(t, "GET", "/admin/v1/impersonations?admin="+other, tok, "", http.StatusOK, &one)
		if len(one.Impersonations) != 0 {
			t.Fatalf("admin=%s: %+v", other, one.Impersonations)
		}
		var paged []string
		before := ""
		for range len(stored) {
			var page struct {
				Impersonations []*admin.Impersonation `json:"impersonations"`
			}
			f.apiJSON(t, "GET", "/admin/v1/impersonations?limit=2&before="+before, tok, "", http.StatusOK, &page)
			if len(page.Impersonations) > 2 {
				t.Fatalf("limit=2: %d", len(page.Impersonations))
			}
			for _, g := range page.Impersonations {
				paged = append(paged, g.ID)
			}
			if len(page.Impersonations) < 2 {
				break
			}
			before = page.Impersonations[1].ID
		}
		var storedIDs []string
		for _, g := range stored {
			storedIDs = append(storedIDs, g.ID)
		}
		if !slices.Equal(paged, storedIDs) {
			t.Fatalf("paged by 2: %v, want %v", paged, storedIDs)
		}
		f.apiRefusal(t, "GET", "/admin/v1/impersonations?active=yes", tok, "", http.StatusBadRequest, "invalid_request")
	})

	t.Run("deleted and registered again", func(t *testing.T) {
		var rec registry.Tenant
		f.apiJSON(t, "POST", "/admin/v1/tenants", tok, `{"external_id":"org_phoenix"}`, http.StatusCreated, &rec)
		own := f.tenantIssuerToken(t, "org_phoenix", "alice", tenanttest.DefaultScopes...)
		f.callOK(t, own, "put_document", map[string]any{"key": "old", "content": "from the first life"}, nil)
		g := f.impersonate(t, tok, string(rec.ID), `{"reason":"migration check"}`)
		f.callOK(t, g.Credential, "get_document", map[string]any{"key": "old"}, nil)

		// Deleted, the tenant is archived: its credential is refused, its
		// external id still taken until its data is purged.
		f.apiJSON(t, "DELETE", "/admin/v1/tenants/"+string(rec.ID), tok, "", http.StatusOK, nil)
		if msg := f.wantRefused(t, g.Credential, http.StatusForbidden, ""); !strings.Contains(msg, "archived") {
			t.Errorf("credential of a deleted tenant: %q", msg)
		}
		f.apiRefusal(t, "POST", "/admin/v1/tenants", tok, `{"external_id":"org_phoenix"}`, http.StatusConflict, "exists")
		f.apiJSON(t, "DELETE", "/admin/v1/tenants/"+string(rec.ID)+"?purge_now=true", tok, "", http.StatusOK, nil)
		var again registry.Tenant
		f.apiJSON(t, "POST", "/admin/v1/tenants", tok, `{"external_id":"org_phoenix"}`, http.StatusCreated, &again)
		if again.ID == rec.ID {
			t.Fatal("re-registered tenant kept its internal id")
		}
		if msg := f.wantRefused(t, g.Credential, http.StatusUnauthorized, "invalid_token"); !strings.Contains(msg, "no longer exists") {
			t.Errorf("old credential: %q", msg)
		}
		// The new tenant's own user sees nothing of the old one's data.
		var keys documents.ListOutput
		f.callOK(t, own, "list_documents", map[string]any{}, &keys)
		if len(keys.Keys) != 0 {
			t.Fatalf("the new tenant sees %v", keys.Keys)
		}
		for _, e := range f.chain(t, string(again.ID)) {
			if e.Detail["impersonation_id"] == g.ID {
				t.Errorf("the old credential reached the new tenant's chain: %+v", e)
			}
		}
	})
}

// staleAuthenticator answers every credential with what the service said
// the first time: an authenticator that read a grant's tenant just before
// the tenant was deleted and registered again.
type staleAuthenticator struct {
	next server.ImpersonationAuthenticator
	mu   sync.Mutex
	seen map[string]*server.Impersonation
}

func (a *staleAuthenticator) AuthenticateImpersonation(ctx context.Context, credential string) (*server.Impersonation, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if imp, ok := a.seen[credential]; ok {
		return imp, nil
	}
	imp, err := a.next.AuthenticateImpersonation(ctx, credential)
	if err == nil {
		a.seen[credential] = imp
	}
	return imp, err
}

// TestImpersonationOfReplacedTenant: the server itself serves an
// impersonation only for the internal id its grant names, even if the
// authenticator's view of the tenant is stale: a tenant deleted and
// registered again under the same external id is not reachable.
func TestImpersonationOfReplacedTenant(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{separateIssuer: true, impersonation: func(next server.ImpersonationAuthenticator) server.ImpersonationAuthenticator {
		return &staleAuthenticator{next: next, seen: map[string]*server.Impersonation{}}
	}})
	tok := f.adminToken(t, "ops@example.com")
	old := f.h.Tenant(0)
	g := f.impersonate(t, tok, string(old.Record.ID), `{"reason":"check"}`)
	if got := f.toolsList(t, g.Credential); !slices.Equal(got, readOnlyTools) {
		t.Fatalf("tools/list: %v", got)
	}
	f.apiJSON(t, "DELETE", "/admin/v1/tenants/"+string(old.Record.ID)+"?purge_now=true", tok, "", http.StatusOK, nil)
	var again registry.Tenant
	f.apiJSON(t, "POST", "/admin/v1/tenants", tok, `{"external_id":"test-tenant-0"}`, http.StatusCreated, &again)
	if msg := f.wantRefused(t, g.Credential, http.StatusUnauthorized, "invalid_token"); !strings.Contains(msg, "no longer exists") {
		t.Errorf("stale credential: %q", msg)
	}
	// The refusal is recorded, but not in the new tenant's trail.
	f.waitEvents(t, audit.SystemChain, 1, func(e *audit.Event) bool {
		return e.Kind == audit.KindRefusal && e.Detail["impersonation_id"] == g.ID
	})
	for _, e := range f.chain(t, string(again.ID)) {
		if e.Detail["impersonation_id"] == g.ID {
			t.Errorf("the old credential reached the new tenant's chain: %+v", e)
		}
	}
}

// TestAdminRefusedWhenAuditCannotRecord: with the audit queue full, an
// admin operation is refused (503, Retry-After) and not done, never done
// unrecorded; once the audit store keeps up it is served again.
func TestAdminRefusedWhenAuditCannotRecord(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{writer: &audit.WriterOptions{QueueSize: 2, MaxWait: 20 * time.Millisecond, FlushInterval: time.Millisecond}})
	tok := f.adminToken(t, "ops@example.com")
	f.chain(t, audit.SystemChain) // everything so far is stored
	f.gate.close()
	// Two served requests fill the queue: their events cannot be stored.
	for range 2 {
		if got := f.toolsList(t, f.h.Tenant(0).Token); !slices.Equal(got, documentTools) {
			t.Fatalf("tools/list: %v", got)
		}
	}
	before := f.snapshot(t)
	id := string(f.h.Tenant(1).Record.ID)
	for _, ep := range []struct{ method, path, body string }{
		{"POST", "/admin/v1/tenants", `{"external_id":"org_unrecorded"}`},
		{"POST", "/admin/v1/tenants/" + id + "/suspend", `{"reason":"x"}`},
		{"DELETE", "/admin/v1/tenants/" + id, ""},
		{"POST", "/admin/v1/tenants/" + id + "/impersonations", `{"reason":"x"}`},
	} {
		resp, _ := f.apiRefusal(t, ep.method, ep.path, tok, ep.body, http.StatusServiceUnavailable, "audit_unavailable")
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s: no Retry-After", ep.method, ep.path)
		}
	}
	// Over MCP the request itself cannot be recorded: refused before any tool runs.
	resp, r := f.rpc(t, tok, "tools/call", map[string]any{"name": "suspend_tenant", "arguments": map[string]any{"tenant": id}})
	if resp.StatusCode != http.StatusServiceUnavailable || r.Error == nil {
		t.Fatalf("suspend_tenant over MCP with the audit queue full: %d %+v", resp.StatusCode, r.Error)
	}
	if diff := cmp.Diff(before, f.snapshot(t)); diff != "" {
		t.Fatalf("unrecorded admin operations changed the registry (-before +after):\n%s", diff)
	}
	if gs := f.grantsList(t); len(gs) != 0 {
		t.Fatalf("an unrecorded impersonation was started: %+v", gs)
	}
	f.gate.open()
	var rec registry.Tenant
	f.apiJSON(t, "POST", "/admin/v1/tenants", tok, `{"external_id":"org_unrecorded"}`, http.StatusCreated, &rec)
	f.adminEvent(t, string(rec.ID), "create_tenant", "ops@example.com", admin.ViaHTTP)
}

// TestTenantSeesImpersonationInOwnTrail: the customer reads its own audit
// trail (the audit_log tool) and finds who impersonated it, why, and what
// was done, with both identities.
func TestTenantSeesImpersonationInOwnTrail(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{server: func(o *server.Options) { o.AuditLogTool = true }})
	const ops = "ops@example.com"
	tok := f.adminToken(t, ops)
	t0 := f.h.Tenant(0)
	id0 := string(t0.Record.ID)
	g := f.impersonate(t, tok, id0, `{"reason":"customer asked why sync fails","ticket":"SUP-9"}`)
	f.callOK(t, g.Credential, "list_documents", map[string]any{}, nil)
	f.waitEvents(t, id0, 1, func(e *audit.Event) bool { return e.Tool == "list_documents" })

	reader := f.h.Token(0, auth.TokenRequest{Scopes: append(slices.Clone(tenanttest.DefaultScopes), server.DefaultAuditLogScope)})
	var log struct {
		Events []struct {
			Event audit.Event `json:"event"`
		} `json:"events"`
	}
	f.callOK(t, reader, "audit_log", map[string]any{}, &log)
	var started, listed bool
	for _, e := range log.Events {
		ev := e.Event
		switch {
		case ev.Method == "admin/impersonate_tenant":
			started = ev.Actor != nil && ev.Actor.Sub == ops && ev.Detail["reason"] == "customer asked why sync fails" &&
				ev.Detail["ticket"] == "SUP-9" && ev.Detail["impersonation_id"] == g.ID
		case ev.Tool == "list_documents":
			listed = ev.Actor != nil && ev.Actor.Sub == ops && ev.User == "impersonator:"+ops && ev.Detail["impersonation_id"] == g.ID
		}
	}
	if !started || !listed {
		t.Fatalf("the tenant's audit_log: start seen %v, request seen %v: %+v", started, listed, log.Events)
	}
	// Another tenant's trail shows nothing of it.
	other := f.h.Token(1, auth.TokenRequest{Scopes: append(slices.Clone(tenanttest.DefaultScopes), server.DefaultAuditLogScope)})
	res, err := f.callTool(t, other, "audit_log", map[string]any{})
	if err != nil || res.IsError {
		t.Fatalf("tenant 1's audit_log: %v %+v", err, res)
	}
	if strings.Contains(string(res.Structured), g.ID) || strings.Contains(string(res.Structured), ops) {
		t.Fatalf("tenant 1's trail shows tenant 0's impersonation: %s", res.Structured)
	}
}
