package cli_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestAuditThroughDev: requests served by dev under concurrent load, then
// a graceful stop (what SIGINT/SIGTERM do): exactly one event per request
// is stored, every chain verifies with "audit verify", the public key is
// published, and a tenant's export verifies offline with only the file and
// the key.
func TestAuditThroughDev(t *testing.T) {
	data := t.TempDir()
	addr := freeAddr(t)
	srv := start(t, nil, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data)
	url := "http://" + addr + "/mcp"
	toks := devTokens(t, srv.out.String())

	const perTenant = 40
	var wg sync.WaitGroup
	for _, org := range []string{"acme", "globex"} {
		c := connect(t, url, toks[org])
		for i := range perTenant {
			wg.Go(func() {
				if got, isErr := callTool(t, c, "put_document", map[string]any{"key": fmt.Sprintf("k%d", i), "content": org}); isErr {
					t.Errorf("%s put: %s", org, got)
				}
			})
		}
	}
	// Refusals are audited too, in the system chain.
	const refusals = 5
	for range refusals {
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	wg.Wait()

	code, body := get(t, "http://"+addr+"/.well-known/tenantmcp-audit-key")
	if code != 200 || !strings.HasPrefix(body, "ed25519:") {
		t.Fatalf("public key URL: %d %q", code, body)
	}
	pub := strings.TrimSpace(body)
	if code := srv.stop(t); code != 0 {
		t.Fatalf("dev exit %d: %s", code, srv.err)
	}

	code, out, errOut := run(t, nil, "audit", "verify", "--data", data)
	if code != 0 {
		t.Fatalf("audit verify: %d\n%s\n%s", code, out, errOut)
	}
	// Each tenant's chain holds its connect (initialize or discovery,
	// list) events plus exactly one per call; count the calls in the
	// export instead of guessing the handshake.
	file := filepath.Join(t.TempDir(), "acme.jsonl")
	if code, _, errOut := run(t, nil, "audit", "export", "--data", data, "--tenant", "acme", "-o", file); code != 0 {
		t.Fatalf("audit export: %d %s", code, errOut)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"tool":"put_document"`); n != perTenant {
		t.Fatalf("acme's export has %d put_document events, want %d", n, perTenant)
	}
	if strings.Contains(string(b), `"external_id":"globex"`) {
		t.Fatal("acme's export holds globex events")
	}
	if code, out, errOut := run(t, nil, "audit", "verify", "--file", file, "--key", pub); code != 0 {
		t.Fatalf("offline verify: %d\n%s\n%s", code, out, errOut)
	}
	sys := filepath.Join(t.TempDir(), "system.jsonl")
	if code, _, errOut := run(t, nil, "audit", "export", "--data", data, "--system", "-o", sys); code != 0 {
		t.Fatalf("audit export --system: %d %s", code, errOut)
	}
	if sb, _ := os.ReadFile(sys); strings.Count(string(sb), `"error_class":"no_token"`) != refusals {
		t.Fatalf("system chain has %d no_token refusals, want %d", strings.Count(string(sb), `"error_class":"no_token"`), refusals)
	}
	// The published key is the one "audit key" prints.
	if code, out, _ := run(t, nil, "audit", "key", "--data", data); code != 0 || !strings.Contains(out, pub) {
		t.Fatalf("audit key: %d %q, want %q", code, out, pub)
	}
	// One edited byte in the file and offline verification fails.
	tampered := strings.Replace(string(b), `"tool":"put_document"`, `"tool":"get_document"`, 1)
	if err := os.WriteFile(file, []byte(tampered), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := run(t, nil, "audit", "verify", "--file", file, "--key", pub); code == 0 || !strings.Contains(out, "BROKEN") {
		t.Fatalf("tampered export verified: %d\n%s", code, out)
	}
}

// TestAuditPrune: "audit prune" keeps what is within audit.retention and
// the trail still verifies afterwards.
func TestAuditPrune(t *testing.T) {
	data := t.TempDir()
	addr := freeAddr(t)
	srv := start(t, nil, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data)
	toks := devTokens(t, srv.out.String())
	if got, isErr := callTool(t, connect(t, "http://"+addr+"/mcp", toks["acme"]), "list_documents", nil); isErr {
		t.Fatal(got)
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("dev exit %d: %s", code, srv.err)
	}
	code, out, errOut := run(t, nil, "audit", "prune", "--data", data)
	if code != 0 || !strings.Contains(out, "removed 0 audit events older than 9600h") {
		t.Fatalf("prune within retention: %d %q %s", code, out, errOut)
	}
	code, out, errOut = run(t, []string{"TENANTMCP_AUDIT_RETENTION=1ns"}, "audit", "prune", "--data", data)
	if code != 0 || strings.Contains(out, "removed 0 ") {
		t.Fatalf("prune everything: %d %q %s", code, out, errOut)
	}
	if code, out, errOut := run(t, nil, "audit", "verify", "--data", data); code != 0 {
		t.Fatalf("verify after prune: %d\n%s\n%s", code, out, errOut)
	}
}
