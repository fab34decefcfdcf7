package tenanttest_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/examples/documents"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenanttest"
)

// TestDocumentsIsolation is what a user writes to check their tools keep
// tenants apart.
func TestDocumentsIsolation(t *testing.T) {
	h := tenanttest.New(t, 3, &tenanttest.Options{Tools: documents.Tools()})
	a, b := h.Tenant(0), h.Tenant(1)

	if res := a.Call(t, "put_document", map[string]any{"key": "secret.txt", "content": "tenant-0-secret"}); res.IsError {
		t.Fatalf("put: %s", res.Text)
	}
	if res := a.Call(t, "get_document", map[string]any{"key": "secret.txt"}); res.IsError || !strings.Contains(res.Text, "tenant-0-secret") {
		t.Fatalf("tenant 0 reads its own document: %+v", res)
	}
	for _, c := range []*tenanttest.Tenant{b, h.Tenant(2)} {
		if res := c.Call(t, "get_document", map[string]any{"key": "secret.txt"}); !res.IsError || strings.Contains(res.Text, "tenant-0-secret") {
			t.Fatalf("%s read tenant 0's document: %+v", c.Record.ExternalID, res)
		}
		if res := c.Call(t, "list_documents", nil); res.IsError || !strings.Contains(res.Text, `"keys":[]`) {
			t.Fatalf("%s lists %s", c.Record.ExternalID, res.Text)
		}
		if res := c.Call(t, "delete_document", map[string]any{"key": "secret.txt"}); !res.IsError {
			t.Fatalf("%s deleted tenant 0's document", c.Record.ExternalID)
		}
	}
	if res := a.Call(t, "get_document", map[string]any{"key": "secret.txt"}); res.IsError {
		t.Fatalf("tenant 0's document is gone: %s", res.Text)
	}
	if got := a.ToolNames(t); !slices.Contains(got, "put_document") || len(got) != 4 {
		t.Fatalf("tools = %v", got)
	}
}

func TestOptions(t *testing.T) {
	h := tenanttest.New(t, 2, &tenanttest.Options{
		Tools:           documents.Tools(),
		ProtocolVersion: mcp.ProtocolVersion20251125,
		Tenant: func(i int, rec *registry.Tenant) {
			if i == 1 {
				rec.AllowedTools = []string{"list_documents"}
			}
		},
	})
	if v := h.Tenant(0).ProtocolVersion(); v != mcp.ProtocolVersion20251125 {
		t.Fatalf("protocol %q", v)
	}
	if got := h.Tenant(1).ToolNames(t); !slices.Equal(got, []string{"list_documents"}) {
		t.Fatalf("restricted tenant sees %v", got)
	}
	if _, err := h.Tenant(1).CallErr(t.Context(), "put_document", map[string]any{"key": "k", "content": "v"}); err == nil {
		t.Fatal("restricted tenant called put_document")
	}
	// A second user of tenant 0 shares its data.
	h.Tenant(0).Call(t, "put_document", map[string]any{"key": "shared", "content": "x"})
	other := h.Connect(h.Token(0, auth.TokenRequest{UserID: "carol"}))
	if res := other.Call(t, "get_document", map[string]any{"key": "shared"}); res.IsError {
		t.Fatalf("carol of tenant 0: %s", res.Text)
	}
}
