package postgres

import (
	"regexp"
	"testing"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// FuzzRLSBegin: the tenant id is inlined into the BEGIN query, so rlsBegin
// must refuse everything but a well-formed tenant.ID, and then produce
// exactly the expected statement.
func FuzzRLSBegin(f *testing.F) {
	for _, s := range []string{"t2ah3htpjvblvvvgzhpov", "", "t2ah3htpjvblvvvgzhpo'", "x'; RESET ROLE; --", "T2AH3HTPJVBLVVVGZHPOV", "t2ah3htpjvblvvvgzhpov\x00"} {
		f.Add(s)
	}
	valid := regexp.MustCompile(`^t[a-z2-7]{20}$`)
	f.Fuzz(func(t *testing.T, s string) {
		q, err := rlsBegin(tenant.ID(s))
		if !valid.MatchString(s) {
			if err == nil {
				t.Fatalf("rlsBegin(%q) accepted a malformed id: %s", s, q)
			}
			return
		}
		if err != nil {
			t.Fatalf("rlsBegin(%q): %v", s, err)
		}
		if want := "BEGIN; SET LOCAL app.tenant_id = '" + s + "'"; q != want {
			t.Fatalf("rlsBegin(%q) = %q, want %q", s, q, want)
		}
	})
}
