package cli_test

import (
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/cli"
)

// TestOwnBinaryName: a binary of your own names itself in help, examples
// and errors, not "tenantmcp".
func TestOwnBinaryName(t *testing.T) {
	opts := &cli.Options{Name: "notes-server"}
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"tenant", "add", "--help"}, {"dev", "--help"}} {
		code, out, errOut := runWith(t, opts, nil, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		if !strings.Contains(out, "notes-server ") {
			t.Errorf("%v: help does not name notes-server:\n%s", args, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "tenantmcp ") {
				t.Errorf("%v: help line names tenantmcp: %q", args, line)
			}
		}
	}
	code, _, errOut := runWith(t, opts, nil, "tenant", "show")
	if code == 0 || !strings.HasPrefix(errOut, "notes-server: ") || !strings.Contains(errOut, "Run 'notes-server tenant show --help'") {
		t.Fatalf("usage error of notes-server: %d %q", code, errOut)
	}
}
