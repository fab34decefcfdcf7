package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/internal/idptest"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "deploy.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestServe: a deployment with a (fake) external identity provider, its
// tenants added with the CLI, served by "serve --config".
func TestServe(t *testing.T) {
	idp := idptest.New(t)
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	data := t.TempDir()
	path := writeConfig(t, fmt.Sprintf(`
[server]
listen = %q
data_dir = %q
metrics_listen = %q

[auth]
enabled = true
provider = "generic"
issuer = %q
jwks_url = %q

[auth.multi_tenant]
enabled = true
tenant_claim = "org_id"
`, addr, data, metricsAddr, idp.Issuer(), idp.JWKSURL()))

	for _, org := range []string{"org_acme", "org_globex"} {
		if code, _, errOut := run(t, nil, "tenant", "add", "--config", path, "--external-id", org); code != 0 {
			t.Fatalf("tenant add %s: %s", org, errOut)
		}
	}
	srv := start(t, nil, "serving MCP", "serve", "--config", path)
	url := "http://" + addr + "/mcp"
	tok := func(org string) string {
		return idp.Sign(idp.GenericClaims(url, "user@"+org, []string{"execute:tools"}, map[string]any{"org_id": org}))
	}
	acme := connect(t, url, tok("org_acme"))
	if got, isErr := callTool(t, acme, "put_document", map[string]any{"key": "k", "content": "acme data"}); isErr {
		t.Fatal(got)
	}
	if got, isErr := callTool(t, connect(t, url, tok("org_globex")), "get_document", map[string]any{"key": "k"}); !isErr || strings.Contains(got, "acme data") {
		t.Fatalf("globex: %s", got)
	}
	// serve never enables the dev issuer.
	if resp, body := get(t, "http://"+addr+"/dev/jwks.json"); resp != 404 {
		t.Fatalf("serve exposes /dev/jwks.json: %d %s", resp, body)
	}
	// Metrics are on their own listener only: they span every tenant.
	if resp, _ := get(t, "http://"+addr+"/metrics"); resp != 404 {
		t.Fatalf("public listener serves /metrics: %d", resp)
	}
	if resp, body := get(t, "http://"+metricsAddr+"/metrics"); resp != 200 || !strings.Contains(body, "tenantmcp_requests_admitted_total") {
		t.Fatalf("metrics listener: %d %.200s", resp, body)
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("serve exit %d: %s", code, srv.err)
	}
}

// TestSingleTenantAndNoAuth: multi_tenant.enabled = false serves every
// verified user as one tenant; auth.enabled = false serves without tokens
// on loopback only, with a loud warning.
func TestSingleTenantAndNoAuth(t *testing.T) {
	idp := idptest.New(t)
	addr := freeAddr(t)
	path := writeConfig(t, fmt.Sprintf(`
[server]
listen = %q
data_dir = %q
[auth]
provider = "generic"
issuer = %q
jwks_url = %q
[auth.multi_tenant]
enabled = false
`, addr, t.TempDir(), idp.Issuer(), idp.JWKSURL()))
	start(t, nil, "serving MCP", "serve", "--config", path)
	url := "http://" + addr + "/mcp"
	a := connect(t, url, idp.Sign(idp.GenericClaims(url, "alice", nil, nil)))
	b := connect(t, url, idp.Sign(idp.GenericClaims(url, "bob", nil, nil)))
	callTool(t, a, "put_document", map[string]any{"key": "shared", "content": "team doc"})
	if got, _ := callTool(t, b, "get_document", map[string]any{"key": "shared"}); !strings.Contains(got, "team doc") {
		t.Fatalf("single tenant: bob reads %q", got)
	}

	addr2 := freeAddr(t)
	path2 := writeConfig(t, fmt.Sprintf("[server]\nlisten = %q\ndata_dir = %q\n[auth]\nenabled = false\n", addr2, t.TempDir()))
	srv := start(t, nil, "serving MCP", "serve", "--config", path2)
	if !strings.Contains(srv.err.String(), "AUTHENTICATION IS DISABLED") {
		t.Fatalf("no warning for disabled auth:\n%s", srv.err)
	}
	c := connect(t, "http://"+addr2+"/mcp", "ignored")
	if got, isErr := callTool(t, c, "put_document", map[string]any{"key": "k", "content": "local"}); isErr {
		t.Fatalf("no-auth put: %s", got)
	}
}
