package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/console"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

// Checks of the attack review of the console (issue 15). Findings that
// needed a fix have a test that failed before it (see also
// review_internal_test.go); the others pin down what was found fine.

// sessionCookie returns the browser's console session cookie value.
func (b *browser) sessionCookie() string {
	u, _ := url.Parse(b.f.base + "/console/")
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "tenantmcp_console" {
			return c.Value
		}
	}
	return ""
}

// withCookie sends GET path with only the session cookie value, no jar,
// and does not follow redirects.
func (f *fixture) withCookie(t *testing.T, path, value string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.base+path, nil)
	req.AddCookie(&http.Cookie{Name: "tenantmcp_console", Value: value})
	c := *f.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestReviewSessionRotated: every sign-in gets a new session id, and the
// browser's previous session (with or without admin access) ends: a
// session id planted or seen before a sign-in is worthless after it.
func TestReviewSessionRotated(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b, resp, _ := f.signIn(t, "bob", "read:tools")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("tenant user: %d", resp.StatusCode)
	}
	before := b.sessionCookie()
	f.idp.signInAs("alice", adminScope)
	resp, body := b.get("/console/signin")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/tenants" {
		t.Fatalf("admin sign-in: %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	after := b.sessionCookie()
	if before == "" || after == "" || before == after {
		t.Fatalf("session id not rotated at sign-in: %q → %q", before, after)
	}
	if r := f.withCookie(t, "/console/tenants", before); r.StatusCode != http.StatusSeeOther {
		t.Errorf("the session before the sign-in still works: %d", r.StatusCode)
	}
	if r := f.withCookie(t, "/console/tenants", after); r.StatusCode != http.StatusOK {
		t.Errorf("the new session: %d", r.StatusCode)
	}
	// An id the server never issued opens nothing (no session is created
	// from a cookie).
	if r := f.withCookie(t, "/console/tenants", strings.Repeat("A", 43)); r.StatusCode != http.StatusSeeOther {
		t.Errorf("a made-up session id: %d", r.StatusCode)
	}
}

// TestReviewCookieFlags: on an https console the cookies are Secure; on a
// loopback http one (dev) they are not (browsers would drop them); both
// are HttpOnly, SameSite=Lax and scoped to /console/.
func TestReviewCookieFlags(t *testing.T) {
	t.Parallel()
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		base := "http://" + r.Host
		fmt.Fprintf(w, `{"issuer":%q,"authorization_endpoint":%q,"token_endpoint":%q,"code_challenge_methods_supported":["S256"]}`, base, base+"/authorize", base+"/token")
	}))
	t.Cleanup(idp.Close)
	for _, tc := range []struct {
		redirect string
		secure   bool
	}{
		{"https://console.example/console/callback", true},
		{"http://127.0.0.1:8080/console/callback", false},
		{"http://localhost:8080/console/callback", false},
	} {
		c, err := console.New(console.Options{
			Service:       &admin.Service{}, // not reached by the sign-in
			Authenticator: console.AuthenticatorFunc(func(context.Context, string) (*server.AdminCaller, error) { return nil, server.ErrNoAdmin }),
			Issuer:        idp.URL, ClientID: "c", RedirectURL: tc.redirect, HTTPClient: idp.Client(),
		})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console/signin", nil))
		cks := rec.Result().Cookies()
		if rec.Code != http.StatusSeeOther || len(cks) != 1 {
			t.Fatalf("%s: sign-in %d, cookies %v", tc.redirect, rec.Code, cks)
		}
		ck := cks[0]
		if ck.Secure != tc.secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/console/" || ck.Domain != "" {
			t.Errorf("%s: cookie %+v, want Secure=%v HttpOnly SameSite=Lax Path=/console/ and no Domain", tc.redirect, ck, tc.secure)
		}
	}
	// The session cookie after a real sign-in (loopback fixture).
	f := setup(t, setupOptions{})
	b := f.browser(t)
	az := b.startSignIn(t)
	c := *b.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(az.String()) // the IdP answers with a redirect to the callback
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = c.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "tenantmcp_console" {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/console/" || len(session.Value) < 43 {
		t.Fatalf("session cookie %+v", session)
	}
}

// TestReviewNextStaysInConsole: whatever next= a link carries, the
// browser ends up on a console page of this server after the sign-in.
func TestReviewNextStaysInConsole(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "/console/\\\\evil.example",
		"/console/..//evil.example", "/console/%2e%2e//evil.example", "javascript:alert(1)", "/console/\r\nLocation: https://evil.example"} {
		b := f.browser(t)
		resp, _ := b.get("/console/signin?next=" + url.QueryEscape(next))
		if host := resp.Request.URL.Host; host != strings.TrimPrefix(f.base, "http://") {
			t.Errorf("next=%q: the sign-in ended at %s", next, resp.Request.URL)
		}
		// Signed in, the same link goes nowhere else either.
		r := b.getNoFollow("/console/signin?next=" + url.QueryEscape(next))
		if loc, _ := url.Parse(r.Header.Get("Location")); r.StatusCode != http.StatusSeeOther || loc == nil || loc.Host != "" || !strings.HasPrefix(loc.Path, "/") || strings.HasPrefix(loc.Path, "//") {
			t.Errorf("next=%q when signed in: %d to %q", next, r.StatusCode, r.Header.Get("Location"))
		}
	}
}

// hostile is text a tenant (its name, its users' ids) or an operator's
// typing may carry: it must appear on no page unescaped.
const hostile = `"><script>alert(1)</script><img src=x onerror=alert(2)>`

// TestReviewTenantTextEscaped: tenant-controlled strings (name, flags,
// config, users' ids in the audit trail, reasons) are escaped on every
// page, the SVG charts included.
func TestReviewTenantTextEscaped(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{data: true})
	rec := f.h.Tenant(0).Record
	id := string(rec.ID)
	if _, err := f.reg.Update(context.Background(), rec.ID, func(r *registry.Tenant) error {
		r.Name = hostile
		r.Flags = map[string]bool{"beta<script>": true}
		r.Config = map[string]string{"k<b>": hostile}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A request of a user with a hostile id: in the audit trail and the charts.
	c := f.h.Connect(f.h.Token(0, auth.TokenRequest{UserID: hostile}))
	c.Call(t, "list_documents", map[string]any{})
	b := f.admin(t)
	tok := b.csrf("/console/tenants/" + id + "/suspend")
	if resp, body := b.post("/console/tenants/"+id+"/suspend", url.Values{"csrf": {tok}, "reason": {"because " + hostile}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("suspend: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := b.post("/console/impersonation", url.Values{"csrf": {tok}, "tenant": {id}, "reason": {hostile}, "user": {"u" + hostile}, "include_suspended": {"on"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("impersonate: %d\n%s", resp.StatusCode, body)
	}
	for _, p := range []string{"/console/tenants", "/console/tenants/" + id, "/console/tenants/" + id + "/resume",
		"/console/audit?tenant=" + id, "/console/charts/" + id, "/console/charts", "/console/impersonation", "/console/jobs"} {
		resp, body := b.get(p)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
		for _, raw := range []string{"<script>", "<img", "<b>"} {
			if strings.Contains(body, raw) {
				t.Errorf("GET %s shows %q unescaped", p, raw)
			}
		}
	}
	// The hostile text is there, escaped (so the test looked at the right pages).
	_, body := b.get("/console/audit?tenant=" + id)
	wantContains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;")
}

// TestReviewHeadersOnEveryResponse: the security headers are on refusals
// and errors too, not only on pages.
func TestReviewHeadersOnEveryResponse(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{data: true})
	check := func(what string, resp *http.Response) {
		t.Helper()
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
			h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s (%d): headers %v", what, resp.StatusCode, h)
		}
	}
	anon := f.browser(t)
	resp, _ := anon.post("/console/tenants/x/suspend", url.Values{"csrf": {"x"}})
	check("POST without a session", resp)
	resp, _ = anon.get("/console/callback?state=x&code=y")
	check("failed callback", resp)
	resp, _ = anon.get("/console/assets/nope.css")
	check("missing asset", resp)
	b := f.admin(t)
	resp, _ = b.post("/console/tenants/x/suspend", url.Values{"csrf": {"wrong"}})
	check("CSRF refusal", resp)
	resp, _ = b.get("/console/charts/tnotatenantnotatenant")
	check("unknown tenant's charts", resp)
	resp, _ = b.get("/console/audit/export?tenant=" + string(f.h.Tenant(0).Record.ID))
	check("audit export", resp)
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("audit export Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	req, _ := http.NewRequest(http.MethodDelete, f.base+"/console/tenants/"+string(f.h.Tenant(0).Record.ID), nil)
	resp, _ = b.do(req)
	check("DELETE", resp)
}

// TestReviewOversizedForm: a form body over 64 KiB is refused before it
// is parsed, and nothing changes.
func TestReviewOversizedForm(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b := f.admin(t)
	id := string(f.h.Tenant(0).Record.ID)
	tok := b.csrf("/console/tenants/" + id)
	resp, body := b.post("/console/tenants/"+id, url.Values{"csrf": {tok}, "name": {"Renamed"}, "pad": {strings.Repeat("a", 70<<10)}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "could not be read") {
		t.Errorf("oversized form: %d\n%s", resp.StatusCode, body)
	}
	if n := f.tenant(t, 0).Name; n != "Test Tenant 0" {
		t.Errorf("an oversized form renamed the tenant to %q", n)
	}
}

// TestReviewTenantUserLearnsNothing: to a user without admin access every
// console URL answers the same page, whether the tenant it names exists,
// is another tenant, or does not exist.
func TestReviewTenantUserLearnsNothing(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{data: true})
	b, _, _ := f.signIn(t, "bob", "read:tools")
	var first string
	for i, p := range []string{"/console/tenants/" + string(f.h.Tenant(1).Record.ID), "/console/tenants/tnotatenantnotatenant",
		"/console/charts/" + string(f.h.Tenant(1).Record.ID), "/console/charts/tnotatenantnotatenant",
		"/console/audit?tenant=" + f.h.Tenant(1).Record.ExternalID, "/console/audit?tenant=nobody",
		"/console/audit/export?tenant=" + string(f.h.Tenant(1).Record.ID)} {
		resp, body := b.get(p)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
		if i == 0 {
			first = body
		} else if body != first {
			t.Errorf("GET %s answers differently from GET of another tenant's page:\n%s", p, body)
		}
	}
}
