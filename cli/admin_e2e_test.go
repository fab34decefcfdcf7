package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/registry"
)

var adminTokenRE = regexp.MustCompile(`(?m)^  ADMIN_TOKEN=(\S+)$`)

// adminGet GETs an admin API path with a bearer token.
func adminGet(t *testing.T, url, token string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func externalIDs(t *testing.T, body string) []string {
	t.Helper()
	var page struct {
		Tenants []registry.Tenant `json:"tenants"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatalf("tenant page %q: %v", body, err)
	}
	var ids []string
	for _, rec := range page.Tenants {
		ids = append(ids, rec.ExternalID)
	}
	slices.Sort(ids)
	return ids
}

// TestAdminThroughDev: dev's printed admin token and the token command's
// reach the admin API and admin tools, tenant tokens do not; the CLI's
// tenant and impersonation commands act on the running server's data and
// are recorded in the tenant's own trail as done by the CLI's user.
func TestAdminThroughDev(t *testing.T) {
	data, addr := t.TempDir(), freeAddr(t)
	srv := start(t, nil, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data)
	out := srv.out.String()
	base, url := "http://"+addr, "http://"+addr+"/mcp"
	toks := devTokens(t, out)
	m := adminTokenRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dev printed no admin token:\n%s", out)
	}
	printed := m[1]

	// The printed console address is the console: without a session it
	// sends the browser to sign in.
	if !strings.Contains(out, "Console: "+base+"/console/ ") {
		t.Errorf("dev does not print the console's address %s/console/:\n%s", base, out)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noRedirect.Get(base + "/console/"); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound || !strings.Contains(loc, "/console/signin") {
			t.Errorf("GET /console/ without a session: %d Location %q, want a redirect to /console/signin", resp.StatusCode, loc)
		}
	}

	// The printed admin token lists every tenant; a tenant token gets 403.
	code, body, _ := adminGet(t, base+"/admin/v1/tenants", printed)
	if code != 200 || !slices.Equal(externalIDs(t, body), []string{"acme", "globex"}) {
		t.Fatalf("admin list: %d %s", code, body)
	}
	code, body, h := adminGet(t, base+"/admin/v1/tenants", toks["acme"])
	if code != 403 || !strings.Contains(h.Get("WWW-Authenticate"), `error="insufficient_scope"`) || strings.Contains(body, "globex") {
		t.Fatalf("tenant token on the admin API: %d %s %v", code, body, h)
	}

	// The printed "Admin token:" command mints one that works over MCP:
	// the admin tools only.
	code, tok, errOut := run(t, nil, argsOf(t, hint(t, out, "Admin token:"), bin(t))...)
	if code != 0 {
		t.Fatalf("Admin token command: exit %d: %s", code, errOut)
	}
	names := connect(t, url, strings.TrimSpace(tok)).ToolNames(t)
	if !slices.Contains(names, "list_all_tenants") || slices.Contains(names, "put_document") {
		t.Fatalf("admin tools/list = %v", names)
	}
	if names := connect(t, url, toks["acme"]).ToolNames(t); slices.Contains(names, "list_all_tenants") {
		t.Fatalf("a tenant's tools/list shows admin tools: %v", names)
	}
	if code, _, errOut := run(t, nil, "token", "--data", data, "--admin", "--tenant", "acme"); code != 2 || !strings.Contains(errOut, "not both") {
		t.Fatalf("token --admin --tenant: exit %d %s", code, errOut)
	}

	// CLI: create, list, show, update, suspend, resume.
	code, cout, errOut := run(t, nil, "tenant", "create", "--data", data, "--external-id", "initech", "--name", "Initech", "--json")
	if code != 0 {
		t.Fatalf("tenant create: %d %s", code, errOut)
	}
	var created registry.Tenant
	if err := json.Unmarshal([]byte(cout), &created); err != nil || created.ExternalID != "initech" {
		t.Fatalf("tenant create --json: %v %s", err, cout)
	}
	if code, lout, errOut := run(t, nil, "tenant", "list", "--data", data, "--name", "ini"); code != 0 || !strings.Contains(lout, "initech") || strings.Contains(lout, "acme") {
		t.Fatalf("tenant list --name ini: %d\n%s%s", code, lout, errOut)
	}
	if code, _, errOut := run(t, nil, "tenant", "update", "acme", "--data", data, "--status", "suspended"); code != 1 || !strings.Contains(errOut, "tenant suspend") {
		t.Fatalf("update --status suspended: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, nil, "tenant", "suspend", "globex", "--data", data, "--reason", "unpaid invoice"); code != 0 {
		t.Fatalf("tenant suspend: %d %s", code, errOut)
	}
	code, sout, _ := run(t, nil, "tenant", "list", "--data", data, "--status", "suspended", "--json")
	if code != 0 || !strings.Contains(sout, `"globex"`) || strings.Contains(sout, `"acme"`) {
		t.Fatalf("tenant list --status suspended: %d %s", code, sout)
	}
	if code, _, errOut := run(t, nil, "tenant", "activate", "globex", "--data", data); code != 0 {
		t.Fatalf("tenant activate (alias of resume): %d %s", code, errOut)
	}

	// Impersonation from the CLI: reason required; the credential acts as
	// acme with read-only tools; ended, it is refused.
	if code, _, errOut := run(t, nil, "impersonation", "start", "acme", "--data", data); code != 2 || !strings.Contains(errOut, "--reason is required") {
		t.Fatalf("impersonation start without a reason: %d %s", code, errOut)
	}
	if got, isErr := callTool(t, connect(t, url, toks["acme"]), "put_document", map[string]any{"key": "secret.md", "content": "acme only"}); isErr {
		t.Fatal(got)
	}
	code, iout, errOut := run(t, nil, "impersonation", "start", "acme", "--data", data, "--reason", "SUP-7: documents missing", "--json")
	if code != 0 {
		t.Fatalf("impersonation start: %d %s", code, errOut)
	}
	var grant struct {
		ID, Credential, Admin string
	}
	if err := json.Unmarshal([]byte(iout), &grant); err != nil || !strings.HasPrefix(grant.Credential, "tmi_") || !strings.HasPrefix(grant.Admin, "cli:") {
		t.Fatalf("impersonation start --json: %v %s", err, iout)
	}
	ic := connect(t, url, grant.Credential)
	if names := ic.ToolNames(t); slices.Contains(names, "put_document") || !slices.Contains(names, "get_document") {
		t.Fatalf("read-only impersonation lists %v", names)
	}
	if got, isErr := callTool(t, ic, "get_document", map[string]any{"key": "secret.md"}); isErr || !strings.Contains(got, "acme only") {
		t.Fatalf("impersonation reads acme's document: %v %s", isErr, got)
	}
	if code, lout, _ := run(t, nil, "impersonation", "list", "--data", data, "--active"); code != 0 || !strings.Contains(lout, grant.ID) {
		t.Fatalf("impersonation list --active: %d %s", code, lout)
	}
	if code, _, errOut := run(t, nil, "impersonation", "end", grant.ID, "--data", data); code != 0 {
		t.Fatalf("impersonation end: %d %s", code, errOut)
	}
	if code, lout, _ := run(t, nil, "impersonation", "list", "--data", data, "--active"); code != 0 || strings.Contains(lout, grant.ID) {
		t.Fatalf("an ended impersonation is listed as active: %d %s", code, lout)
	}
	// mcp-go's client reports a 401 as "authorization required".
	if _, err := ic.CallErr(t.Context(), "get_document", map[string]any{"key": "secret.md"}); err == nil || !strings.Contains(err.Error(), "authorization required") {
		t.Fatalf("the ended credential still works: %v", err)
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("dev exit %d: %s", code, srv.err)
	}

	// Acme's own trail shows the impersonation, who asked and why, and the
	// request made with it (act = the admin).
	file := filepath.Join(t.TempDir(), "acme.jsonl")
	if code, _, errOut := run(t, nil, "audit", "export", "--data", data, "--tenant", "acme", "-o", file); code != 0 {
		t.Fatalf("audit export: %d %s", code, errOut)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	trail := string(b)
	for _, want := range []string{
		`"method":"admin/impersonate_tenant"`,
		`"reason":"SUP-7: documents missing"`,
		`"method":"admin/end_impersonation"`,
		fmt.Sprintf(`"act":{"sub":%q}`, grant.Admin),
		`"user":"impersonator:` + grant.Admin + `"`,
		`"tool":"get_document"`,
	} {
		if !strings.Contains(trail, want) {
			t.Errorf("acme's trail lacks %s", want)
		}
	}
	if strings.Contains(trail, "unpaid invoice") {
		t.Error("acme's trail holds globex's suspension")
	}
	if code, vout, errOut := run(t, nil, "audit", "verify", "--data", data); code != 0 {
		t.Fatalf("audit verify: %d\n%s%s", code, vout, errOut)
	}
}
