package console_test

import (
	"regexp"
	"strings"
	"testing"
)

var (
	controlRE = regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`)
	typeRE    = regexp.MustCompile(`\btype="([a-z]+)"`)
	idRE      = regexp.MustCompile(`\bid="([^"]+)"`)
	inlineRE  = regexp.MustCompile(`<script|\sstyle="|\son[a-z]+="`)
)

// TestPagesAccessible: every form control of every page has a label (or
// an aria-label), every page has one main landmark, and no page has
// inline script, style attributes or event handlers (which the
// Content-Security-Policy would block).
func TestPagesAccessible(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b := f.admin(t)
	id := string(f.h.Tenant(0).Record.ID)
	pages := []string{"/console/tenants", "/console/tenants?status=bogus", "/console/tenants/" + id, "/console/tenants/" + id + "/suspend",
		"/console/tenants/" + id + "/archive", "/console/impersonation", "/console/impersonation?tenant=" + id,
		"/console/audit", "/console/audit?tenant=" + id, "/console/charts", "/console/charts/" + id, "/console/jobs", "/console/nope", "/console/signedout"}
	for _, p := range pages {
		_, body := b.get(p)
		check(t, p, body)
	}
	_, _, body := f.signIn(t, "bob", "read:tools")
	check(t, "no admin access", body)
}

func check(t *testing.T, page, body string) {
	t.Helper()
	if n := strings.Count(body, "<main"); n != 1 {
		t.Errorf("%s: %d main landmarks", page, n)
	}
	if m := inlineRE.FindString(body); m != "" {
		t.Errorf("%s: inline %q", page, m)
	}
	for _, c := range controlRE.FindAllString(body, -1) {
		if ty := typeRE.FindStringSubmatch(c); ty != nil && (ty[1] == "hidden" || ty[1] == "submit") {
			continue
		}
		if strings.Contains(c, "aria-label=") {
			continue
		}
		m := idRE.FindStringSubmatch(c)
		if m == nil || !strings.Contains(body, `<label for="`+m[1]+`"`) {
			t.Errorf("%s: control without a label: %s", page, c)
		}
	}
}
