package console_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/registry"
)

func TestTenantListFilters(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b := f.admin(t)
	_, body := b.get("/console/tenants?q=TENANT-1")
	wantContains(t, body, "Test Tenant 1")
	wantNot(t, body, "Test Tenant 0")
	_, body = b.get("/console/tenants?status=suspended")
	wantNot(t, body, "Test Tenant 0", "Test Tenant 1")
	wantContains(t, body, "No tenants match")
	resp, body := b.get("/console/tenants?status=bogus")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "is not a status") {
		t.Errorf("bad status filter: %d\n%s", resp.StatusCode, body)
	}
	resp, body = b.get("/console/tenants?trial_before=tomorrow")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "a date such as") {
		t.Errorf("bad date filter: %d\n%s", resp.StatusCode, body)
	}
	// The rate limit column.
	if _, err := f.reg.Update(t.Context(), f.h.Tenant(1).Record.ID, func(r *registry.Tenant) error { r.RateLimit = 77; return nil }); err != nil {
		t.Fatal(err)
	}
	_, body = b.get("/console/tenants")
	wantContains(t, body, "77/min", "default")
}

func TestTenantDetailUnknown(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b := f.admin(t)
	for _, id := range []string{"tnotatenantnotatenant", "%00", "x%2F..%2Fy"} {
		resp, body := b.get("/console/tenants/" + id)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "No such tenant") {
			t.Errorf("GET tenant %q: %d\n%s", id, resp.StatusCode, body)
		}
	}
}

// form is the edit form of a tenant page as a browser would submit it.
var (
	inputRE    = regexp.MustCompile(`<input id="([a-z_]+)" name="([a-z_]+)" type="(?:text|date)"[^>]* value="([^"]*)"`)
	textareaRE = regexp.MustCompile(`(?s)<textarea id="[a-z_]+" name="([a-z_]+)"[^>]*>(.*?)</textarea>`)
	selectedRE = regexp.MustCompile(`(?s)<select id="status" name="status">.*?<option value="([a-z]+)" selected`)
	checkedRE  = regexp.MustCompile(`name="tools" value="([a-z_]+)" checked`)
)

func (b *browser) editForm(t *testing.T, id string) url.Values {
	t.Helper()
	_, body := b.get("/console/tenants/" + id)
	v := url.Values{}
	for _, m := range inputRE.FindAllStringSubmatch(body, -1) {
		v.Set(m[2], unescape(m[3]))
	}
	for _, m := range textareaRE.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], unescape(m[2]))
	}
	if m := selectedRE.FindStringSubmatch(body); m != nil {
		v.Set("status", m[1])
	}
	for _, m := range checkedRE.FindAllStringSubmatch(body, -1) {
		v.Add("tools", m[1])
	}
	v.Set("csrf", csrfRE.FindStringSubmatch(body)[1])
	return v
}

func TestTenantEdit(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b := f.admin(t)
	rec := f.h.Tenant(0).Record
	id := string(rec.ID)
	before := f.tenant(t, 0)

	// Unchanged form: nothing to change, nothing audited.
	resp, body := b.post("/console/tenants/"+id, b.editForm(t, id))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Nothing to change") {
		t.Errorf("unchanged form: %d\n%s", resp.StatusCode, body)
	}

	// Problems of the form itself and of the service are all shown, and
	// nothing changes.
	form := b.editForm(t, id)
	form.Set("name", "Renamed")
	form.Set("rate_limit", "fast")
	form.Set("config", "region=eu\nnot a pair")
	resp, body = b.post("/console/tenants/"+id, form)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("invalid form: %d", resp.StatusCode)
	}
	wantContains(t, unescape(body), "Nothing was changed", `rate limit: a whole number`, `config line 2: key=value`)
	wantContains(t, body, `value="Renamed"`, `value="fast"`) // what was typed stays
	form = b.editForm(t, id)
	form.Add("tools", "no_such_tool")
	resp, body = b.post("/console/tenants/"+id, form)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(unescape(body), `"no_such_tool" not served here`) {
		t.Errorf("unknown tool: %d\n%s", resp.StatusCode, body)
	}
	if after := f.tenant(t, 0); after.Name != before.Name || after.RateLimit != 0 || len(after.Config) != 0 || len(after.AllowedTools) != 0 {
		t.Errorf("a refused form changed the tenant: %+v", after)
	}
	if evs := f.consoleEvents(t, id, "update_tenant"); len(evs) != 1 || evs[0].Outcome == "ok" {
		t.Errorf("refused updates: %d console update events (want 1 refused by the service)", len(evs))
	}

	// A valid edit.
	form = b.editForm(t, id)
	form.Set("name", "Renamed Tenant")
	form.Set("rate_limit", "120")
	form.Set("flags", "beta\naudit_arguments")
	form.Set("config", "region=eu")
	form.Add("tools", "get_document")
	resp, body = b.post("/console/tenants/"+id, form)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Saved.") {
		t.Fatalf("valid form: %d\n%s", resp.StatusCode, body)
	}
	after := f.tenant(t, 0)
	if after.Name != "Renamed Tenant" || after.RateLimit != 120 || !after.Flags["beta"] || after.Config["region"] != "eu" ||
		len(after.AllowedTools) != 1 || after.AllowedTools[0] != "get_document" {
		t.Errorf("after the edit: %+v", after)
	}
	wantContains(t, body, "Renamed Tenant", "120/min", "get_document")
	var ok int
	for _, e := range f.consoleEvents(t, id, "update_tenant") {
		if e.Outcome == "ok" && e.Actor.Sub == "alice" {
			ok++
		}
	}
	if ok != 1 {
		t.Errorf("%d successful console update events by alice, want 1", ok)
	}
	// Turning a flag off and removing a config key.
	form = b.editForm(t, id)
	form.Set("flags", "beta")
	form.Set("config", "")
	b.post("/console/tenants/"+id, form)
	if after := f.tenant(t, 0); after.Flags["audit_arguments"] || len(after.Config) != 0 || !after.Flags["beta"] {
		t.Errorf("after removing: flags %v config %v", after.Flags, after.Config)
	}
	// The other tenant is untouched.
	if other := f.tenant(t, 1); other.Name != "Test Tenant 1" || other.RateLimit != 0 || len(other.Flags) != 0 {
		t.Errorf("tenant 1 changed: %+v", other)
	}
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b := f.admin(t)
	id := string(f.h.Tenant(0).Record.ID)
	tok := b.csrf("/console/tenants/" + id + "/suspend")
	other, _, _ := f.signIn(t, "carol")
	otherTok := other.csrf("/console/tenants")
	cases := []struct {
		name string
		form url.Values
		hdr  []string
	}{
		{"no token", url.Values{"reason": {"r"}}, nil},
		{"wrong token", url.Values{"reason": {"r"}, "csrf": {tok + "x"}}, nil},
		{"another session's token", url.Values{"reason": {"r"}, "csrf": {otherTok}}, nil},
		{"cross-origin", url.Values{"reason": {"r"}, "csrf": {tok}}, []string{"Origin", "https://evil.example"}},
		{"cross-site fetch", url.Values{"reason": {"r"}, "csrf": {tok}}, []string{"Origin", "", "Sec-Fetch-Site", "cross-site"}},
		{"no origin", url.Values{"reason": {"r"}, "csrf": {tok}}, []string{"Origin", ""}},
		{"null origin", url.Values{"reason": {"r"}, "csrf": {tok}}, []string{"Origin", "null"}},
		{"null origin, cross-site", url.Values{"reason": {"r"}, "csrf": {tok}}, []string{"Origin", "null", "Sec-Fetch-Site", "cross-site"}},
		{"same-origin fetch from another origin", url.Values{"reason": {"r"}, "csrf": {tok}}, []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "same-origin"}},
	}
	for _, c := range cases {
		resp, body := b.post("/console/tenants/"+id+"/suspend", c.form, c.hdr...)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "nothing was changed") {
			t.Errorf("%s: %d\n%s", c.name, resp.StatusCode, body)
		}
	}
	for _, p := range []string{"/console/tenants/" + id, "/console/impersonation", "/console/tenants/" + id + "/archive"} {
		resp, _ := b.post(p, url.Values{"name": {"x"}, "tenant": {id}, "reason": {"r"}}, "Origin", "https://evil.example")
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-origin POST %s: %d", p, resp.StatusCode)
		}
	}
	if rec := f.tenant(t, 0); rec.Status != registry.StatusActive || rec.Name != "Test Tenant 0" {
		t.Errorf("refused changes changed the tenant: %+v", rec)
	}
	for _, m := range []string{"suspend_tenant", "update_tenant", "archive_tenant", "impersonate_tenant"} {
		if evs := f.consoleEvents(t, id, m); len(evs) != 0 {
			t.Errorf("refused changes reached the service: %d %s events", len(evs), m)
		}
	}
	// Same origin by Sec-Fetch-Site when Origin is "null" (a browser's
	// form under Referrer-Policy no-referrer) is accepted.
	resp, body := b.post("/console/tenants/"+id+"/suspend", url.Values{"reason": {"r"}, "csrf": {tok}}, "Origin", "null", "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusOK || f.tenant(t, 0).Status != registry.StatusSuspended {
		t.Errorf("same-origin suspend: %d\n%s", resp.StatusCode, body)
	}
}

func TestLifecycleActions(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b := f.admin(t)
	t0, t1 := f.h.Tenant(0), f.h.Tenant(1)
	id := string(t0.Record.ID)
	page := "/console/tenants/" + id

	// The confirmation names the tenant (name and external id).
	resp, body := b.get(page + "/suspend")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("suspend confirmation: %d", resp.StatusCode)
	}
	wantContains(t, unescape(body), "Suspend tenant “Test Tenant 0” (external id <code>test-tenant-0</code>)?", `name="reason"`)
	// Actions that do not apply are not offered.
	_, body = b.get(page)
	wantContains(t, body, page+"/suspend", page+"/archive")
	wantNot(t, body, page+"/resume", page+"/purge", page+"/restore")

	if st := f.mcpStatus(t, t0.Token); st != http.StatusOK {
		t.Fatalf("tenant 0 before suspension: %d", st)
	}
	resp, body = b.post(page+"/suspend", url.Values{"reason": {"unpaid invoice"}, "csrf": {b.csrf(page + "/suspend")}})
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != page || !strings.Contains(body, "Suspend: done for Test Tenant 0") {
		t.Fatalf("suspend: %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	if st := f.mcpStatus(t, t0.Token); st != http.StatusForbidden {
		t.Errorf("tenant 0's next MCP request after suspension: %d, want 403", st)
	}
	if st := f.mcpStatus(t, t1.Token); st != http.StatusOK {
		t.Errorf("tenant 1 after tenant 0's suspension: %d, want 200", st)
	}
	e := f.wantConsoleEvent(t, t0.Record, "suspend_tenant", "alice")
	if e.Detail["reason"] != "unpaid invoice" {
		t.Errorf("suspend event detail %v", e.Detail)
	}
	if evs := f.consoleEvents(t, string(t1.Record.ID), "suspend_tenant"); len(evs) != 0 {
		t.Errorf("tenant 1's chain has tenant 0's suspension: %+v", evs)
	}

	// A reason that the service refuses is shown on the confirmation.
	resp, body = b.post(page+"/resume", url.Values{"reason": {"bad\x01reason"}, "csrf": {b.csrf(page + "/resume")}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "control characters") {
		t.Errorf("resume with a bad reason: %d\n%s", resp.StatusCode, body)
	}
	if f.tenant(t, 0).Status != registry.StatusSuspended {
		t.Error("a refused resume resumed")
	}
	b.post(page+"/resume", url.Values{"reason": {"paid"}, "csrf": {b.csrf(page + "/resume")}})
	if st := f.mcpStatus(t, t0.Token); st != http.StatusOK {
		t.Errorf("tenant 0 after resume: %d", st)
	}
	f.wantConsoleEvent(t, t0.Record, "resume_tenant", "alice")

	// Archive, purge, restore.
	wantContains(t, unescape(func() string { _, s := b.get(page + "/archive"); return s }()), "Archive tenant “Test Tenant 0”")
	resp, body = b.post(page+"/archive", url.Values{"csrf": {b.csrf(page + "/archive")}})
	if resp.StatusCode != http.StatusOK || f.tenant(t, 0).Status != registry.StatusArchived {
		t.Fatalf("archive: %d status %s\n%s", resp.StatusCode, f.tenant(t, 0).Status, body)
	}
	f.wantConsoleEvent(t, t0.Record, "archive_tenant", "alice")
	wantContains(t, body, page+"/purge", page+"/restore")
	wantNot(t, body, page+"/suspend")
	if st := f.mcpStatus(t, t0.Token); st != http.StatusForbidden {
		t.Errorf("archived tenant's MCP request: %d, want 403", st)
	}
	b.post(page+"/purge", url.Values{"csrf": {b.csrf(page + "/purge")}})
	if st := f.tenant(t, 0).Status; st != registry.StatusPurged {
		t.Fatalf("after purge: %s", st)
	}
	f.wantConsoleEvent(t, t0.Record, "purge_tenant", "alice")
	resp, body = b.post(page+"/restore", url.Values{"csrf": {b.csrf(page + "/restore")}})
	if resp.StatusCode != http.StatusOK || f.tenant(t, 0).Status != registry.StatusActive {
		t.Fatalf("restore: %d status %s\n%s", resp.StatusCode, f.tenant(t, 0).Status, body)
	}
	f.wantConsoleEvent(t, t0.Record, "restore_tenant", "alice")
	if st := f.mcpStatus(t, t0.Token); st != http.StatusOK {
		t.Errorf("restored tenant's MCP request: %d", st)
	}
	if rec := f.tenant(t, 1); rec.Status != registry.StatusActive {
		t.Errorf("tenant 1 is %s after tenant 0's lifecycle", rec.Status)
	}

	// An action that does not apply is refused by the service and shown.
	resp, body = b.post(page+"/purge", url.Values{"csrf": {b.csrf(page)}})
	if resp.StatusCode != http.StatusUnprocessableEntity || f.tenant(t, 0).Status != registry.StatusActive {
		t.Errorf("purge of an active tenant: %d status %s\n%s", resp.StatusCode, f.tenant(t, 0).Status, body)
	}
	if resp, _ := b.get(page + "/explode"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown action: %d", resp.StatusCode)
	}
}

// TestTenantListPages follows the "Next page" link as a browser would:
// every tenant is listed exactly once across the pages.
func TestTenantListPages(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	iss := f.tenant(t, 0).Issuer
	for i := range 60 {
		if _, err := f.reg.Add(t.Context(), registry.Tenant{Issuer: iss, ExternalID: fmt.Sprintf("page-org-%02d", i), Name: fmt.Sprintf("Paged %02d", i), Status: registry.StatusActive}); err != nil {
			t.Fatal(err)
		}
	}
	b := f.admin(t)
	next := regexp.MustCompile(`<a href="(/console/tenants\?[^"]*)">Next page</a>`)
	seen := map[string]int{}
	path := "/console/tenants?q=Paged"
	for pages := 0; path != ""; pages++ {
		if pages > 3 {
			t.Fatal("more pages than 60 tenants fill")
		}
		resp, body := b.get(path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", path, resp.StatusCode, body)
		}
		for _, m := range regexp.MustCompile(`Paged \d\d`).FindAllString(body, -1) {
			seen[m]++
		}
		path = ""
		if m := next.FindStringSubmatch(body); m != nil {
			path = html.UnescapeString(m[1])
		}
	}
	if len(seen) != 60 {
		t.Errorf("listed %d distinct tenants across the pages, want 60", len(seen))
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s listed %d times", name, n)
		}
	}
}
