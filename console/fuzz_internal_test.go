package console

import (
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/registry"
)

// FuzzSafeNext: whatever the next parameter, the browser stays in the
// console.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/console/audit?x=1", "//evil", "/console//evil", "/console/\\evil", "https://evil", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if !strings.HasPrefix(got, Path) || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\r\n") {
			t.Fatalf("safeNext(%q) = %q", next, got)
		}
	})
}

// FuzzPatchOf: any edit form gives problems or a patch (or nothing to
// change), never a panic, and a patch only with fields that differ.
func FuzzPatchOf(f *testing.F) {
	f.Add("Acme", "active", "2026-12-31", "100", "", "a b", "beta\ngamma", "k=v\nx")
	f.Fuzz(func(t *testing.T, name, status, trial, rate, burst, tools, flags, cfg string) {
		c := &Console{}
		rec := &registry.Tenant{Name: "Acme", Status: registry.StatusActive, Flags: map[string]bool{"beta": true}, Config: map[string]string{"k": "v"}}
		p, problems := c.patchOf(rec, tenantForm{Name: name, Status: status, TrialEndsAt: trial, RateLimit: rate, RateBurst: burst, ToolsText: tools, Flags: flags, Config: cfg}, true)
		if p != nil && len(problems) > 0 {
			t.Fatal("a patch and problems")
		}
		if p != nil && p.Name != nil && *p.Name == rec.Name {
			t.Fatal("an unchanged name in the patch")
		}
	})
}
