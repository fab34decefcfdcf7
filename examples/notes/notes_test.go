package notes_test

import (
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/examples/notes"
	"github.com/tenantmcp/tenantmcp/tenanttest"
)

// snippet:start isolation_test
func TestIsolation(t *testing.T) {
	h := tenanttest.New(t, 2, &tenanttest.Options{Tools: notes.Tools()})
	a, b := h.Tenant(0), h.Tenant(1)
	a.Call(t, "save_note", map[string]any{"key": "k", "text": "secret"})
	if res := b.Call(t, "get_note", map[string]any{"key": "k"}); !res.IsError {
		t.Fatal("tenant 1 read tenant 0's note")
	}
}

// snippet:end

// TestNotes: each tenant sees exactly its own notes, and writing needs the
// notes:write scope.
func TestNotes(t *testing.T) {
	h := tenanttest.New(t, 2, &tenanttest.Options{Tools: notes.Tools()})
	a, b := h.Tenant(0), h.Tenant(1)
	if res := a.Call(t, "save_note", map[string]any{"key": "plan", "text": "tenant 0's plan"}); res.IsError {
		t.Fatalf("save_note: %s", res.Text)
	}
	if res := a.Call(t, "get_note", map[string]any{"key": "plan"}); res.IsError || !strings.Contains(res.Text, "tenant 0's plan") {
		t.Fatalf("get_note as owner: %+v", res)
	}
	if res := b.Call(t, "get_note", map[string]any{"key": "plan"}); !res.IsError || strings.Contains(res.Text, "tenant 0") || !strings.Contains(res.Text, `note "plan" not found`) {
		t.Fatalf("get_note as tenant 1: %+v", res)
	}
	if res := b.Call(t, "list_notes", nil); res.IsError || !strings.Contains(res.Text, `"keys":[]`) {
		t.Fatalf("list_notes as tenant 1: %+v", res)
	}
	b.Call(t, "save_note", map[string]any{"key": "plan", "text": "tenant 1's plan"})
	if res := a.Call(t, "get_note", map[string]any{"key": "plan"}); !strings.Contains(res.Text, "tenant 0's plan") {
		t.Fatalf("tenant 1's write changed tenant 0's note: %+v", res)
	}
	if res := a.Call(t, "list_notes", nil); !strings.Contains(res.Text, `"keys":["plan"]`) {
		t.Fatalf("list_notes as tenant 0: %+v", res)
	}

	// Without notes:write, save_note is refused (403 insufficient_scope).
	ro := h.Connect(h.Token(0, auth.TokenRequest{UserID: "reader", Scopes: tenanttest.DefaultScopes}))
	if _, err := ro.CallErr(t.Context(), "save_note", map[string]any{"key": "x", "text": "y"}); err == nil || !strings.Contains(err.Error(), "insufficient scope") {
		t.Fatalf("save_note without notes:write: %v", err)
	}
}
