package cli_test

import (
	"net"
	"strings"
	"testing"
)

// TestServeDatabaseUnreachable: serve with nothing listening at
// database.dsn's address retries for database.startup_wait, warning at
// each attempt, then exits 1 naming database.dsn, the address and the
// wait, without ever listening.
func TestServeDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := []string{
		"TENANTMCP_AUTH_PROVIDER=generic", "TENANTMCP_AUTH_ISSUER=http://127.0.0.1/dev",
		"TENANTMCP_AUTH_MULTI_TENANT_TENANT_CLAIM=org_id",
		"TENANTMCP_SERVER_DATA_DIR=" + t.TempDir(),
		"TENANTMCP_DATABASE_DSN=postgres://tenantmcp_app@" + addr + "/tenantmcp",
		"TENANTMCP_DATABASE_STARTUP_WAIT=1s",
		"TENANTMCP_AUDIT_ENABLED=false",
	}
	code, _, stderr := run(t, env, "serve", "--addr", "127.0.0.1:0")
	if code != 1 {
		t.Fatalf("serve exited %d; want 1\n%s", code, stderr)
	}
	for _, want := range []string{"database.dsn", addr, "database.startup_wait (1s)", `"attempt":1`, "serving MCP"} {
		if got := strings.Contains(stderr, want); got == (want == "serving MCP") {
			t.Errorf("stderr has %q: %v\n%s", want, got, stderr)
		}
	}
}
