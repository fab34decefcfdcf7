package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReadmeTour runs the README's two-minute tour as printed: the
// commands of its first terminal (the dev server, here on a free port
// instead of 8080) and the script of its second, with the pinned MCP
// Inspector that npx finds installed in the tour's directory.
func TestReadmeTour(t *testing.T) {
	inspector(t)
	readme, err := os.ReadFile(filepath.Join(moduleRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, tour, ok := strings.Cut(string(readme), "\n## A two-minute tour\n")
	if !ok {
		t.Fatal(`README has no "## A two-minute tour" section`)
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(tour, 2)
	if len(blocks) != 2 || blocks[0][1] != "go build ./cmd/tenantmcp && ./tenantmcp dev\n" {
		t.Fatalf("the tour does not start with the dev server's terminal, then the other's:\n%s", tour)
	}

	// The tour's directory has the binary go build makes, and (for npx)
	// the pinned Inspector.
	dir := t.TempDir()
	goBuild(t, dir, "tenantmcp", "./cmd/tenantmcp")
	modules, err := filepath.Abs(filepath.Join(moduleRoot, "tools", "inspector", "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := os.ReadFile(filepath.Join(moduleRoot, "tools", "inspector", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package.json"), pkg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	dev := exec.Command("./tenantmcp", "dev", "--addr", addr)
	dev.Dir = dir
	srv := startProcess(t, dev)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	script := strings.ReplaceAll(blocks[1][1], "127.0.0.1:8080", addr)
	sh := exec.CommandContext(ctx, "bash", "-c", script)
	sh.Dir = dir
	sh.Env = append(os.Environ(), "HOME="+t.TempDir(), "NO_COLOR=1", "npm_config_update_notifier=false")
	b, _ := sh.CombinedOutput()
	out := string(b)
	rest := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		`"key": "plan.md"`,               // acme stores a document …
		`document \"plan.md\" not found`, // … globex cannot read it
		`"keys": []`,                     // … nor list it
		"no bearer token",                // no token
		"token signature is invalid",     // a forged token
		"tenant is not registered",       // a tenant the registry does not know
		"is now suspended",               // a suspended tenant
		"external id: initech",           // tenant create
		"allowed tools: list_documents",
	} {
		i := strings.Index(rest, want)
		if i < 0 {
			t.Fatalf("the tour's output lacks %q (in order):\n%s", want, out)
		}
		rest = rest[i+len(want):]
	}
	// tenant list, in the order of the internal ids
	for _, want := range []string{"globex Globex Inc. suspended", "initech Initech active 30 list_documents"} {
		if !strings.Contains(rest, want) {
			t.Fatalf("the tour's tenant list lacks %q:\n%s", want, out)
		}
	}
	if code := srv.interrupt(t); code != 0 {
		t.Fatalf("dev exited %d:\n%s", code, srv.stderr)
	}
}
