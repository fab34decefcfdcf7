package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

var genericClaims = auth.ClaimMap{Tenant: "org_id", TenantName: "org_name", Scopes: []string{"scope"}}

// TestDocumentsIsolation: acme writes a document; globex cannot get, list,
// overwrite or delete it — over HTTP with the SDK client, on both protocol
// revisions.
func TestDocumentsIsolation(t *testing.T) {
	for _, version := range []string{mcp.ProtocolVersion20251125, mcp.ProtocolVersion20260728} {
		t.Run(version, func(t *testing.T) {
			f := setup(t, setupOptions{claims: genericClaims})
			f.addTenant(t, "acme", nil)
			f.addTenant(t, "globex", nil)
			acme := connect(t, f.url, f.genericToken("acme", "alice"), version)
			globex := connect(t, f.url, f.genericToken("globex", "bob"), version)
			if got := acme.ProtocolVersion(); got != version {
				t.Fatalf("negotiated %q, want %q", got, version)
			}

			mustCall(t, acme, "put_document", map[string]any{"key": "plans/q3.md", "content": "acme secret"})
			if got := mustCall(t, acme, "get_document", map[string]any{"key": "plans/q3.md"}); !strings.Contains(got, "acme secret") {
				t.Fatalf("acme reads back %q", got)
			}

			res, err := call(t, globex, "get_document", map[string]any{"key": "plans/q3.md"})
			if err != nil || !res.IsError || !strings.Contains(text(res), "not found") || strings.Contains(text(res), "acme secret") {
				t.Fatalf("globex get: err=%v res=%s", err, text(res))
			}
			if got := mustCall(t, globex, "list_documents", nil); !strings.Contains(got, `"keys":[]`) {
				t.Fatalf("globex list = %s", got)
			}
			res, _ = call(t, globex, "delete_document", map[string]any{"key": "plans/q3.md"})
			if !res.IsError || !strings.Contains(text(res), "not found") {
				t.Fatalf("globex delete: %s", text(res))
			}
			// globex writing the same key makes its own document.
			mustCall(t, globex, "put_document", map[string]any{"key": "plans/q3.md", "content": "globex plan"})
			if got := mustCall(t, acme, "get_document", map[string]any{"key": "plans/q3.md"}); !strings.Contains(got, "acme secret") {
				t.Fatalf("acme's document changed after globex's write: %s", got)
			}
			if got := mustCall(t, acme, "list_documents", map[string]any{"prefix": "plans/"}); !strings.Contains(got, `"keys":["plans/q3.md"]`) {
				t.Fatalf("acme list = %s", got)
			}
			// Hostile keys are refused as tool errors.
			for _, key := range []string{"../x", "/etc/passwd", "a/../../b"} {
				res, _ := call(t, globex, "get_document", map[string]any{"key": key})
				if !res.IsError || !strings.Contains(text(res), "invalid key") {
					t.Fatalf("get %q: %s", key, text(res))
				}
			}
			// Unknown arguments are refused, not ignored.
			res, _ = call(t, acme, "get_document", map[string]any{"key": "plans/q3.md", "tenant": "globex"})
			if !res.IsError || !strings.Contains(text(res), "unknown field") {
				t.Fatalf("extra argument accepted: %s", text(res))
			}
		})
	}
}

func mustCall(t *testing.T, c interface {
	CallTool(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error)
}, name string, args map[string]any) string {
	t.Helper()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := c.CallTool(context.Background(), req)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("%s: tool error %s", name, text(res))
	}
	return text(res)
}

// TestToolAccess: allowed tools, feature flags and required scopes.
func TestToolAccess(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims, server: func(o *server.Options) {
		o.ScopeHierarchy = map[string][]string{"admin": {"admin:write", "admin:read"}}
	}})
	f.addTenant(t, "limited", func(r *registry.Tenant) { r.AllowedTools = []string{"list_documents"} })
	f.addTenant(t, "beta", func(r *registry.Tenant) { r.Flags = map[string]bool{"beta": true} })
	f.addTenant(t, "plain", nil)

	limited := connect(t, f.url, f.genericToken("limited", "u"), "")
	if got := toolNames(t, limited); !slices.Equal(got, []string{"list_documents"}) {
		t.Fatalf("limited tenant sees %v, want only list_documents", got)
	}
	// A hidden tool fails exactly like a tool that does not exist.
	_, errHidden := call(t, limited, "put_document", map[string]any{"key": "k", "content": "v"})
	_, errUnknown := call(t, limited, "no_such_tool", map[string]any{"key": "k", "content": "v"})
	if errHidden == nil || errUnknown == nil {
		t.Fatalf("hidden/unknown tool calls succeeded: %v / %v", errHidden, errUnknown)
	}
	norm := func(err error, name string) string { return strings.ReplaceAll(err.Error(), name, "NAME") }
	if norm(errHidden, "put_document") != norm(errUnknown, "no_such_tool") {
		t.Fatalf("hidden tool error %q differs from unknown tool error %q", errHidden, errUnknown)
	}

	plain := connect(t, f.url, f.genericToken("plain", "u", "read:tools"), "")
	if got := toolNames(t, plain); slices.Contains(got, "beta_feature") {
		t.Fatalf("flag-gated tool visible without the flag: %v", got)
	}
	if _, err := call(t, plain, "beta_feature", nil); err == nil {
		t.Fatal("flag-gated tool callable without the flag")
	}
	beta := connect(t, f.url, f.genericToken("beta", "u"), "")
	if got := mustCall(t, beta, "beta_feature", nil); !strings.Contains(got, "beta!") {
		t.Fatalf("beta_feature = %q", got)
	}
	if w := whoamiOf(t, beta); !w.Flags["beta"] {
		t.Fatalf("flags not visible to tools: %+v", w)
	}

	// Scopes: a tools/call of a tool needing admin:write without it gets
	// HTTP 403 with an insufficient_scope challenge.
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"admin_reset","arguments":{}}}`
	resp, rb := rawPost(t, f.url, "Bearer "+f.genericToken("plain", "u", "read:tools"), body)
	wa := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(wa, `error="insufficient_scope"`) ||
		!strings.Contains(wa, `scope="admin:write"`) || !strings.Contains(wa, "resource_metadata=") {
		t.Fatalf("insufficient scope: %d %q %s", resp.StatusCode, wa, rb)
	}
	// The exact scope, and a broader one through the hierarchy, both work.
	for _, scope := range []string{"admin:write", "admin"} {
		c := connect(t, f.url, f.genericToken("plain", "u", scope), "")
		if got := mustCall(t, c, "admin_reset", nil); !strings.Contains(got, "reset") {
			t.Fatalf("with %s: %q", scope, got)
		}
	}
	// Escaped method names decode to "tools/call" too and are checked.
	for _, method := range []string{`tools\/call`, `tools\u002fcall`, `tools\u002Fcall`} {
		escaped := `{"jsonrpc":"2.0","id":8,"method":"` + method + `","params":{"name":"admin_reset","arguments":{}}}`
		resp, rb := rawPost(t, f.url, "Bearer "+f.genericToken("plain", "u", "read:tools"), escaped)
		if resp.StatusCode != http.StatusForbidden || strings.Contains(rb, "reset") {
			t.Fatalf("escaped method %s: %d %s", method, resp.StatusCode, rb)
		}
	}
	// A batch hiding the call behind another message is refused whole:
	// neither revision allows batches.
	batch := `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},` + body + `]`
	if resp, rb := rawPost(t, f.url, "Bearer "+f.genericToken("plain", "u"), batch); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(errorMessage(t, rb), "batches are not supported") || strings.Contains(rb, "reset") {
		t.Fatalf("batched scope-protected call: status %d %s, want 400 batches are not supported", resp.StatusCode, rb)
	}
}

// TestProtectedResourceMetadata checks RFC 9728 discovery.
func TestProtectedResourceMetadata(t *testing.T) {
	f := setup(t, setupOptions{claims: genericClaims})
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		resp, err := http.Get(f.base + path)
		if err != nil {
			t.Fatal(err)
		}
		var md auth.ResourceMetadata
		err = json.NewDecoder(resp.Body).Decode(&md)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
		if md.Resource != f.url || !slices.Equal(md.AuthorizationServers, []string{f.issuer}) || !slices.Contains(md.ScopesSupported, "execute:tools") {
			t.Fatalf("%s: %+v", path, md)
		}
	}
}
