package cli_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/internal/idptest"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
)

// TestDiskFullThroughServe: serve with its data directory (registry,
// audit trail and one SQLite database per tenant) on a small filesystem
// that fills up. A document write fails as a tool error that says the
// storage is full and nothing was written — not "internal error", and
// without a path; the old value is intact; the other tenant reads its own
// document meanwhile; once there is room again writes succeed without a
// restart, after a graceful stop the audit trail verifies, and no
// goroutine is left running.
func TestDiskFullThroughServe(t *testing.T) {
	// Not parallel: goleak compares with the goroutines before it. First
	// registered, so its check runs after every other cleanup.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	data := testenv.SmallFilesystem(t, "2m")
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
enabled = true
tenant_claim = "org_id"
[audit]
enabled = true
`, addr, data, idp.Issuer(), idp.JWKSURL()))
	orgs := []string{"org_acme", "org_globex"}
	for _, org := range orgs {
		if code, _, errOut := run(t, nil, "tenant", "add", "--config", path, "--external-id", org); code != 0 {
			t.Fatalf("tenant add %s: %s", org, errOut)
		}
	}
	srv := start(t, nil, "serving MCP", "serve", "--config", path)
	url := "http://" + addr + "/mcp"
	acme := connect(t, url, idp.Sign(idp.GenericClaims(url, "u@acme", nil, map[string]any{"org_id": "org_acme"})))
	globex := connect(t, url, idp.Sign(idp.GenericClaims(url, "u@globex", nil, map[string]any{"org_id": "org_globex"})))
	if got, isErr := callTool(t, acme, "put_document", map[string]any{"key": "doc", "content": "acme old"}); isErr {
		t.Fatal(got)
	}
	if got, isErr := callTool(t, globex, "put_document", map[string]any{"key": "doc", "content": "globex old"}); isErr {
		t.Fatal(got)
	}

	filler := filepath.Join(data, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for chunk := make([]byte, 4096); ; {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()

	big := strings.Repeat("x", 200<<10) // within server.max_argument_bytes
	got, isErr := callTool(t, acme, "put_document", map[string]any{"key": "doc", "content": big})
	if !isErr || !strings.Contains(got, "storage is full, so nothing was written") || strings.Contains(got, "internal error") || strings.Contains(got, data) {
		t.Fatalf("put on a full disk: %v %.300s; want a tool error saying the storage is full, with no path", isErr, got)
	}
	if got, isErr := callTool(t, acme, "get_document", map[string]any{"key": "doc"}); isErr || !strings.Contains(got, "acme old") {
		t.Fatalf("acme after the failed write: %v %.300s; want the old value", isErr, got)
	}
	if got, isErr := callTool(t, globex, "get_document", map[string]any{"key": "doc"}); isErr || !strings.Contains(got, "globex old") || strings.Contains(got, "acme") {
		t.Fatalf("globex while the disk is full: %v %.300s; want its own document", isErr, got)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if got, isErr := callTool(t, acme, "put_document", map[string]any{"key": "doc", "content": "acme new"}); isErr {
		t.Fatalf("put once there is room again: %.300s", got)
	}
	if got, _ := callTool(t, acme, "get_document", map[string]any{"key": "doc"}); !strings.Contains(got, "acme new") {
		t.Fatalf("acme after the write with room again: %.300s", got)
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("serve exit %d:\n%s", code, srv.err)
	}
	if code, out, errOut := run(t, nil, "audit", "verify", "--config", path); code != 0 || strings.Contains(out, "not signed") {
		t.Fatalf("audit verify after the disk was full: %d\n%s\n%s", code, out, errOut)
	}
}
