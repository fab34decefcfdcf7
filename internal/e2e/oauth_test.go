package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/tenanttest"
)

var updateSigninScreenshot = flag.Bool("update-signin-screenshot", false, "write the dev sign-in page's screenshot to docs/console-signin.png")

// browserTools returns node and the directory of tools/browser (with
// playwright-core and the MCP TypeScript SDK installed) if they and
// Debian's chromium are there; else it skips, or fails under CI.
func browserTools(t *testing.T) (node, dir string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join(moduleRoot, "tools", "browser"))
	if err != nil {
		t.Fatal(err)
	}
	missing := func(what string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: .ci/run must install Debian's chromium and run 'npm ci --prefix tools/browser'", what)
		}
		t.Skipf("%s; install Node.js and Debian's chromium and run 'npm ci --prefix tools/browser' to enable this test", what)
	}
	node, err = exec.LookPath("node")
	if err != nil {
		missing("node not found")
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		missing("/usr/bin/chromium not found")
	}
	for _, m := range []string{"playwright-core", "@modelcontextprotocol/sdk"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", m, "package.json")); err != nil {
			missing(m + " not installed in tools/browser")
		}
	}
	return node, dir
}

// TestOAuthFlowTypeScriptSDK: against a real "tenantmcp dev", the MCP
// TypeScript SDK's client, given only the URL, discovers the dev
// authorization server, registers itself, sends the user to the sign-in
// page (clicked by Playwright in headless chromium: tenant globex), takes
// the code at its callback and calls put_document. The document is
// globex's: globex's token reads it, acme's does not.
func TestOAuthFlowTypeScriptSDK(t *testing.T) {
	node, dir := browserTools(t)
	tmp := t.TempDir()
	bin := goBuild(t, tmp, "tenantmcp", "./cmd/tenantmcp")
	addr := freeAddr(t)
	dev := startProcess(t, exec.Command(bin, "dev", "--addr", addr, "--data", filepath.Join(tmp, "data")))
	out, url := dev.stdout.String(), "http://"+addr+"/mcp"
	if !strings.Contains(out, "needs only the URL "+url) {
		t.Fatalf("dev does not say that an OAuth client needs only the URL:\n%s", out)
	}
	toks := devTokens(t, out)

	shot := filepath.Join(tmp, "signin.png")
	const content = "written by the TypeScript SDK after signing in as globex"
	args, _ := json.Marshal(map[string]string{"key": "oauth/signed-in.md", "content": content})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "oauth-flow.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MCP_URL="+url, "TENANT=globex", "MCP_USER=bob@globex.example",
		"TOOL=put_document", "TOOL_ARGS="+string(args), "SCREENSHOT="+shot, "HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("oauth-flow.mjs: %v\n%s\n%s\ndev server:\n%s", err, stdout.String(), stderr.String(), dev.stderr)
	}
	var res struct {
		Tools  []string `json:"tools"`
		Result struct {
			IsError bool `json:"isError"`
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"result"`
		Authorizations int `json:"authorizations"`
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("oauth-flow.mjs printed %q: %v", stdout.String(), err)
	}
	if res.Authorizations != 1 || res.Result.IsError || len(res.Result.Content) == 0 || !strings.Contains(res.Result.Content[0].Text, "oauth/signed-in.md") {
		t.Fatalf("the SDK client's flow: %+v\n%s", res, stderr.String())
	}

	// The document is globex's, and only globex's.
	globex := tenanttest.Dial(t, url, toks["globex"], "")
	if r := globex.Call(t, "get_document", map[string]any{"key": "oauth/signed-in.md"}); r.IsError || !strings.Contains(r.Text, content) {
		t.Fatalf("globex does not read the document the SDK client wrote: %+v", r)
	}
	acme := tenanttest.Dial(t, url, toks["acme"], "")
	if r, err := acme.CallErr(ctx, "get_document", map[string]any{"key": "oauth/signed-in.md"}); err == nil && (!r.IsError || strings.Contains(r.Text, content)) {
		t.Fatalf("acme reads the document globex's sign-in wrote: %+v", r)
	}
	if r := acme.Call(t, "list_documents", nil); strings.Contains(r.Text, "signed-in") {
		t.Fatalf("acme lists globex's document: %s", r.Text)
	}

	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("no screenshot of the sign-in page: %v", err)
	}
	if *updateSigninScreenshot {
		if err := os.WriteFile(filepath.Join(moduleRoot, "docs", "console-signin.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code := dev.interrupt(t); code != 0 {
		t.Fatalf("dev exited %d:\n%s", code, dev.stderr)
	}
}
