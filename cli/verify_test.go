package cli_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	mcpserver "github.com/mark3labs/mcp-go/server"
	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/cli"
	documentstools "github.com/tenantmcp/tenantmcp/examples/documents"
	"github.com/tenantmcp/tenantmcp/examples/notes"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	tmserver "github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/sqlitestore"
	"github.com/tenantmcp/tenantmcp/tenant"
	"github.com/tenantmcp/tenantmcp/tenanttest"
)

// verifyReport is the part of "verify --json" the tests read.
type verifyReport struct {
	URL      string   `json:"url"`
	Protocol string   `json:"protocol"`
	Stateful bool     `json:"stateful"`
	Toolsets []string `json:"toolsets"`
	Markers  []string `json:"markers"`
	Checks   []struct {
		ID       string `json:"id"`
		Attack   string `json:"attack"`
		Status   string `json:"status"`
		Evidence string `json:"evidence"`
	} `json:"checks"`
	RateLimitedSeconds float64 `json:"rate_limited_seconds"`
	Interrupted        bool    `json:"interrupted"`
}

// status returns the status of check id ("" if it did not run).
func (r *verifyReport) status(id string) string {
	for _, c := range r.Checks {
		if c.ID == id {
			return c.Status
		}
	}
	return ""
}

func (r *verifyReport) String() string {
	var b strings.Builder
	for _, c := range r.Checks {
		b.WriteString(c.Status + "\t" + c.ID + "\t" + c.Evidence + "\n")
	}
	return b.String()
}

// runVerify runs "verify --json" with args and parses its report.
func runVerify(t *testing.T, ctx context.Context, env []string, args ...string) (int, *verifyReport, string) {
	t.Helper()
	var out, errb syncBuffer
	code := cli.RunWith(ctx, nil, append([]string{"verify", "--json"}, args...), &out, &errb, env)
	var rep verifyReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("verify --json (exit %d) printed no JSON report: %v\nstdout:\n%s\nstderr:\n%s", code, err, out.String(), errb.String())
	}
	return code, &rep, errb.String()
}

// allPassOrNA fails the test unless every check passed or did not apply,
// and each of want ran with status PASS.
func allPassOrNA(t *testing.T, rep *verifyReport, want ...string) {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Status != "PASS" && c.Status != "N/A" {
			t.Errorf("%s %s: %s", c.Status, c.ID, c.Evidence)
		}
	}
	for _, id := range want {
		if st := rep.status(id); st != "PASS" {
			t.Errorf("check %s: %q, want PASS\n%s", id, st, rep)
		}
	}
}

// dataChecks are the checks that attack A's data through the tools.
var dataChecks = []string{"list", "read", "spoof-args", "spoof-headers", "malformed", "overwrite", "delete", "cleanup"}

// tokenChecks are the checks of forged and misplaced tokens.
var tokenChecks = []string{"no-token", "forged-signature", "forged-claims", "expired", "alg-none", "hs256-public-key", "wrong-audience", "wrong-issuer", "unknown-kid"}

// noMarkersLeft fails the test if A (or B) still lists a marker of the run.
func noMarkersLeft(t *testing.T, c *tenanttest.Client, rep *verifyReport) {
	t.Helper()
	if len(rep.Markers) == 0 {
		t.Fatalf("verify wrote no markers:\n%s", rep)
	}
	got, isErr := callTool(t, c, "list_documents", map[string]any{})
	if isErr || strings.Contains(got, "tmverify") {
		t.Fatalf("markers left after verify: %s", got)
	}
}

// noGoroutinesLeft returns a check that what ran since left no goroutine
// behind. The server's own are not verify's: the
// tenant databases it opens on first use.
func noGoroutinesLeft(t *testing.T) func() {
	opts := []goleak.Option{goleak.IgnoreCurrent(),
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionCleaner"),
	}
	return func() { goleak.VerifyNone(t, opts...) }
}

var adminTok = regexp.MustCompile(`(?m)^  ADMIN_TOKEN=(\S+)$`)

// TestVerifyOnEachIsolation: against dev on every isolation strategy
// (an SQLite file per tenant, prefixed keys, PostgreSQL row-level
// security and a schema per tenant), with the admin token, every check
// passes or does not apply, verify exits 0, and A's list shows none of
// its markers afterwards.
func TestVerifyOnEachIsolation(t *testing.T) {
	for _, iso := range []string{"database_per_tenant", "prefix", "row_level_security", "schema_per_tenant"} {
		t.Run(iso, func(t *testing.T) {
			// A limit high enough that the run does not wait (the waiting
			// itself is tested in TestVerifyStateful).
			env := []string{"TENANTMCP_AUTH_MULTI_TENANT_DEFAULT_RATE_LIMIT=100000"}
			args := []string{"dev", "--addr", freeAddr(t), "--data", t.TempDir(), "--isolation", iso}
			if iso == "row_level_security" || iso == "schema_per_tenant" {
				admin, owner, app := testenv.PostgresWithRoles(t)
				env = append(env, "TENANTMCP_DATABASE_OWNER_ROLE="+owner, "TENANTMCP_DATABASE_APP_ROLE="+app)
				args = append(args, "--database", admin)
			}
			srv := start(t, env, "Stop with Ctrl-C", args...)
			out := srv.out.String()
			if !strings.Contains(out, "isolation: "+iso) {
				t.Fatalf("dev output:\n%s", out)
			}
			url := "http://" + args[2] + "/mcp"
			toks := devTokens(t, out)
			m := adminTok.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("dev printed no admin token:\n%s", out)
			}
			leftNone := noGoroutinesLeft(t)
			code, rep, errOut := runVerify(t, context.Background(), nil, "--url", url, "--token-a", toks["acme"], "--token-b", toks["globex"], "--admin-token", m[1])
			leftNone()
			if code != 0 {
				t.Errorf("verify exit %d: %s\n%s", code, errOut, rep)
			}
			allPassOrNA(t, rep, append(append(dataChecks, tokenChecks...), "listen-stream", "admin-api", "admin-tools", "metrics")...)
			if st := rep.status("session-replay"); st != "N/A" || rep.Stateful {
				t.Errorf("dev is stateless: session-replay %q, stateful %v", st, rep.Stateful)
			}
			if st := rep.status("get-stream"); st != "N/A" {
				t.Errorf("dev is stateless: get-stream %q", st)
			}
			if rep.Protocol != "2026-07-28" || len(rep.Toolsets) != 1 || rep.Toolsets[0] != "put_document/get_document/list_documents/delete_document" {
				t.Errorf("protocol %q, toolsets %v", rep.Protocol, rep.Toolsets)
			}
			noMarkersLeft(t, connect(t, url, toks["acme"]), rep)
			noMarkersLeft(t, connect(t, url, toks["globex"]), rep)
			if iso != "database_per_tenant" {
				return
			}
			// The table for people: one line per attack, the totals.
			code, table, errOut := run(t, nil, "verify", "--url", url, "--token-a", toks["acme"], "--token-b", toks["globex"])
			if code != 0 || !strings.Contains(table, "N/A     session-replay") || !regexp.MustCompile(`(?m)^PASS +alg-none +`).MatchString(table) ||
				!regexp.MustCompile(`\d+ PASS, 0 LEAK, \d+ N/A, 0 ERROR`).MatchString(table) {
				t.Errorf("verify table (exit %d, %s):\n%s", code, errOut, table)
			}
		})
	}
}

// sharedBackend is a deliberately broken storage backend: whatever tenant
// a handle is bound to, it reads and writes one shared tenant's data.
type sharedBackend struct {
	store.Backend
	id tenant.ID
}

func (s sharedBackend) Get(ctx context.Context, _ tenant.ID, key string) ([]byte, error) {
	return s.Backend.Get(ctx, s.id, key)
}

func (s sharedBackend) Put(ctx context.Context, _ tenant.ID, key string, value []byte) error {
	return s.Backend.Put(ctx, s.id, key, value)
}

func (s sharedBackend) Delete(ctx context.Context, _ tenant.ID, key string) error {
	return s.Backend.Delete(ctx, s.id, key)
}

func (s sharedBackend) List(ctx context.Context, _ tenant.ID, prefix string) ([]string, error) {
	return s.Backend.List(ctx, s.id, prefix)
}

// TestVerifyFindsLeaks: a server whose storage maps every tenant to one
// shared tenant makes verify report LEAK lines and exit 1; tokens are
// still refused (those lines pass), and the markers are cleaned up.
func TestVerifyFindsLeaks(t *testing.T) {
	docs, err := sqlitestore.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { docs.Close() })
	h := tenanttest.New(t, 2, &tenanttest.Options{
		Tools:  documentstools.Tools(),
		Stores: &store.Set{Docs: sharedBackend{Backend: docs, id: tenant.NewID()}},
	})
	code, rep, errOut := runVerify(t, context.Background(), nil, "--url", h.URL, "--token-a", h.Tenant(0).Token, "--token-b", h.Tenant(1).Token)
	if code != 1 || !strings.Contains(errOut, "found a leak between tenants") {
		t.Errorf("verify exit %d (%s), want 1 for a leak", code, errOut)
	}
	for _, id := range []string{"list", "read", "spoof-args", "spoof-headers", "overwrite", "delete"} {
		if st := rep.status(id); st != "LEAK" {
			t.Errorf("check %s: %q, want LEAK\n%s", id, st, rep)
		}
	}
	for _, id := range tokenChecks {
		if st := rep.status(id); st != "PASS" {
			t.Errorf("check %s: %q, want PASS (the tokens are still checked)\n%s", id, st, rep)
		}
	}
	noMarkersLeft(t, h.Tenant(0).Client, rep)
}

// auditTool is a tool only tenant 0 is allowed: B's calls of it must be
// refused.
var auditTool = tmserver.NewTool("tenant_report", "A report of the tenant's activity.", func(ctx context.Context, _ struct{}) (string, error) {
	tc, err := tenant.From(ctx)
	if err != nil {
		return "", err
	}
	return "report for " + tc.ExternalID, nil
}, tmserver.ReadOnly())

// onlyTenant0 lets tenant 1 use every tool but tenant_report.
func onlyTenant0(i int, rec *registry.Tenant) {
	if i == 1 {
		rec.AllowedTools = []string{"put_document", "get_document", "list_documents", "delete_document"}
	}
}

// TestVerifyStateful: on a server with MCP sessions, the session-replay
// and GET-stream checks run and pass, a tool hidden from B is refused, and
// a rate limit lower than the run needs is waited out rather than
// deciding checks.
func TestVerifyStateful(t *testing.T) {
	h := tenanttest.New(t, 2, &tenanttest.Options{
		Tools:  append(documentstools.Tools(), auditTool),
		Tenant: onlyTenant0,
		Server: func(o *tmserver.Options) {
			o.Stateful = true
			o.DefaultLimit = ratelimit.Limit{PerMinute: 3000, Burst: 40}
		},
	})
	leftNone := noGoroutinesLeft(t)
	code, rep, errOut := runVerify(t, context.Background(), nil, "--url", h.URL, "--token-a", h.Tenant(0).Token, "--token-b", h.Tenant(1).Token)
	leftNone()
	if code != 0 {
		t.Errorf("verify exit %d: %s", code, errOut)
	}
	allPassOrNA(t, rep, append(dataChecks, "hidden-tools", "session-replay", "get-stream", "listen-stream")...)
	if !rep.Stateful {
		t.Errorf("the server is stateful, the report says not")
	}
	if rep.RateLimitedSeconds == 0 {
		t.Errorf("a burst of 40 did not make verify wait: %v", rep.RateLimitedSeconds)
	}
	noMarkersLeft(t, h.Tenant(0).Client, rep)
}

// broadcastingPut is put_document broken the way a careless tool could
// be: it tells every connected client what it stored.
func broadcastingPut() []tmserver.Tool {
	tools := documentstools.Tools()
	inner := tools[0].Handler
	tools[0].Handler = func(ctx context.Context, args json.RawMessage) (*tmserver.Result, error) {
		if ms := mcpserver.ServerFromContext(ctx); ms != nil {
			ms.SendNotificationToAllClients("notifications/message", map[string]any{"level": "info", "data": "stored " + string(args)})
		}
		return inner(ctx, args)
	}
	return tools
}

// TestVerifyFindsStreamLeak: a tool that broadcasts what it stores leaks
// A's data into B's GET stream; verify reports it.
func TestVerifyFindsStreamLeak(t *testing.T) {
	h := tenanttest.New(t, 2, &tenanttest.Options{
		Tools:  broadcastingPut(),
		Server: func(o *tmserver.Options) { o.Stateful = true },
	})
	code, rep, _ := runVerify(t, context.Background(), nil, "--url", h.URL, "--token-a", h.Tenant(0).Token, "--token-b", h.Tenant(1).Token)
	if code != 1 || rep.status("get-stream") != "LEAK" {
		t.Fatalf("verify exit %d, get-stream %q, want 1 and LEAK\n%s", code, rep.status("get-stream"), rep)
	}
	if st := rep.status("read"); st != "PASS" {
		t.Errorf("read: %q, want PASS (the data itself is kept apart)", st)
	}
}

// TestVerifyInterrupted: cancelled in the middle (as Ctrl-C does), verify
// stops, says so, and still deletes every marker it wrote.
func TestVerifyInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tools := documentstools.Tools()
	inner := tools[3].Handler // delete_document
	tools[3].Handler = func(c context.Context, args json.RawMessage) (*tmserver.Result, error) {
		if tc, err := tenant.From(c); err == nil && tc.ExternalID == "test-tenant-1" {
			cancel() // B's first delete: the markers exist by now
		}
		return inner(c, args)
	}
	h := tenanttest.New(t, 2, &tenanttest.Options{Tools: tools})
	code, rep, errOut := runVerify(t, ctx, nil, "--url", h.URL, "--token-a", h.Tenant(0).Token, "--token-b", h.Tenant(1).Token)
	if code != 1 || !strings.Contains(errOut, "interrupted") || !rep.Interrupted {
		t.Errorf("interrupted verify: exit %d, %q, interrupted %v", code, errOut, rep.Interrupted)
	}
	if rep.status("delete") != "" || rep.status("cleanup") != "PASS" {
		t.Errorf("interrupted during overwrite: delete %q, cleanup %q\n%s", rep.status("delete"), rep.status("cleanup"), rep)
	}
	noMarkersLeft(t, h.Tenant(0).Client, rep)
	noMarkersLeft(t, h.Tenant(1).Client, rep)
}

// TestVerifyNamedTools: the notes tools (which have no delete tool), found
// by name or named with the flags; the markers that cannot be deleted are
// named in the cleanup line.
func TestVerifyNamedTools(t *testing.T) {
	opts := &cli.Options{Name: "notes-server", Tools: notes.Tools()}
	addr := freeAddr(t)
	srv := startWith(t, opts, []string{"TENANTMCP_AUTH_MULTI_TENANT_DEFAULT_RATE_LIMIT=100000"}, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", t.TempDir())
	toks := devTokens(t, srv.out.String())
	url := "http://" + addr + "/mcp"
	for _, named := range [][]string{nil, {"--write-tool", "save_note", "--read-tool", "get_note", "--list-tool", "list_notes"}} {
		args := append([]string{"--url", url, "--token-a", toks["acme"], "--token-b", toks["globex"]}, named...)
		code, rep, errOut := runVerify(t, context.Background(), nil, args...)
		if code != 0 {
			t.Errorf("verify %v: exit %d: %s", named, code, errOut)
		}
		allPassOrNA(t, rep, "list", "read", "overwrite", "malformed")
		if len(rep.Toolsets) != 1 || rep.Toolsets[0] != "save_note/get_note/list_notes" {
			t.Errorf("toolsets %v", rep.Toolsets)
		}
		if rep.status("delete") != "N/A" || rep.status("cleanup") != "N/A" {
			t.Errorf("no delete tool: delete %q, cleanup %q\n%s", rep.status("delete"), rep.status("cleanup"), rep)
		}
		for _, c := range rep.Checks {
			if c.ID == "cleanup" && !strings.Contains(c.Evidence, rep.Markers[0]) {
				t.Errorf("the cleanup line does not name the markers left: %s", c.Evidence)
			}
		}
	}
	// A tool the server does not serve is named in an ERROR line.
	code, rep, errOut := runVerify(t, context.Background(), nil, "--url", url, "--token-a", toks["acme"], "--token-b", toks["globex"], "--write-tool", "put_document", "--read-tool", "get_note")
	if code != 1 || !strings.Contains(errOut, "could not run") || rep.status("markers") != "ERROR" || !strings.Contains(rep.String(), `not served a tool "put_document"`) {
		t.Errorf("an unknown tool: exit %d: %s\n%s", code, errOut, rep)
	}
}

// TestVerifyUsage: --help explains every flag with examples; missing or
// contradictory flags are usage errors.
func TestVerifyUsage(t *testing.T) {
	code, out, _ := run(t, nil, "verify", "--help")
	if code != 0 {
		t.Fatalf("verify --help: exit %d", code)
	}
	for _, want := range []string{"--url", "--token-a", "--token-b", "--admin-token", "--json", "--write-tool", "--read-tool", "--list-tool", "--delete-tool", "--timeout",
		"Examples:", "tenantmcp verify --url", "TENANTMCP_VERIFY_TOKEN_A", "PASS, LEAK or N/A", "Exit status"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify --help does not mention %q:\n%s", want, out)
		}
	}
	for _, c := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"verify", "--token-a", "a", "--token-b", "b"}, nil, "--url is required"},
		{[]string{"verify", "--url", "http://127.0.0.1:1/mcp", "--token-a", "a"}, nil, "--token-a and --token-b are required"},
		{[]string{"verify", "--url", "http://127.0.0.1:1/mcp", "--token-a", "a", "--token-b", "b", "--write-tool", "put_document"}, nil, "go together"},
		{[]string{"verify", "--url", "http://127.0.0.1:1/mcp", "--token-a", "a", "--token-b", "a"}, nil, "the same token"},
		{[]string{"verify", "--url", "ftp://x/mcp"}, []string{"TENANTMCP_VERIFY_TOKEN_A=a", "TENANTMCP_VERIFY_TOKEN_B=b"}, "want the MCP endpoint"},
	} {
		code, _, errOut := run(t, c.env, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d %q, want 2 and %q", c.args, code, errOut, c.want)
		}
	}
	// Nothing listening: ERROR lines, exit 1, still a report.
	code, rep, errOut := runVerify(t, context.Background(), nil, "--url", "http://"+freeAddr(t)+"/mcp", "--token-a", "opaque-a", "--token-b", "opaque-b")
	if code != 1 || rep.status("connect") != "ERROR" || strings.Contains(rep.String(), "LEAK\t") || !strings.Contains(errOut, "could not run") {
		t.Errorf("no server: exit %d %s\n%s", code, errOut, rep)
	}
}
