// Package e2e holds end-to-end tests that drive tenantmcp with stock MCP
// clients from outside the Go ecosystem.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/examples/documents"
	"github.com/tenantmcp/tenantmcp/tenanttest"
)

// inspector returns the path of the pinned MCP Inspector CLI
// (tools/inspector, installed with "npm ci --prefix tools/inspector").
func inspector(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs("../../tools/inspector/node_modules/.bin/mcp-inspector")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("MCP Inspector not installed (%v): .ci/run must run 'npm ci --prefix tools/inspector'", err)
		}
		t.Skip("MCP Inspector not installed; run 'npm ci --prefix tools/inspector' to enable this test")
	}
	return bin
}

// versionRecorder is a reverse proxy in front of the server that notes
// which MCP protocol revision the client speaks.
type versionRecorder struct {
	mu       sync.Mutex
	versions map[string]bool
}

func (v *versionRecorder) record(r *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if h := r.Header.Get("Mcp-Protocol-Version"); h != "" {
		v.versions[h] = true
	}
	if r.Body == nil {
		return
	}
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	var m struct {
		Params struct {
			ProtocolVersion string         `json:"protocolVersion"`
			Meta            map[string]any `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal(b, &m) == nil && m.Params.ProtocolVersion != "" {
		v.versions[m.Params.ProtocolVersion] = true
	}
}

func (v *versionRecorder) seen() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for k := range v.versions {
		out = append(out, k)
	}
	return out
}

func runInspector(t *testing.T, bin, endpoint, era, token string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	full := append([]string{"--cli", endpoint, "--transport", "http", "--protocol-era", era}, args...)
	if token != "" {
		full = append(full, "--header", "Authorization: Bearer "+token)
	}
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "NO_COLOR=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String() + errb.String(), err
}

// TestInspectorCLI drives the server with the MCP Inspector CLI as a stock
// client, on both protocol eras (2025-11-25 with initialize, and the
// stateless 2026-07-28): tools/list and tools/call for two tenants, which
// must not see each other's documents, and a refusal without a token.
func TestInspectorCLI(t *testing.T) {
	bin := inspector(t)
	for era, version := range map[string]string{"legacy": "2025-11-25", "modern": "2026-07-28"} {
		t.Run(era, func(t *testing.T) {
			t.Parallel()
			h := tenanttest.New(t, 2, &tenanttest.Options{Tools: documents.Tools()})
			rec := &versionRecorder{versions: map[string]bool{}}
			target, _ := url.Parse(strings.TrimSuffix(h.URL, "/mcp"))
			proxy := httputil.NewSingleHostReverseProxy(target)
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec.record(r)
				proxy.ServeHTTP(w, r)
			}))
			t.Cleanup(front.Close)
			endpoint := front.URL + "/mcp"
			acme, globex := h.Tenant(0).Token, h.Tenant(1).Token
			inspect := func(token string, args ...string) (string, error) {
				return runInspector(t, bin, endpoint, era, token, args...)
			}

			out, err := inspect(acme, "--method", "tools/list")
			if err != nil || !strings.Contains(out, `"put_document"`) || !strings.Contains(out, `"list_documents"`) {
				t.Fatalf("inspector tools/list: %v\n%s", err, out)
			}
			out, err = inspect(acme, "--method", "tools/call", "--tool-name", "put_document",
				"--tool-arg", "key=notes/q3.md", "--tool-arg", "content=acme-only")
			if err != nil || !strings.Contains(out, `notes/q3.md`) {
				t.Fatalf("inspector put_document: %v\n%s", err, out)
			}
			out, err = inspect(globex, "--method", "tools/call", "--tool-name", "get_document", "--tool-arg", "key=notes/q3.md")
			if strings.Contains(out, "acme-only") || !strings.Contains(out, "not found") {
				t.Fatalf("globex reads acme's document through the inspector: %v\n%s", err, out)
			}
			out, err = inspect(globex, "--method", "tools/call", "--tool-name", "list_documents")
			if err != nil || strings.Contains(out, "q3.md") {
				t.Fatalf("globex lists acme's document: %v\n%s", err, out)
			}
			out, err = inspect(acme, "--method", "tools/call", "--tool-name", "get_document", "--tool-arg", "key=notes/q3.md")
			if err != nil || !strings.Contains(out, "acme-only") {
				t.Fatalf("acme reads back: %v\n%s", err, out)
			}
			// No token: the inspector gets the 401 challenge and, having no
			// way to log in here, fails without listing anything.
			out, err = inspect("", "--method", "tools/list")
			if err == nil || strings.Contains(out, "put_document") {
				t.Fatalf("inspector without a token listed tools: %s", out)
			}
			if seen := rec.seen(); len(seen) != 1 || seen[0] != version {
				t.Fatalf("inspector spoke %v, want only %s", seen, version)
			}
		})
	}
}
