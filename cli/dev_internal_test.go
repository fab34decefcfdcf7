package cli

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantmcp/tenantmcp/examples/documents"
	"github.com/tenantmcp/tenantmcp/examples/notes"
	"github.com/tenantmcp/tenantmcp/server"
)

// TestInspectorPinned: the Inspector release dev prints is the one the
// end-to-end tests run (tools/inspector's package.json and lock file).
func TestInspectorPinned(t *testing.T) {
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	readJSON(t, "../tools/inspector/package.json", &pkg)
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	readJSON(t, "../tools/inspector/package-lock.json", &lock)
	const name = "@modelcontextprotocol/inspector"
	if got := pkg.Dependencies[name]; got != inspectorVersion {
		t.Errorf("tools/inspector/package.json pins %s %q, dev prints %q", name, got, inspectorVersion)
	}
	if got := lock.Packages["node_modules/"+name].Version; got != inspectorVersion {
		t.Errorf("tools/inspector/package-lock.json locks %s %q, dev prints %q", name, got, inspectorVersion)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestCommandFor(t *testing.T) {
	dir := t.TempDir()
	installed := filepath.Join(dir, "bin", "tenantmcp")
	other := filepath.Join(dir, "other", "tenantmcp")
	for _, p := range []string{installed, other} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const mod = "github.com/tenantmcp/tenantmcp"
	build := func(pkg string) *debug.BuildInfo {
		return &debug.BuildInfo{Path: pkg, Main: debug.Module{Path: mod, Version: "(devel)"}}
	}
	found := func(p string) func(string) (string, error) {
		return func(string) (string, error) { return p, nil }
	}
	notFound := func(string) (string, error) { return "", errors.New("not found") }
	tests := []struct {
		name, exe, gocache string
		bi                 *debug.BuildInfo
		lookPath           func(string) (string, error)
		want               string
	}{
		{"go run, temporary dir", "/tmp/go-build4281000438/b001/exe/tenantmcp", "", build(mod + "/cmd/tenantmcp"), notFound, "go run ./cmd/tenantmcp"},
		{"go run, build cache", "/root/.cache/go-build/fe/fecde58f-d/notes-server", "", build(mod + "/examples/notes-server"), notFound, "go run ./examples/notes-server"},
		{"go run, GOCACHE elsewhere", "/work/cache/fe/fecde58f-d/tenantmcp", "/work/cache/", build(mod + "/cmd/tenantmcp"), notFound, "go run ./cmd/tenantmcp"},
		{"go run, main package at the module root", "/tmp/go-build1/b001/exe/tenantmcp", "", build(mod), notFound, "go run ."},
		{"go run of a published version", "/tmp/go-build1/b001/exe/tenantmcp", "",
			&debug.BuildInfo{Path: mod + "/cmd/tenantmcp", Main: debug.Module{Path: mod, Version: "v1.2.3", Sum: "h1:abc="}}, notFound,
			"go run " + mod + "/cmd/tenantmcp@v1.2.3"},
		{"go run of a file", "/tmp/go-build1/b001/exe/main", "", &debug.BuildInfo{Path: "command-line-arguments", Main: debug.Module{Path: mod}}, notFound, "/tmp/go-build1/b001/exe/main"},
		{"test binary", "/tmp/go-build1/b001/cli.test", "", build(mod + "/cli.test"), notFound, "/tmp/go-build1/b001/cli.test"},
		{"what PATH finds", installed, "", build(mod + "/cmd/tenantmcp"), found(installed), "tenantmcp"},
		{"PATH finds another binary", installed, "", build(mod + "/cmd/tenantmcp"), found(other), installed},
		{"not in PATH", "/opt/tools/tenantmcp", "", build(mod + "/cmd/tenantmcp"), notFound, "/opt/tools/tenantmcp"},
		{"path with a space", "/home/me/my tools/tenantmcp", "", build(mod + "/cmd/tenantmcp"), notFound, `"/home/me/my tools/tenantmcp"`},
		{"no build info", "/opt/tools/tenantmcp", "", nil, notFound, "/opt/tools/tenantmcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := commandFor("tenantmcp", tt.exe, tt.bi, tt.gocache, tt.lookPath); got != tt.want {
				t.Errorf("commandFor(%s) = %q, want %q", tt.exe, got, tt.want)
			}
		})
	}
}

func TestDevScopes(t *testing.T) {
	admin := server.Tool{Name: "admin", Scopes: []string{"admin:write", "notes:write"}}
	tests := []struct {
		name  string
		tools []server.Tool
		want  []string
	}{
		{"documents", documents.Tools(), []string{"read:tools", "execute:tools"}},
		{"notes", notes.Tools(), []string{"read:tools", "execute:tools", "notes:write"}},
		{"each scope once", append(notes.Tools(), admin), []string{"read:tools", "execute:tools", "notes:write", "admin:write"}},
		{"no tools", nil, []string{"read:tools", "execute:tools"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, devScopes(tt.tools)); diff != "" {
				t.Errorf("devScopes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExampleCall(t *testing.T) {
	tool := func(name, schema string, opts ...func(*server.Tool)) server.Tool {
		t := server.Tool{Name: name, InputSchema: json.RawMessage(schema)}
		for _, o := range opts {
			o(&t)
		}
		return t
	}
	readOnly := func(t *server.Tool) { t.ReadOnly = true }
	flagged := func(t *server.Tool) { t.Flag = "beta" }
	tests := []struct {
		name           string
		tools          []server.Tool
		wantTool, args string
		ok             bool
	}{
		{"documents", documents.Tools(), "put_document", ` --tool-arg key=hello --tool-arg "content=hello from acme"`, true},
		{"notes", notes.Tools(), "save_note", ` --tool-arg key=hello --tool-arg "text=hello from acme"`, true},
		{"read-only and flagged tools are skipped", []server.Tool{
			tool("peek", `{"type":"object"}`, readOnly),
			tool("beta_write", `{"type":"object"}`, flagged),
			tool("write", `{"type":"object","properties":{"k":{"type":"string"}},"required":["k"]}`),
		}, "write", " --tool-arg k=hello", true},
		{"non-string arguments are skipped", []server.Tool{
			tool("count", `{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}`),
			tool("reset", ""),
		}, "reset", "", true},
		{"nothing to call", []server.Tool{tool("peek", `{"type":"object"}`, readOnly)}, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, args, ok := exampleCall(tt.tools, "acme")
			if name != tt.wantTool || args != tt.args || ok != tt.ok {
				t.Errorf("exampleCall = %q, %q, %v; want %q, %q, %v", name, args, ok, tt.wantTool, tt.args, tt.ok)
			}
		})
	}
}
