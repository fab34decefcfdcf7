package server_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestProtocolLibraryStaysInServer: the MCP protocol library is imported
// only by the server package (and, for their clients, the tenanttest
// harness and internal/verify, the CLI's verify attacks), so tenant, auth,
// registry, store, ratelimit, app and the CLI speak our own types and
// another SDK's adapter can sit beside server's.
func TestProtocolLibraryStaysInServer(t *testing.T) {
	allowed := map[string]bool{"server": true, "tenanttest": true, "internal/verify": true}
	root := ".."
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "node_modules" || name == "testdata" || name == "bench" || strings.HasPrefix(name, ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/mark3labs/mcp-go") && !allowed[filepath.ToSlash(rel)] {
				t.Errorf("%s imports %s: only server (and tenanttest) may use the protocol library", path, p)
			}
			// The server knows no database driver: which errors mean "retry
			// shortly" comes from Options.Unavailable (store/postgres's).
			if filepath.ToSlash(rel) == "server" && (strings.HasPrefix(p, "github.com/jackc/") || p == "github.com/tenantmcp/tenantmcp/store/postgres") {
				t.Errorf("%s imports %s: the server must not depend on a database driver (use Options.Unavailable)", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
