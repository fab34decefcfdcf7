package console_test

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/server"
)

var secretRE = regexp.MustCompile(`id="secret" class="secret" type="text" readonly value="([^"]+)"`)

func TestImpersonation(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b := f.admin(t)
	t0, t1 := f.h.Tenant(0), f.h.Tenant(1)
	id := string(t0.Record.ID)

	// Prefilled from the tenant page's link, naming the tenant.
	_, body := b.get("/console/impersonation?tenant=" + id)
	wantContains(t, body, `value="`+id+`"`, "Test Tenant 0", "test-tenant-0")

	tok := b.csrf("/console/impersonation")
	for _, c := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"tenant": {id}}, "reason: required"},
		{url.Values{"tenant": {id}, "reason": {"r"}, "duration": {"forever"}}, "duration: minutes"},
		{url.Values{"tenant": {id}, "reason": {"r"}, "duration": {"9999h"}}, "duration: 1m to"},
		{url.Values{"tenant": {"tnotatenantnotatenant"}, "reason": {"r"}}, "no tenant with id"},
		{url.Values{"reason": {"r"}}, "tenant: required"},
	} {
		c.form.Set("csrf", tok)
		resp, body := b.post("/console/impersonation", c.form)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(unescape(body), c.want) {
			t.Errorf("%v: %d, want 422 with %q\n%s", c.form, resp.StatusCode, c.want, body)
		}
	}

	resp, body := b.post("/console/impersonation", url.Values{"tenant": {id}, "reason": {"ticket 42: customer cannot see documents"}, "ticket": {"SUP-42"}, "csrf": {tok}})
	m := secretRE.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("start: %d, no credential shown\n%s", resp.StatusCode, body)
	}
	cred := m[1]
	wantContains(t, body, "customer cannot see documents", "SUP-42", "read-only")
	// Shown once.
	_, body = b.get("/console/impersonation")
	wantNot(t, body, cred)

	// It acts as tenant 0, and only tenant 0.
	if st := f.mcpStatus(t, cred); st != http.StatusOK {
		t.Errorf("MCP with the credential: %d", st)
	}
	e := f.wantConsoleEvent(t, t0.Record, "impersonate_tenant", "alice")
	if e.Detail["reason"] != "ticket 42: customer cannot see documents" || e.Detail["ticket"] != "SUP-42" {
		t.Errorf("impersonation event detail: %v", e.Detail)
	}
	if evs := f.consoleEvents(t, string(t1.Record.ID), "impersonate_tenant"); len(evs) != 0 {
		t.Errorf("tenant 1's chain has tenant 0's impersonation")
	}
	// Its requests are in tenant 0's chain with both identities.
	var asTenant int
	for _, e := range f.chain(t, id) {
		if e.Method == "tools/list" && e.Actor != nil && e.Actor.Sub == "alice" && strings.HasPrefix(e.User, "impersonator:") {
			asTenant++
		}
	}
	if asTenant == 0 {
		t.Error("the impersonated request is not in tenant 0's chain with the admin as actor")
	}

	// The server's admin authentication, which signs operators in to the
	// console, refuses the credential and tenants' tokens.
	for name, tok := range map[string]string{"impersonation credential": cred, "tenant token": t0.Token} {
		if _, err := f.h.Server.AuthenticateAdmin(t.Context(), tok); !errors.Is(err, server.ErrNotAdmin) {
			t.Errorf("AuthenticateAdmin(%s) = %v, want ErrNotAdmin", name, err)
		}
	}

	// End it.
	gid := regexp.MustCompile(`action="/console/impersonation/(imp_[a-z0-9]+)/end"`).FindStringSubmatch(body)
	if gid == nil {
		t.Fatalf("no end button among the active impersonations:\n%s", body)
	}
	resp, body = b.post("/console/impersonation/"+gid[1]+"/end", url.Values{"csrf": {tok}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "ended") {
		t.Errorf("end: %d\n%s", resp.StatusCode, body)
	}
	if st := f.mcpStatus(t, cred); st != http.StatusUnauthorized {
		t.Errorf("MCP with an ended credential: %d, want 401", st)
	}
	f.wantConsoleEvent(t, t0.Record, "end_impersonation", "alice")
	// Now among the past ones.
	_, body = b.get("/console/impersonation")
	if i, j := strings.Index(body, `id="past"`), strings.Index(body, gid[1]); i < 0 || j < i {
		t.Errorf("the ended impersonation is not listed as past:\n%s", body)
	}
	resp, body = b.post("/console/impersonation/imp_nosuchgrant/end", url.Values{"csrf": {tok}})
	if !strings.Contains(unescape(body), `There is no impersonation "imp_nosuchgrant"`) {
		t.Errorf("ending an unknown impersonation: %d\n%s", resp.StatusCode, body)
	}
}
