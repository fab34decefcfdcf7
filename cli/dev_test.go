package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/cli"
	"github.com/tenantmcp/tenantmcp/examples/notes"
)

// inspectorPin is the MCP Inspector release tools/inspector pins (the one
// the end-to-end tests run).
func inspectorPin(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../tools/inspector/package.json")
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	v := pkg.Dependencies["@modelcontextprotocol/inspector"]
	if v == "" {
		t.Fatal("tools/inspector/package.json does not pin @modelcontextprotocol/inspector")
	}
	return v
}

// bin is how the commands the CLI prints name the test binary: by its
// path, since PATH does not find it.
func bin(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// hint returns the command dev printed after label ("More tokens:").
func hint(t *testing.T, out, label string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, label); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("dev printed no %q line:\n%s", label, out)
	return ""
}

// argsOf checks that a printed command runs the binary as bin and returns
// its arguments, split as a shell would (the commands have no quotes).
func argsOf(t *testing.T, command, bin string) []string {
	t.Helper()
	rest, ok := strings.CutPrefix(command, bin+" ")
	if !ok {
		t.Fatalf("printed command %q does not start with %q", command, bin)
	}
	return strings.Fields(rest)
}

// TestDevHintsRunAsPrinted: the commands dev prints name the pinned MCP
// Inspector and a binary the user can run (the test binary is not on
// PATH, so its absolute path), and run as printed; so do the commands in
// refusals.
func TestDevHintsRunAsPrinted(t *testing.T) {
	data, addr := t.TempDir(), freeAddr(t)
	srv := start(t, nil, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data)
	out, url := srv.out.String(), "http://"+addr+"/mcp"
	toks := devTokens(t, out)
	exe := bin(t)

	pinned := "npx -y @modelcontextprotocol/inspector@" + inspectorPin(t) + " --cli " + url + " --transport http "
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); strings.Contains(line, "inspector") {
			n++
			if !strings.HasPrefix(line, pinned) {
				t.Errorf("inspector command not pinned:\n%s", line)
			}
		}
	}
	if n != 4 {
		t.Errorf("dev printed %d inspector commands, want list and call for each tenant:\n%s", n, out)
	}
	call := pinned + `--method tools/call --tool-name put_document --tool-arg key=hello --tool-arg "content=hello from acme" --header "Authorization: Bearer ` + toks["acme"] + `"`
	if !strings.Contains(out, "  call put_document:\n    "+call+"\n") {
		t.Errorf("dev does not print acme's put_document call %s:\n%s", call, out)
	}

	code, tok, errOut := run(t, nil, argsOf(t, hint(t, out, "More tokens:"), exe)...)
	if code != 0 {
		t.Fatalf("More tokens command: exit %d: %s", code, errOut)
	}
	if got, isErr := callTool(t, connect(t, url, strings.TrimSpace(tok)), "put_document", map[string]any{"key": "carol.md", "content": "x"}); isErr {
		t.Fatalf("the printed token command's token cannot put: %s", got)
	}
	if code, out, errOut := run(t, nil, argsOf(t, hint(t, out, "More tenants:"), exe)...); code != 0 || !strings.Contains(out, "initech") {
		t.Fatalf("More tenants command: exit %d: %s %s", code, out, errOut)
	}

	// Refusals name the same binary, in commands that run as printed.
	code, _, errOut = run(t, nil, "token", "--data", data, "--tenant", "umbrella")
	want := "add it with '" + exe + " tenant create --data " + data + " --external-id umbrella'"
	if code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("token for an unknown tenant: exit %d, want %q in:\n%s", code, want, errOut)
	}
	if code, _, errOut := run(t, nil, "tenant", "show", "umbrella", "--data", data); code != 1 || !strings.Contains(errOut, "'"+exe+" tenant list --data "+data+"'") {
		t.Fatalf("tenant show of an unknown tenant: exit %d:\n%s", code, errOut)
	}
	empty := t.TempDir()
	if code, _, errOut := run(t, nil, "tenant", "list", "--data", empty); code != 1 || !strings.Contains(errOut, "start one with '"+exe+" dev --data "+empty+"'") {
		t.Fatalf("tenant list of a directory dev did not make: exit %d:\n%s", code, errOut)
	}
}

// TestDevServesItsTools: a binary serving its own tools (notes-server)
// gets dev tokens, and token's default scopes, that carry every scope its
// tools require, and an example call of one of its own tools.
func TestDevServesItsTools(t *testing.T) {
	opts := &cli.Options{Name: "notes-server", Tools: notes.Tools()}
	data, addr := t.TempDir(), freeAddr(t)
	srv := startWith(t, opts, nil, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data)
	out, url := srv.out.String(), "http://"+addr+"/mcp"
	for _, want := range []string{
		"notes-server dev: serving MCP at " + url,
		"scopes read:tools execute:tools notes:write",
		`--method tools/call --tool-name save_note --tool-arg key=hello --tool-arg "text=hello from acme"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dev output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "document") {
		t.Errorf("notes-server dev mentions the documents tools it does not serve:\n%s", out)
	}
	toks := devTokens(t, out)
	acme, globex := connect(t, url, toks["acme"]), connect(t, url, toks["globex"])
	if res := acme.Call(t, "save_note", map[string]any{"key": "hello", "text": "acme secret"}); res.IsError {
		t.Fatalf("acme save_note with the dev token: %s", res.Text)
	}
	if res := globex.Call(t, "get_note", map[string]any{"key": "hello"}); !res.IsError || strings.Contains(res.Text, "acme secret") {
		t.Fatalf("globex get_note of acme's note: %+v", res)
	}

	// token's default scopes let the token save notes too; naming scopes
	// replaces the default.
	code, tok, errOut := runWith(t, opts, nil, "token", "--data", data, "--tenant", "acme", "--user", "carol")
	if code != 0 {
		t.Fatalf("token: exit %d: %s", code, errOut)
	}
	if res := connect(t, url, strings.TrimSpace(tok)).Call(t, "save_note", map[string]any{"key": "carol", "text": "x"}); res.IsError {
		t.Fatalf("save_note with token's default scopes: %s", res.Text)
	}
	_, tok, _ = runWith(t, opts, nil, "token", "--data", data, "--tenant", "acme", "--scope", "read:tools", "--scope", "execute:tools")
	if res, err := connect(t, url, strings.TrimSpace(tok)).CallErr(context.Background(), "save_note", map[string]any{"key": "x", "text": "x"}); err == nil && !res.IsError {
		t.Fatal("save_note allowed without notes:write")
	}
}

// TestDevDataDirKeepsItsServer: a data dir belongs to the dev server that
// made it. dev on another --addr is refused (so the first server keeps
// accepting the tokens token mints, and the demo tenants are not
// registered again under another issuer); dev without --addr restarts it
// on its address; a second server gets a data dir of its own.
func TestDevDataDirKeepsItsServer(t *testing.T) {
	data, addr, other := t.TempDir(), freeAddr(t), freeAddr(t)
	srv := start(t, nil, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data)
	url := "http://" + addr + "/mcp"

	code, out, errOut := run(t, nil, "dev", "--addr", other, "--data", data)
	want := data + " belongs to the dev server at http://" + addr + " (issuer http://" + addr + "/dev); use --data DIR for a second server, or --addr " + addr
	if code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("dev on another --addr: exit %d, want %q:\n%s%s", code, want, out, errOut)
	}
	_, tok, _ := run(t, nil, "token", "--data", data, "--tenant", "acme")
	tok = strings.TrimSpace(tok)
	if got, isErr := callTool(t, connect(t, url, tok), "put_document", map[string]any{"key": "plan.md", "content": "kept"}); isErr {
		t.Fatalf("the first server refuses token's token: %s", got)
	}
	_, list, _ := run(t, nil, "tenant", "list", "--data", data, "--json")
	if n := strings.Count(list, `"issuer": "http://`+addr+`/dev"`); n != 2 || strings.Contains(list, other) {
		t.Fatalf("want the two demo tenants, under http://%s/dev only:\n%s", addr, list)
	}

	if code := srv.stop(t); code != 0 {
		t.Fatalf("dev exit %d: %s", code, srv.err)
	}
	srv = start(t, nil, "Stop with Ctrl-C", "dev", "--data", data)
	if !strings.Contains(srv.out.String(), "serving MCP at "+url+"\n") {
		t.Fatalf("dev --data %s does not serve on its address %s:\n%s", data, addr, srv.out)
	}
	if got, _ := callTool(t, connect(t, url, tok), "get_document", map[string]any{"key": "plan.md"}); !strings.Contains(got, "kept") {
		t.Fatalf("after restart, token's token reads %q", got)
	}

	second := start(t, nil, "Stop with Ctrl-C", "dev", "--addr", other, "--data", t.TempDir())
	globex := connect(t, "http://"+other+"/mcp", devTokens(t, second.out.String())["globex"])
	if got, isErr := callTool(t, globex, "list_documents", nil); isErr || strings.Contains(got, "plan.md") {
		t.Fatalf("second server's globex lists %s", got)
	}
}

// TestTenantListIssuerColumn: tenant list shows each tenant's issuer when
// the registry holds tenants of more than one (the same external id may
// then appear twice).
func TestTenantListIssuerColumn(t *testing.T) {
	data, addr := t.TempDir(), freeAddr(t)
	start(t, nil, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data)
	header := func() (string, string) {
		t.Helper()
		code, out, errOut := run(t, nil, "tenant", "list", "--data", data)
		if code != 0 {
			t.Fatalf("tenant list: exit %d: %s", code, errOut)
		}
		h, _, _ := strings.Cut(out, "\n")
		return strings.Join(strings.Fields(h), " "), out
	}
	if h, out := header(); h != "ID EXTERNAL ID NAME STATUS RATE/MIN TOOLS" {
		t.Fatalf("one issuer, header %q:\n%s", h, out)
	}
	if code, _, errOut := run(t, nil, "tenant", "add", "--data", data, "--external-id", "acme", "--issuer", "https://idp.example/", "--name", "Acme elsewhere"); code != 0 {
		t.Fatalf("tenant create --issuer: %s", errOut)
	}
	h, out := header()
	if h != "ID ISSUER EXTERNAL ID NAME STATUS RATE/MIN TOOLS" {
		t.Fatalf("two issuers, header %q:\n%s", h, out)
	}
	for _, want := range []string{"https://idp.example/ acme Acme elsewhere", "http://" + addr + "/dev acme Acme Corporation", "http://" + addr + "/dev globex Globex Inc."} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("tenant list lacks %q:\n%s", want, out)
		}
	}
}
