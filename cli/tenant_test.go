package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// tenantConfig is a deployment file for tenant commands: they open the
// registry and stores but never contact the identity provider.
func tenantConfig(t *testing.T) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf(`
[server]
listen = %q
data_dir = %q
[auth]
provider = "generic"
issuer = "https://idp.example.com/"
[auth.multi_tenant]
enabled = true
tenant_claim = "org_id"
`, freeAddr(t), t.TempDir()))
}

type record struct {
	RateLimit    int      `json:"rate_limit"`
	RateBurst    int      `json:"rate_burst"`
	AllowedTools []string `json:"allowed_tools"`
}

func show(t *testing.T, path, ref string) record {
	t.Helper()
	code, out, errOut := run(t, nil, "tenant", "show", ref, "--config", path, "--json")
	if code != 0 {
		t.Fatalf("tenant show %s: %d %s", ref, code, errOut)
	}
	var r record
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("tenant show --json: %v\n%s", err, out)
	}
	return r
}

// TestTenantAllowedToolsChecked: --allowed-tools names must be tools the
// server serves; a typo is refused with the list of tools, and the record
// is left as it was.
func TestTenantAllowedToolsChecked(t *testing.T) {
	path := tenantConfig(t)
	const served = "this server serves: delete_document, get_document, list_documents, put_document"

	code, _, errOut := run(t, nil, "tenant", "add", "--config", path, "--external-id", "acme", "--allowed-tools", "list_documents,get_documents")
	if code != 2 || !strings.Contains(errOut, `--allowed-tools: unknown tool "get_documents"; `+served) {
		t.Fatalf("add with a misspelt tool: exit %d\n%s", code, errOut)
	}
	if code, _, _ := run(t, nil, "tenant", "show", "acme", "--config", path); code != 1 {
		t.Fatalf("a refused add registered the tenant anyway (show exit %d)", code)
	}
	if code, _, errOut := run(t, nil, "tenant", "add", "--config", path, "--external-id", "acme", "--allowed-tools", "list_documents, get_document"); code != 0 {
		t.Fatalf("add with known tools: %d %s", code, errOut)
	}

	code, _, errOut = run(t, nil, "tenant", "update", "acme", "--config", path, "--allowed-tools", "put_document,rm,drop_table")
	if code != 2 || !strings.Contains(errOut, `--allowed-tools: unknown tools "rm", "drop_table"; `+served) {
		t.Fatalf("update with unknown tools: exit %d\n%s", code, errOut)
	}
	if got := show(t, path, "acme").AllowedTools; strings.Join(got, ",") != "list_documents,get_document" {
		t.Fatalf("a refused update changed the tools: %v", got)
	}
	// "" allows every tool again.
	if code, _, errOut := run(t, nil, "tenant", "update", "acme", "--config", path, "--allowed-tools", ""); code != 0 {
		t.Fatalf("update --allowed-tools \"\": %d %s", code, errOut)
	}
	if got := show(t, path, "acme").AllowedTools; len(got) != 0 {
		t.Fatalf("after --allowed-tools \"\": %v, want all tools", got)
	}
}

// TestTenantRateFlags: --rate-limit and --burst change the record only
// when given; 0 sets the deployment default back.
func TestTenantRateFlags(t *testing.T) {
	path := tenantConfig(t)
	if code, _, errOut := run(t, nil, "tenant", "add", "--config", path, "--external-id", "acme", "--rate-limit", "300", "--burst", "50"); code != 0 {
		t.Fatalf("add: %s", errOut)
	}
	if code, _, errOut := run(t, nil, "tenant", "update", "acme", "--config", path, "--name", "Acme"); code != 0 {
		t.Fatalf("update --name: %s", errOut)
	}
	if r := show(t, path, "acme"); r.RateLimit != 300 || r.RateBurst != 50 {
		t.Fatalf("update --name changed the limits: %+v", r)
	}
	if code, _, errOut := run(t, nil, "tenant", "update", "acme", "--config", path, "--burst", "0"); code != 0 {
		t.Fatalf("update --burst 0: %s", errOut)
	}
	if r := show(t, path, "acme"); r.RateLimit != 300 || r.RateBurst != 0 {
		t.Fatalf("after --burst 0: %+v, want rate 300 and the default burst", r)
	}
	if code, _, errOut := run(t, nil, "tenant", "update", "acme", "--config", path, "--rate-limit", "0"); code != 0 {
		t.Fatalf("update --rate-limit 0: %s", errOut)
	}
	if r := show(t, path, "acme"); r.RateLimit != 0 {
		t.Fatalf("after --rate-limit 0: %+v, want the default rate", r)
	}
}

// TestTenantUnknown: naming a tenant that is not registered says how to
// list the registered ones, for the same deployment (with the binary
// named as the user runs it: the test binary is not on PATH).
func TestTenantUnknown(t *testing.T) {
	path := tenantConfig(t)
	const internalID = "taaaaaaaaaaaaaaaaaaaa" // well formed, not registered
	for _, args := range [][]string{
		{"update", "initech", "--name", "Initech"},
		{"show", "initech"},
		{"suspend", "initech"},
		{"activate", "initech"},
		{"delete", "initech", "--yes"},
		{"show", internalID},
	} {
		want := fmt.Sprintf(`tenantmcp: no tenant %q: list them with '%s tenant list --config %s'`, args[1], bin(t), path)
		code, _, errOut := run(t, nil, append(append([]string{"tenant"}, args...), "--config", path)...)
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("tenant %v: exit %d\n%s\nwant %s", args, code, errOut, want)
		}
	}

	// A path the shell would split is quoted.
	spaced := filepath.Join(t.TempDir(), "my deploy.toml")
	if err := os.Rename(path, spaced); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, nil, "tenant", "show", "initech", "--config", spaced)
	if want := fmt.Sprintf(`list them with '%s tenant list --config %q'`, bin(t), spaced); code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("show with a spaced config path: exit %d\n%s\nwant %s", code, errOut, want)
	}

	// For a dev data directory the advice names --data.
	data, addr := t.TempDir(), freeAddr(t)
	srv := start(t, nil, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data)
	srv.stop(t)
	code, _, errOut = run(t, nil, "tenant", "show", "initech", "--data", data)
	if want := fmt.Sprintf(`no tenant "initech": list them with '%s tenant list --data %s'`, bin(t), data); code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("show unknown in a dev data dir: exit %d\n%s\nwant %s", code, errOut, want)
	}
}

var subcommandRE = regexp.MustCompile(`(?m)^  (\S+)\s{2,}\S`)

// TestHelpShowsNoSentinelDefaults: no flag of any command shows a magic
// default such as "(default -1)" in its --help.
func TestHelpShowsNoSentinelDefaults(t *testing.T) {
	seen := 0
	var walk func(path []string)
	walk = func(path []string) {
		code, out, errOut := run(t, nil, append(path, "--help")...)
		if code != 0 {
			t.Fatalf("%v --help: exit %d %s", path, code, errOut)
		}
		seen++
		if m := regexp.MustCompile(`\(default -\d+\)`).FindString(out); m != "" {
			t.Errorf("tenantmcp %s --help shows %s:\n%s", strings.Join(path, " "), m, out)
		}
		_, cmds, ok := strings.Cut(out, "Available Commands:\n")
		if !ok {
			return
		}
		cmds, _, _ = strings.Cut(cmds, "\n\n")
		for _, m := range subcommandRE.FindAllStringSubmatch(cmds, -1) {
			if m[1] != "help" && m[1] != "completion" {
				walk(append(append([]string{}, path...), m[1]))
			}
		}
	}
	walk(nil)
	if seen < 15 {
		t.Fatalf("walked only %d commands' help", seen)
	}
}

// TestVersion: "version" and "--version" print the module version, the
// VCS commit and the Go version; a test binary, like a -buildvcs=false
// build, has no commit.
func TestVersion(t *testing.T) {
	want := regexp.MustCompile(`^tenantmcp \S+, commit unknown, ` + regexp.QuoteMeta(runtime.Version()) + "\n$")
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errOut := run(t, nil, args...)
		if code != 0 || !want.MatchString(out) {
			t.Errorf("%v: exit %d %q %s", args, code, out, errOut)
		}
	}
}

// TestTenantConfigFromEnvironment: without --config or --data the
// deployment commands read the file TENANTMCP_CONFIG names, as serve
// does; their advice repeats it as --config; a flag wins over the
// variable; token refuses such a deployment with a clear message.
func TestTenantConfigFromEnvironment(t *testing.T) {
	path := tenantConfig(t)
	env := []string{"TENANTMCP_CONFIG=" + path}
	if code, _, errOut := run(t, env, "tenant", "create", "--external-id", "acme", "--name", "Acme"); code != 0 {
		t.Fatalf("tenant create with TENANTMCP_CONFIG: exit %d\n%s", code, errOut)
	}
	code, out, errOut := run(t, env, "tenant", "list")
	if code != 0 || !strings.Contains(out, "acme") {
		t.Fatalf("tenant list with TENANTMCP_CONFIG: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := run(t, nil, "tenant", "list", "--config", path); code != 0 || !strings.Contains(out, "acme") {
		t.Fatalf("the tenant created through TENANTMCP_CONFIG is not in %s:\n%s", path, out)
	}
	want := fmt.Sprintf(`no tenant "initech": list them with '%s tenant list --config %s'`, bin(t), path)
	if code, _, errOut := run(t, env, "tenant", "show", "initech"); code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("tenant show of an unknown tenant: exit %d\n%s\nwant %s", code, errOut, want)
	}
	// A flag wins: another deployment, where acme does not exist.
	other := tenantConfig(t)
	if code, out, errOut := run(t, env, "tenant", "list", "--config", other); code != 0 || strings.Contains(out, "acme") {
		t.Errorf("--config with TENANTMCP_CONFIG set: exit %d, want %s's (empty) list\n%s%s", code, other, out, errOut)
	}
	if code, _, errOut := run(t, env, "token", "--tenant", "acme"); code != 2 || !strings.Contains(errOut, "TENANTMCP_CONFIG names a deployment") {
		t.Errorf("token with TENANTMCP_CONFIG: exit %d\n%s", code, errOut)
	}
	// Without any, the message says how to name one.
	t.Chdir(t.TempDir())
	if code, _, errOut := run(t, nil, "tenant", "list"); code != 2 || !strings.Contains(errOut, "or set TENANTMCP_CONFIG to its path") {
		t.Errorf("tenant list with no deployment: exit %d\n%s", code, errOut)
	}
}
