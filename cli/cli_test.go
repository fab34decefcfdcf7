package cli_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/tenantmcp/tenantmcp/cli"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/tenanttest"
)

// syncBuffer collects output written while the test reads it.
type syncBuffer = testenv.SyncBuffer

// run runs the CLI to completion.
func run(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runWith(t, nil, env, args...)
}

// runWith runs the command line of a binary of your own (cli.RunWith).
func runWith(t *testing.T, opts *cli.Options, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb syncBuffer
	code = cli.RunWith(context.Background(), opts, args, &out, &errb, env)
	return code, out.String(), errb.String()
}

// server is a long-running command (dev or serve) started in-process.
type server struct {
	out, err *syncBuffer
	cancel   func()
	done     chan int
}

func start(t *testing.T, env []string, ready string, args ...string) *server {
	t.Helper()
	return startWith(t, nil, env, ready, args...)
}

// startWith starts a long-running command of a binary of your own.
func startWith(t *testing.T, opts *cli.Options, env []string, ready string, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{out: &syncBuffer{}, err: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() { s.done <- cli.RunWith(ctx, opts, args, s.out, s.err, env) }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(s.out.String()+s.err.String(), ready) {
		select {
		case code := <-s.done:
			s.done <- code // for the cleanup's stop
			t.Fatalf("%v exited with %d before ready:\nstdout:\n%s\nstderr:\n%s", args, code, s.out, s.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v not ready after 30s:\nstdout:\n%s\nstderr:\n%s", args, s.out, s.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// stop cancels the command (as SIGINT would) and returns its exit code.
func (s *server) stop(t *testing.T) int {
	t.Helper()
	if s.cancel == nil {
		return 0
	}
	s.cancel()
	s.cancel = nil
	select {
	case code := <-s.done:
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("server did not shut down within 30s")
		return -1
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var tokenRE = regexp.MustCompile(`(?m)^Tenant "(\w+)".*\n  token: (\S+)$`)

// devTokens extracts the printed token of each demo tenant.
func devTokens(t *testing.T, out string) map[string]string {
	t.Helper()
	toks := map[string]string{}
	for _, m := range tokenRE.FindAllStringSubmatch(out, -1) {
		toks[m[1]] = m[2]
	}
	if toks["acme"] == "" || toks["globex"] == "" {
		t.Fatalf("dev printed no tokens for acme and globex:\n%s", out)
	}
	return toks
}

func connect(t *testing.T, url, token string) *tenanttest.Client {
	t.Helper()
	return tenanttest.Dial(t, url, token, "")
}

func callTool(t *testing.T, c *tenanttest.Client, name string, args map[string]any) (string, bool) {
	t.Helper()
	res := c.Call(t, name, args)
	return res.Text, res.IsError
}

func TestInit(t *testing.T) {
	for _, provider := range config.Providers {
		t.Run(provider, func(t *testing.T) {
			code, out, errOut := run(t, nil, "init", "--oauth", provider, "--multi-tenant")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !strings.Contains(out, "[auth.multi_tenant]") || !strings.Contains(out, "tenant_claim") {
				t.Fatalf("starter file lacks the multi-tenant section:\n%s", out)
			}
		})
	}
	// With a domain, the file loads as is.
	dir := t.TempDir()
	path := filepath.Join(dir, "deploy.toml")
	if code, _, errOut := run(t, nil, "init", "--oauth", "auth0", "--multi-tenant", "--domain", "acme.eu.auth0.com", "-o", path); code != 0 {
		t.Fatalf("init -o: %s", errOut)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("generated file does not load: %v", err)
	}
	if cfg.EffectiveTenantClaim() != "org_id" || cfg.EffectiveIssuer() != "https://acme.eu.auth0.com/" {
		t.Fatalf("claim %q issuer %q", cfg.EffectiveTenantClaim(), cfg.EffectiveIssuer())
	}
	if code, _, errOut := run(t, nil, "init", "--oauth", "auth0", "-o", path); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("overwrite without --force: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, nil, "init"); code != 2 || !strings.Contains(errOut, "--oauth is required") {
		t.Fatalf("init without --oauth: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, nil, "init", "--oauth", "okta"); code != 2 || !strings.Contains(errOut, "okta") {
		t.Fatalf("init --oauth okta: %d %s", code, errOut)
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := run(t, nil, "--help")
	for _, cmd := range []string{"init", "dev", "serve", "token", "tenant", "db"} {
		if !strings.Contains(out, "\n  "+cmd) {
			t.Errorf("--help does not list %s:\n%s", cmd, out)
		}
	}
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	if code, _, errOut := run(t, nil, "serve"); code != 2 || !strings.Contains(errOut, "no configuration: give --config") {
		t.Fatalf("serve without --config: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, nil, "dev", "--bogus"); code != 2 || !strings.Contains(errOut, "unknown flag") {
		t.Fatalf("unknown flag: %d %s", code, errOut)
	}
}

// TestDev is the zero-setup first run: dev starts, prints a token per
// demo tenant, and those tokens work — and only for their own tenant's
// data. token and tenant commands address the same data dir.
func TestDev(t *testing.T) {
	data := t.TempDir()
	addr := freeAddr(t)
	env := []string{"TENANTMCP_REGISTRY_CACHE_TTL=100ms", "TENANTMCP_REGISTRY_NEGATIVE_CACHE_TTL=100ms"}
	srv := start(t, env, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data)
	out := srv.out.String()
	url := "http://" + addr + "/mcp"
	if !strings.Contains(out, "npx -y @modelcontextprotocol/inspector@"+inspectorPin(t)+" --cli "+url+" --transport http --method tools/list --header \"Authorization: Bearer ") {
		t.Fatalf("dev does not print the inspector command:\n%s", out)
	}
	toks := devTokens(t, out)
	acme, globex := connect(t, url, toks["acme"]), connect(t, url, toks["globex"])
	if got, isErr := callTool(t, acme, "put_document", map[string]any{"key": "plan.md", "content": "acme plan"}); isErr {
		t.Fatalf("acme put: %s", got)
	}
	if got, isErr := callTool(t, globex, "get_document", map[string]any{"key": "plan.md"}); !isErr || strings.Contains(got, "acme plan") {
		t.Fatalf("globex read acme's document: %s", got)
	}

	// token mints a working token and prints only the token.
	code, tok, errOut := run(t, nil, "token", "--data", data, "--tenant", "acme", "--user", "carol")
	tok = strings.TrimSpace(tok)
	if code != 0 || strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("token: %d %q %s", code, tok, errOut)
	}
	if got, _ := callTool(t, connect(t, url, tok), "get_document", map[string]any{"key": "plan.md"}); !strings.Contains(got, "acme plan") {
		t.Fatalf("carol of acme reads %q", got)
	}
	if code, _, errOut := run(t, nil, "token", "--data", data, "--tenant", "initech"); code != 1 || !strings.Contains(errOut, "not registered") {
		t.Fatalf("token for unknown tenant: %d %s", code, errOut)
	}

	// tenant add makes a new tenant usable at once.
	if code, out, errOut := run(t, nil, "tenant", "add", "--data", data, "--external-id", "initech", "--name", "Initech", "--allowed-tools", "list_documents"); code != 0 || !strings.Contains(out, "initech") {
		t.Fatalf("tenant add: %d %s %s", code, out, errOut)
	}
	_, tok, _ = run(t, nil, "token", "--data", data, "--tenant", "initech")
	initech := connect(t, url, strings.TrimSpace(tok))
	res, err := initech.MCP().ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil || len(res.Tools) != 1 || res.Tools[0].Name != "list_documents" {
		t.Fatalf("initech tools: %v %+v", err, res)
	}
	// Changing its tools applies without restart, within the cache TTL.
	if code, _, errOut := run(t, nil, "tenant", "update", "initech", "--data", data, "--allowed-tools", "list_documents,get_document", "--flag", "beta=true"); code != 0 {
		t.Fatalf("tenant update: %s", errOut)
	}
	time.Sleep(300 * time.Millisecond)
	if res, err := initech.MCP().ListTools(context.Background(), mcp.ListToolsRequest{}); err != nil || len(res.Tools) != 2 {
		t.Fatalf("initech tools after update: %v %+v", err, res)
	}
	if code, out, _ := run(t, nil, "tenant", "list", "--data", data); code != 0 || !strings.Contains(out, "acme") || !strings.Contains(out, "list_documents") {
		t.Fatalf("tenant list: %s", out)
	}

	// Suspending takes effect within the registry cache TTL.
	if code, out, errOut := run(t, nil, "tenant", "suspend", "globex", "--data", data); code != 0 || !strings.Contains(out, "suspended") {
		t.Fatalf("suspend: %d %s %s", code, out, errOut)
	}
	time.Sleep(300 * time.Millisecond)
	req := mcp.ListToolsRequest{}
	if _, err := globex.MCP().ListTools(context.Background(), req); err == nil || !strings.Contains(err.Error(), "tenant is suspended") {
		t.Fatalf("suspended globex listed tools: %v", err)
	}
	if code, _, errOut := run(t, nil, "tenant", "activate", "globex", "--data", data); code != 0 {
		t.Fatalf("activate: %s", errOut)
	}
	if code, _, errOut := run(t, nil, "tenant", "delete", "globex", "--data", data); code != 2 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("delete without --yes: %d %s", code, errOut)
	}

	// Restarting dev reuses the data: acme's document survives, no
	// duplicate tenants appear.
	if code := srv.stop(t); code != 0 {
		t.Fatalf("dev exit %d on shutdown: %s", code, srv.err)
	}
	srv = start(t, env, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data)
	toks = devTokens(t, srv.out.String())
	if got, _ := callTool(t, connect(t, url, toks["acme"]), "get_document", map[string]any{"key": "plan.md"}); !strings.Contains(got, "acme plan") {
		t.Fatalf("after restart acme reads %q", got)
	}
	_, list, _ := run(t, nil, "tenant", "list", "--data", data, "--json")
	if n := strings.Count(list, `"external_id": "acme"`); n != 1 {
		t.Fatalf("acme registered %d times after restart:\n%s", n, list)
	}
}

// TestServe runs "serve --config" against a configured identity provider.
func TestServeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "deploy.toml")
	os.WriteFile(path, []byte("[auth]\nprovider = \"auth0\"\ndomian = \"x.auth0.com\"\n[auth.multi_tenant]\nisolation = \"row_level_security\"\n"), 0o600)
	code, _, errOut := run(t, nil, "serve", "--config", path)
	if code != 1 || !strings.Contains(errOut, "auth.domian") || !strings.Contains(errOut, "row_level_security") {
		t.Fatalf("bad config: exit %d\n%s", code, errOut)
	}
	// auth disabled on a public address is refused.
	os.WriteFile(path, []byte("[server]\nlisten = \"0.0.0.0:8080\"\npublic_url = \"http://example.com\"\n[auth]\nenabled = false\n"), 0o600)
	if code, _, errOut := run(t, nil, "serve", "--config", path); code != 1 || !strings.Contains(errOut, "auth.enabled = false") {
		t.Fatalf("auth disabled on 0.0.0.0: exit %d\n%s", code, errOut)
	}
	_ = fmt.Sprint
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReloadOnSIGHUP: SIGHUP reloads the tenant registry. (A change made
// with the CLI reaches dev within a second without it, see
// TestCLIChangesReachRunningDev, so the change is not checked to wait.)
func TestReloadOnSIGHUP(t *testing.T) {
	data, addr := t.TempDir(), freeAddr(t)
	srv := start(t, []string{"TENANTMCP_REGISTRY_CACHE_TTL=1h"}, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data)
	url := "http://" + addr + "/mcp"
	acme := connect(t, url, devTokens(t, srv.out.String())["acme"])
	names := func() []string {
		res, err := acme.MCP().ListTools(context.Background(), mcp.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, tool := range res.Tools {
			n = append(n, tool.Name)
		}
		return n
	}
	if got := names(); len(got) != 4 {
		t.Fatalf("acme tools before: %v", got)
	}
	if code, _, errOut := run(t, nil, "tenant", "update", "acme", "--data", data, "--allowed-tools", "get_document"); code != 0 {
		t.Fatalf("update: %s", errOut)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(srv.err.String(), "tenant registry reloaded") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := names(); len(got) != 1 || got[0] != "get_document" {
		t.Fatalf("after SIGHUP acme sees %v, want [get_document]\n%s", got, srv.err)
	}
}

// TestDevOnPostgres: "dev --database … --isolation …" runs the same demo
// on PostgreSQL, creating the roles and tables it needs.
func TestDevOnPostgres(t *testing.T) {
	for _, iso := range []string{"row_level_security", "schema_per_tenant"} {
		t.Run(iso, func(t *testing.T) {
			admin, owner, app := testenv.PostgresWithRoles(t)
			env := []string{"TENANTMCP_DATABASE_OWNER_ROLE=" + owner, "TENANTMCP_DATABASE_APP_ROLE=" + app}
			data, addr := t.TempDir(), freeAddr(t)
			srv := start(t, env, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data, "--database", admin, "--isolation", iso)
			if !strings.Contains(srv.out.String(), "isolation: "+iso) {
				t.Fatalf("dev output:\n%s", srv.out)
			}
			url := "http://" + addr + "/mcp"
			toks := devTokens(t, srv.out.String())
			acme, globex := connect(t, url, toks["acme"]), connect(t, url, toks["globex"])
			if got, isErr := callTool(t, acme, "put_document", map[string]any{"key": "plan.md", "content": "acme on postgres"}); isErr {
				t.Fatalf("acme put: %s", got)
			}
			if got, isErr := callTool(t, globex, "get_document", map[string]any{"key": "plan.md"}); !isErr || strings.Contains(got, "acme on postgres") {
				t.Fatalf("globex get: %s", got)
			}
			if got, _ := callTool(t, acme, "get_document", map[string]any{"key": "plan.md"}); !strings.Contains(got, "acme on postgres") {
				t.Fatalf("acme get: %s", got)
			}
			// Once serving, the server holds no connection but its
			// application role's: no superuser session stays open, for
			// either strategy.
			testenv.OnlySessionsAs(t, admin, app)
			// A tenant added with the CLI is provisioned (its schema, for
			// schema_per_tenant) and usable.
			if code, _, errOut := run(t, env, "tenant", "add", "--data", data, "--external-id", "initech"); code != 0 {
				t.Fatalf("tenant add: %s", errOut)
			}
			_, tok, _ := run(t, env, "token", "--data", data, "--tenant", "initech")
			if got, isErr := callTool(t, connect(t, url, strings.TrimSpace(tok)), "list_documents", nil); isErr || !strings.Contains(got, `"keys":[]`) {
				t.Fatalf("initech list: %s", got)
			}
			if code := srv.stop(t); code != 0 {
				t.Fatalf("dev exit %d: %s", code, srv.err)
			}
		})
	}
}
