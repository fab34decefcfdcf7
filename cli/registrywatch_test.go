package cli_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/registry/registrytest"
)

// TestCLIChangesReachRunningDev: tenant commands run against the data dir
// of a running dev server (another handle on its SQLite registry, as a
// second process would have) take effect on the server's next request
// once it notices the write — no SIGHUP, and although the server caches
// records and "not registered" answers for an hour.
func TestCLIChangesReachRunningDev(t *testing.T) {
	data, addr := t.TempDir(), freeAddr(t)
	env := []string{"TENANTMCP_REGISTRY_CACHE_TTL=1h", "TENANTMCP_REGISTRY_NEGATIVE_CACHE_TTL=1h"}
	srv := start(t, env, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data)
	url := "http://" + addr + "/mcp"
	acme := connect(t, url, devTokens(t, srv.out.String())["acme"])
	if out, isErr := callTool(t, acme, "list_documents", nil); isErr {
		t.Fatalf("acme before: %s", out) // now cached
	}

	if code, out, errOut := run(t, env, "tenant", "suspend", "acme", "--data", data, "--reason", "test"); code != 0 {
		t.Fatalf("tenant suspend: %d\n%s%s", code, out, errOut)
	}
	ctx := context.Background()
	registrytest.Eventually(t, "the running server refuses the tenant suspended with the CLI", func() bool {
		_, err := acme.CallErr(ctx, "list_documents", nil)
		return err != nil && strings.Contains(err.Error(), "suspended")
	})
	if code, out, errOut := run(t, env, "tenant", "resume", "acme", "--data", data); code != 0 {
		t.Fatalf("tenant resume: %d\n%s%s", code, out, errOut)
	}
	registrytest.Eventually(t, "the running server serves the tenant resumed with the CLI", func() bool {
		res, err := acme.CallErr(ctx, "list_documents", nil)
		return err == nil && !res.IsError
	})
}
