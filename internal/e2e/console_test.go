package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var updateConsoleScreenshots = flag.Bool("update-console-screenshots", false, "write the console's screenshots to docs/console-*.png")

// consolePages are the screenshots console.mjs takes, one per page.
var consolePages = []string{"tenants", "tenant", "confirm", "impersonation", "audit", "charts", "jobs"}

// TestConsoleBrowser: against a real "tenantmcp dev", an operator in
// headless chromium signs in to the console as the dev administrator
// through the dev sign-in page, finds acme, suspends it (acme's next MCP
// request is refused, globex's is not), resumes it, starts an
// impersonation with a reason (its credential acts as acme, and only as
// acme, and never as an admin) and ends it (the credential is refused),
// sees all of it in acme's audit view, and views acme's charts.
func TestConsoleBrowser(t *testing.T) {
	node, dir := browserTools(t)
	tmp := t.TempDir()
	bin := goBuild(t, tmp, "tenantmcp", "./cmd/tenantmcp")
	addr := freeAddr(t)
	dev := startProcess(t, exec.Command(bin, "dev", "--addr", addr, "--data", filepath.Join(tmp, "data")))
	base, mcpURL := "http://"+addr, "http://"+addr+"/mcp"
	toks := devTokens(t, dev.stdout.String())
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	status := func(method, url, token, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	const list = `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`
	mcp := func(token string) int { t.Helper(); return status(http.MethodPost, mcpURL, token, list) }
	// Some traffic for the charts and sparklines.
	for range 5 {
		if mcp(toks["acme"]) != http.StatusOK || mcp(toks["globex"]) != http.StatusOK {
			t.Fatal("the demo tenants are not served")
		}
	}

	shots := filepath.Join(tmp, "shots")
	if err := os.Mkdir(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "console.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BASE_URL="+base, "TENANT=acme", "SHOTS="+shots, "HOME="+t.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// check runs the test's side of a step: "" lets the script go on.
	check := func(step map[string]string) string {
		switch step["step"] {
		case "suspended":
			if st := mcp(toks["acme"]); st != http.StatusForbidden {
				return fmt.Sprintf("acme's MCP request after the suspension: %d, want 403", st)
			}
			if st := mcp(toks["globex"]); st != http.StatusOK {
				return fmt.Sprintf("globex's MCP request after acme's suspension: %d, want 200", st)
			}
		case "resumed":
			if st := mcp(toks["acme"]); st != http.StatusOK {
				return fmt.Sprintf("acme's MCP request after resuming: %d, want 200", st)
			}
		case "impersonating":
			cred := step["credential"]
			if st := mcp(cred); st != http.StatusOK {
				return fmt.Sprintf("MCP with the impersonation credential: %d, want 200", st)
			}
			if st := status(http.MethodGet, base+"/admin/v1/tenants", cred, ""); st != http.StatusForbidden {
				return fmt.Sprintf("the admin API with the impersonation credential: %d, want 403", st)
			}
		case "ended":
			if st := mcp(step["credential"]); st != http.StatusUnauthorized {
				return fmt.Sprintf("MCP with the ended credential: %d, want 401", st)
			}
		}
		return ""
	}
	var steps []string
	var cred string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var step map[string]any
		if json.Unmarshal(sc.Bytes(), &step) != nil {
			continue
		}
		s := map[string]string{}
		for k, v := range step {
			s[k] = fmt.Sprint(v)
		}
		if s["step"] == "impersonating" {
			cred = s["credential"]
		}
		if s["step"] == "ended" {
			s["credential"] = cred
		}
		steps = append(steps, s["step"])
		switch s["step"] {
		case "suspended", "resumed", "impersonating", "ended":
			answer := "ok"
			if why := check(s); why != "" {
				t.Error(why)
				answer = "fail: " + why
			}
			fmt.Fprintln(stdin, answer)
		}
	}
	err = cmd.Wait()
	if err != nil || len(steps) == 0 || steps[len(steps)-1] != "done" {
		t.Fatalf("console.mjs: %v after steps %v\n%s\ndev server:\n%s", err, steps, stderr.String(), dev.stderr)
	}

	for _, p := range consolePages {
		png, err := os.ReadFile(filepath.Join(shots, "console-"+p+".png"))
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Fatalf("no screenshot of the %s page: %v", p, err)
		}
		if *updateConsoleScreenshots {
			if err := os.WriteFile(filepath.Join(moduleRoot, "docs", "console-"+p+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if code := dev.interrupt(t); code != 0 {
		t.Fatalf("dev exited %d:\n%s", code, dev.stderr)
	}
}
