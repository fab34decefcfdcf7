package tenanttest_test

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
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

// fatalRecorder is a testing.TB whose Fatal ends only the goroutine it
// runs in and records the failure, so a test can watch Dial fail.
type fatalRecorder struct {
	testing.TB
	failed atomic.Bool
}

func (f *fatalRecorder) Fatal(args ...any) { f.failed.Store(true); runtime.Goexit() }
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.failed.Store(true)
	runtime.Goexit()
}

// TestDialDoesNotFollowRedirects: a server answering 307 to another
// address (GO-2026-6911: mcp-go's client follows redirects) fails the
// dial; the token and the body never reach the other address.
func TestDialDoesNotFollowRedirects(t *testing.T) {
	var reached atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	defer elsewhere.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/mcp", http.StatusTemporaryRedirect)
	}))
	defer redirecting.Close()
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tenanttest.Dial(rec, redirecting.URL+"/mcp", "secret-token", "")
	}()
	<-done
	if !rec.failed.Load() {
		t.Error("Dial to a redirecting server succeeded")
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("%d requests followed the redirect to another address", n)
	}
}
