package admin

import (
	"bufio"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

// These tests keep the documentation of the admin API honest:
// docs/admin-api.yaml describes exactly the routes Handler serves, and the
// tables of docs/admin.md name exactly the MCP admin tools (with their
// arguments) and the [admin] configuration keys (with their defaults).

const (
	specPath = "../docs/admin-api.yaml"
	docPath  = "../docs/admin.md"
)

// catchAll is what Handler answers for a path or method it does not serve.
const catchAll = "no such admin API endpoint"

// probeMethods are the methods tried on every documented path. HEAD is not
// among them: net/http serves it with the GET route.
var probeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

// TestOpenAPIMatchesRoutes: the (method, path) pairs of docs/admin-api.yaml
// are exactly the routes Handler registers, and each of them really is
// served (answers something other than the catch-all 404), while every other
// method on a documented path is not.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	spec := specRoutes(t)
	code := sourceRoutes(t)

	var missing, extra []string
	for r := range code {
		if !spec[r] {
			missing = append(missing, r)
		}
	}
	for r := range spec {
		if !code[r] {
			extra = append(extra, r)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	for _, r := range missing {
		t.Errorf("route %s is served but not described in %s", r, specPath)
	}
	for _, r := range extra {
		t.Errorf("route %s is described in %s but not served", r, specPath)
	}

	h := Handler(probeService(t))
	served := func(method, path string) bool {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, concrete(path), nil))
		return !(w.Code == http.StatusNotFound && strings.Contains(w.Body.String(), catchAll))
	}
	// The source reading and the spec, checked against the real mux.
	for _, set := range []map[string]bool{code, spec} {
		for r := range set {
			method, path, _ := strings.Cut(r, " ")
			if !served(method, path) {
				t.Errorf("%s %s answers the catch-all 404: not a route", method, path)
			}
		}
	}
	paths := map[string]bool{}
	for r := range spec {
		_, path, _ := strings.Cut(r, " ")
		paths[path] = true
	}
	for path := range paths {
		for _, m := range probeMethods {
			if !spec[m+" "+path] && served(m, path) {
				t.Errorf("%s %s is served but not described in %s", m, path, specPath)
			}
		}
	}
}

// probeService is a Service over empty in-memory stores. The probes carry no
// admin identity, so every handler refuses them before it reads anything.
func probeService(t *testing.T) *Service {
	t.Helper()
	s, err := NewService(Options{Registry: registry.New(registry.NewMemoryStore(), nil), Store: NewMemoryStore()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var wildcard = regexp.MustCompile(`\{[^}]*\}`)

// concrete fills a path template's wildcards with a well-formed tenant id.
func concrete(path string) string { return wildcard.ReplaceAllString(path, "taaaaaaaaaaaaaaaaaaaa") }

// normalize writes every wildcard as {}, so that spec and code need not name
// their path parameters alike.
func normalize(method, path string) string {
	return method + " " + wildcard.ReplaceAllString(path, "{}")
}

var (
	specPathKey   = regexp.MustCompile(`^  (\S.*?):\s*(#.*)?$`)
	specMethodKey = regexp.MustCompile(`^    ([A-Za-z$]+):`)
)

// specRoutes reads the paths section of docs/admin-api.yaml line by line:
// path keys at two spaces of indentation, operation keys at four. It fails
// on anything at those levels it does not understand (a quoted key, flow
// style), so that a route can never hide from the scan.
func specRoutes(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(specPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	routes := map[string]bool{}
	inPaths, path := false, ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t")
		trimmed := strings.TrimLeft(line, " ")
		switch {
		case line == "paths:":
			inPaths = true
			continue
		case !inPaths || trimmed == "" || strings.HasPrefix(trimmed, "#"):
			continue
		case !strings.HasPrefix(line, " "):
			inPaths = false // the next top-level key
			continue
		}
		if m := specPathKey.FindStringSubmatch(line); m != nil {
			if !strings.HasPrefix(m[1], "/") {
				t.Fatalf("%s:%d: %q is not a path key the scan understands (write it unquoted, starting with /)", specPath, n, m[1])
			}
			path = m[1]
			continue
		}
		if strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") {
			t.Fatalf("%s:%d: cannot read %q as a path key", specPath, n, line)
		}
		if m := specMethodKey.FindStringSubmatch(line); m != nil {
			switch key := m[1]; key {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				if path == "" {
					t.Fatalf("%s:%d: operation %s outside a path", specPath, n, key)
				}
				r := normalize(strings.ToUpper(key), path)
				if routes[r] {
					t.Fatalf("%s:%d: %s described twice", specPath, n, r)
				}
				routes[r] = true
			case "parameters", "summary", "description", "servers", "$ref":
			default:
				t.Fatalf("%s:%d: %q under %s is neither an operation nor a path-level field", specPath, n, key, path)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(routes) == 0 {
		t.Fatalf("%s: no operations found under paths:", specPath)
	}
	return routes
}

// sourceRoutes reads the patterns the package registers on its mux from its
// source (mux.HandleFunc / mux.Handle calls), evaluating each pattern: a
// concatenation of string literals and p, the API path without its final
// slash. The catch-all pattern (no method) is left out. A pattern it cannot
// evaluate fails the test rather than being skipped.
func sourceRoutes(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	p := strings.TrimSuffix(server.AdminAPIPath, "/")
	var eval func(e ast.Expr) (string, bool)
	eval = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind == token.STRING {
				s, err := strconv.Unquote(e.Value)
				return s, err == nil
			}
		case *ast.Ident:
			if e.Name == "p" {
				return p, true
			}
		case *ast.BinaryExpr:
			if e.Op == token.ADD {
				x, ok1 := eval(e.X)
				y, ok2 := eval(e.Y)
				return x + y, ok1 && ok2
			}
		case *ast.ParenExpr:
			return eval(e.X)
		}
		return "", false
	}
	routes := map[string]bool{}
	catchAlls := 0
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") {
				return true
			}
			pattern, ok := eval(call.Args[0])
			if !ok {
				t.Errorf("%s: cannot evaluate this route pattern; extend sourceRoutes", fset.Position(call.Pos()))
				return true
			}
			method, path, hasMethod := strings.Cut(pattern, " ")
			if !hasMethod {
				if pattern != p+"/" {
					t.Errorf("%s: pattern %q has no method: the spec cannot describe it", fset.Position(call.Pos()), pattern)
				}
				catchAlls++
				return true
			}
			routes[normalize(method, path)] = true
			return true
		})
	}
	if len(routes) == 0 || catchAlls != 1 {
		t.Fatalf("found %d routes and %d catch-alls in the package source: has the registration moved? extend sourceRoutes", len(routes), catchAlls)
	}
	return routes
}

// docTable returns the rows of the Markdown table after the marker
// <!-- name --> in docs/admin.md, each as its cells.
func docTable(t *testing.T, doc, name string) [][]string {
	t.Helper()
	marker := "<!-- " + name + " -->"
	_, rest, ok := strings.Cut(doc, marker)
	if !ok {
		t.Fatalf("%s has no %s", docPath, marker)
	}
	var rows [][]string
	for i, line := range strings.Split(strings.TrimLeft(rest, "\n"), "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		if i < 2 { // the header and its separator
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), " | ") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no table rows after %s", docPath, marker)
	}
	return rows
}

var backticked = regexp.MustCompile("`([^`]+)`")

// names returns the backticked names of a table cell.
func names(cell string) []string {
	var out []string
	for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}

// TestDocsToolsTable: docs/admin.md's table of MCP admin tools names every
// tool Tools serves, and no other, with exactly its required and optional
// arguments.
func TestDocsToolsTable(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, cells := range docTable(t, string(b), "admin-tools") {
		if len(cells) < 3 || len(names(cells[0])) != 1 {
			t.Fatalf("tools table row %q: want | `tool` | required arguments | optional arguments | ...", cells)
		}
		rows[names(cells[0])[0]] = cells
	}
	for _, tool := range Tools(probeService(t)) {
		cells, ok := rows[tool.Name]
		if !ok {
			t.Errorf("%s: tool %s is not in the tools table", docPath, tool.Name)
			continue
		}
		delete(rows, tool.Name)
		var schema struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		}
		if err := json.Unmarshal(tool.InputSchema, &schema); err != nil {
			t.Fatal(err)
		}
		var required, optional []string
		for name := range schema.Properties {
			if slices.Contains(schema.Required, name) {
				required = append(required, name)
			} else {
				optional = append(optional, name)
			}
		}
		slices.Sort(required)
		slices.Sort(optional)
		if got := names(cells[1]); !slices.Equal(got, required) {
			t.Errorf("%s: tool %s: required arguments %v, the tool requires %v", docPath, tool.Name, got, required)
		}
		if got := names(cells[2]); !slices.Equal(got, optional) {
			t.Errorf("%s: tool %s: optional arguments %v, the tool's are %v", docPath, tool.Name, got, optional)
		}
	}
	for name := range rows {
		t.Errorf("%s: the tools table lists %s, which is not an admin tool", docPath, name)
	}
}

// TestDocsConfigTable: docs/admin.md's table of configuration keys lists
// every [admin] key with its default, and no other.
func TestDocsConfigTable(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, cells := range docTable(t, string(b), "admin-config") {
		if len(cells) < 2 || len(names(cells[0])) != 1 || len(names(cells[1])) != 1 {
			t.Fatalf("config table row %q: want | `key` | `default` | ...", cells)
		}
		rows[names(cells[0])[0]] = names(cells[1])[0]
	}
	for _, k := range config.Keys() {
		if !strings.HasPrefix(k.Name, "admin.") {
			continue
		}
		def, ok := rows[k.Name]
		switch {
		case !ok:
			t.Errorf("%s: key %s is not in the configuration table", docPath, k.Name)
		case def != k.Default:
			t.Errorf("%s: key %s: default %s, the code's is %s", docPath, k.Name, def, k.Default)
		}
		delete(rows, k.Name)
	}
	for name := range rows {
		t.Errorf("%s: the configuration table lists %s, which is not an [admin] key", docPath, name)
	}
}
