package console_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/console"
)

// TestMain checks that no test leaves a goroutine behind (servers, audit
// writers, verifiers).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSignInRoundTrip(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b, resp, body := f.signIn(t, "alice")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/tenants" {
		t.Fatalf("sign-in ended at %s with %d", resp.Request.URL, resp.StatusCode)
	}
	wantContains(t, body, "Test Tenant 0", "test-tenant-0", "Test Tenant 1", `aria-current="page"`, "alice", "Sign out")
	// The sign-in is in the audit trail: the system chain, the admin as
	// the actor.
	var signIns []*audit.Event
	for _, e := range f.consoleEvents(t, audit.SystemChain, "sign_in") {
		if e.Outcome == audit.OutcomeOK && e.Actor != nil && e.Actor.Sub == "alice" && e.Actor.Issuer == f.idp.iss.Issuer() && e.RequestID != "" {
			signIns = append(signIns, e)
		}
	}
	if len(signIns) != 1 {
		t.Errorf("%d audited sign-ins by alice in the system chain, want 1", len(signIns))
	}

	f.idp.mu.Lock()
	az, tok := f.idp.authorizes[0], f.idp.tokenReqs[0]
	f.idp.mu.Unlock()
	if az.Get("resource") != f.h.URL || !strings.Contains(az.Get("scope"), adminScope) || !strings.Contains(az.Get("scope"), "openid") || az.Get("nonce") == "" {
		t.Errorf("authorization request %v: want resource %s, scope with openid and %s, a nonce", az, f.h.URL, adminScope)
	}
	sum := sha256.Sum256([]byte(tok.Get("code_verifier")))
	if tok.Get("code_verifier") == "" || base64.RawURLEncoding.EncodeToString(sum[:]) != az.Get("code_challenge") {
		t.Errorf("token request sent verifier %q, which is not the challenge's %q", tok.Get("code_verifier"), az.Get("code_challenge"))
	}
	if tok.Get("resource") != f.h.URL {
		t.Errorf("token request resource %q, want %q", tok.Get("resource"), f.h.URL)
	}

	// The cookie: HttpOnly, Lax, scoped to the console, not Secure on
	// loopback http.
	var set string
	for r := resp.Request.Response; r != nil; r = r.Request.Response {
		for _, h := range r.Header.Values("Set-Cookie") {
			if strings.HasPrefix(h, "tenantmcp_console=") {
				set = h
			}
		}
	}
	for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/console/"} {
		if !strings.Contains(set, want) {
			t.Errorf("session cookie %q lacks %s", set, want)
		}
	}
	if strings.Contains(set, "Secure") {
		t.Errorf("session cookie %q is Secure on a loopback http console", set)
	}

	// A second attempt in the same browser is not needed: a signed-in
	// admin going to the sign-in lands on the page asked for.
	resp, _ = b.get("/console/signin?next=/console/impersonation")
	if resp.Request.URL.Path != "/console/impersonation" {
		t.Errorf("signed-in admin at the sign-in went to %s", resp.Request.URL)
	}
	// Never outside the console.
	resp, _ = b.get("/console/signin?next=//evil.example/x")
	if resp.Request.URL.Host != strings.TrimPrefix(f.base, "http://") {
		t.Errorf("next=//evil.example sent the browser to %s", resp.Request.URL)
	}
}

func TestSignInRFC8414Fallback(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{rfc8414Only: true})
	f.admin(t)
	f.idp.mu.Lock()
	scope := f.idp.authorizes[0].Get("scope")
	f.idp.mu.Unlock()
	if scope != adminScope {
		t.Errorf("scope %q from an OAuth (not OpenID) provider, want %q", scope, adminScope)
	}
}

// getNoFollow sends a GET without following a redirect; the body is
// read and closed.
func (b *browser) getNoFollow(path string) *http.Response {
	b.t.Helper()
	c := *b.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(b.f.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// startSignIn starts a sign-in in b and returns the authorization URL
// (not followed).
func (b *browser) startSignIn(t *testing.T) *url.URL {
	t.Helper()
	resp := b.getNoFollow("/console/signin")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d, want 303", resp.StatusCode)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSignInStateChecks(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	a := f.browser(t)
	az := a.startSignIn(t)
	state := az.Query().Get("state")

	// A callback with another state than this browser's.
	resp, body := a.get("/console/callback?code=x&state=" + url.QueryEscape(state+"x"))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not started in this browser") {
		t.Errorf("wrong state: %d\n%s", resp.StatusCode, body)
	}
	// That failure dropped this browser's sign-in cookie: the real state
	// now fails too (start again).
	resp, _ = a.get("/console/callback?code=x&state=" + url.QueryEscape(state))
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("state after the cookie was dropped: %d", resp.StatusCode)
	}

	// Another browser cannot finish a sign-in started in the first (login
	// CSRF): its IdP round trip comes back with the first one's state.
	a2 := f.browser(t)
	az = a2.startSignIn(t)
	b := f.browser(t)
	resp, body = b.get(az.String()) // the IdP redirects b to the callback with a2's state
	if resp.StatusCode != http.StatusBadRequest || resp.Request.URL.Path != "/console/callback" {
		t.Errorf("foreign state: ended at %s with %d\n%s", resp.Request.URL, resp.StatusCode, body)
	}
	if resp := b.getNoFollow("/console/tenants"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("browser with a foreign state got a session: %d", resp.StatusCode)
	}

	// A state is used once: replaying a finished sign-in's callback fails.
	c := f.browser(t)
	az = c.startSignIn(t)
	resp, _ = c.get(az.String())
	if resp.Request.URL.Path != "/console/tenants" {
		t.Fatalf("sign-in ended at %s", resp.Request.URL)
	}
	var cb *url.URL // the callback
	for r := resp.Request.Response; r != nil; r = r.Request.Response {
		if r.Request.URL.Path == "/console/callback" {
			cb = r.Request.URL
		}
	}
	resp, _ = f.browser(t).get(cb.RequestURI())
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("replayed callback: %d, want 400", resp.StatusCode)
	}
}

// signInCookie returns the browser's sign-in cookie value ("" = none).
func (b *browser) signInCookie() string {
	u, _ := url.Parse(b.f.base + "/console/")
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "tenantmcp_console_signin" {
			return c.Value
		}
	}
	return ""
}

// callbackWith sends GET path (a callback) with only the sign-in cookie
// value, not following redirects; it returns the status and the body.
func (f *fixture) callbackWith(t *testing.T, path, cookie string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.base+path, nil)
	req.AddCookie(&http.Cookie{Name: "tenantmcp_console_signin", Value: cookie})
	c := *f.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestSignInCookieUsedOnce: the sign-in lives in its cookie, which is
// cleared when used; a copy of it replayed with the same callback (state
// and code) is refused by the console itself, before the identity
// provider is asked (it would refuse the used code too), and makes no
// session.
func TestSignInCookieUsedOnce(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b := f.browser(t)
	az := b.startSignIn(t)
	ck := b.signInCookie()
	if ck == "" {
		t.Fatal("no sign-in cookie after the start")
	}
	c := *b.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(az.String()) // the IdP redirects to the callback
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb, _ := url.Parse(resp.Header.Get("Location"))
	resp, body := b.get(cb.String())
	if resp.Request.URL.Path != "/console/tenants" || resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in ended at %s with %d\n%s", resp.Request.URL, resp.StatusCode, body)
	}
	if left := b.signInCookie(); left != "" {
		t.Errorf("the sign-in cookie is kept after use: %q", left)
	}
	f.idp.mu.Lock()
	exchanges := len(f.idp.tokenReqs)
	f.idp.mu.Unlock()
	status, body := f.callbackWith(t, cb.RequestURI(), ck)
	if status != http.StatusBadRequest || !strings.Contains(body, "already used") {
		t.Errorf("replayed callback with the same cookie: %d, want 400 already used\n%s", status, body)
	}
	f.idp.mu.Lock()
	if n := len(f.idp.tokenReqs); n != exchanges {
		t.Errorf("the replay reached the identity provider's token endpoint (%d exchanges, want %d)", n, exchanges)
	}
	f.idp.mu.Unlock()
}

// TestSignInCookieRefused: a sign-in cookie that has expired, or that this
// console did not seal (another replica, a restart, a made-up or altered
// value), is refused with a page that says so and what to do.
func TestSignInCookieRefused(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b := f.browser(t)
	az := b.startSignIn(t)
	state := url.QueryEscape(az.Query().Get("state"))
	ck := b.signInCookie()
	for name, bad := range map[string]string{
		"made up":    "AAAA" + ck[4:],
		"a state":    az.Query().Get("state"),
		"not base64": "%%%",
		"all A":      strings.Repeat("A", len(ck)),
	} {
		status, body := f.callbackWith(t, "/console/callback?code=x&state="+state, bad)
		if status != http.StatusBadRequest || !strings.Contains(body, "started on another server of this deployment, or before the server restarted") {
			t.Errorf("%s cookie: %d\n%s", name, status, body)
		}
	}
	f.clock.advance(console.SignInTimeout)
	resp, body := b.get(az.String())
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "This sign-in expired") {
		t.Errorf("a sign-in finished %v after it started: %d\n%s", console.SignInTimeout, resp.StatusCode, body)
	}
	if resp := b.getNoFollow("/console/tenants"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("an expired sign-in made a session: %d", resp.StatusCode)
	}
}

// TestSignInFlood: starting a sign-in stores nothing on the server, so a
// flood of sign-in starts by anyone (5,000, more than the 1,000 sign-ins
// in progress the server used to keep, oldest dropped) does not stop an
// operator's sign-in that began before it from completing.
func TestSignInFlood(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	op := f.browser(t)
	az := op.startSignIn(t)
	c := *f.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for i := range 5000 {
		resp, err := c.Get(f.base + "/console/signin")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-in start %d of the flood: %d", i, resp.StatusCode)
		}
	}
	resp, body := op.get(az.String())
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/tenants" {
		t.Fatalf("the operator's sign-in after the flood ended at %s with %d\n%s", resp.Request.URL, resp.StatusCode, body)
	}
	wantContains(t, body, "alice", "Sign out")
}

func TestSignInRefusedToken(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b := f.browser(t)
	state := b.startSignIn(t).Query().Get("state")
	resp, body := b.get("/console/callback?error=access_denied&state=" + url.QueryEscape(state))
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "access_denied") {
		t.Errorf("IdP error: %d\n%s", resp.StatusCode, body)
	}
	// The IdP hands out a token for another resource: the server's admin
	// authentication refuses it.
	f.idp.mu.Lock()
	f.idp.audience = "https://other.example/mcp"
	f.idp.mu.Unlock()
	resp, body = b.get("/console/signin")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not accepted by this server") {
		t.Errorf("token for another resource: %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	if resp := b.getNoFollow("/console/tenants"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a refused sign-in left a session: %d", resp.StatusCode)
	}
}

func TestNoSessionRedirectsToSignIn(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b := f.browser(t)
	id := string(f.h.Tenant(0).Record.ID)
	for _, p := range []string{"/console/", "/console/tenants", "/console/tenants/" + id, "/console/impersonation", "/console/audit", "/console/charts", "/console/jobs", "/console/nope"} {
		resp := b.getNoFollow(p)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/signin?next=") {
			t.Errorf("GET %s without a session: %d to %q, want 303 to the sign-in", p, resp.StatusCode, loc)
		}
	}
	resp, body := b.post("/console/tenants/"+id+"/suspend", url.Values{"reason": {"x"}, "csrf": {"guess"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST without a session: %d\n%s", resp.StatusCode, body)
	}
	if st := f.tenant(t, 0).Status; st != "active" {
		t.Errorf("tenant is %s after a POST without a session", st)
	}
}

func TestTenantUserSeesNoAdminAccess(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	// A valid token of the admin identity provider without the admin
	// scope: a tenant's user, say.
	b, resp, body := f.signIn(t, "bob", "read:tools")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "No admin access") {
		t.Fatalf("tenant user: %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	secret := []string{"Test Tenant", "test-tenant-", `aria-label="Main"`, "/console/tenants/"}
	wantNot(t, body, secret...)
	id := string(f.h.Tenant(0).Record.ID)
	for _, p := range []string{"/console/", "/console/tenants", "/console/tenants/" + id, "/console/tenants/" + id + "/suspend",
		"/console/impersonation", "/console/audit", "/console/charts", "/console/jobs", "/console/nope"} {
		resp, body := b.get(p)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "No admin access") {
			t.Errorf("tenant user GET %s: %d", p, resp.StatusCode)
		}
		wantNot(t, body, secret...)
	}
	tok := b.csrf("/console/tenants") // the no-access page's sign-out form
	resp, body = b.post("/console/tenants/"+id+"/suspend", url.Values{"reason": {"x"}, "csrf": {tok}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "No admin access") {
		t.Errorf("tenant user POST suspend: %d", resp.StatusCode)
	}
	resp, _ = b.post("/console/impersonation", url.Values{"tenant": {id}, "reason": {"x"}, "csrf": {tok}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("tenant user POST impersonation: %d", resp.StatusCode)
	}
	if st := f.tenant(t, 0).Status; st != "active" {
		t.Errorf("tenant is %s after a tenant user's POST", st)
	}
	if evs := f.consoleEvents(t, id, "impersonate_tenant"); len(evs) != 0 {
		t.Errorf("a tenant user's POST started an impersonation: %+v", evs)
	}
	// Signing out works.
	resp, body = b.post("/console/signout", url.Values{"csrf": {tok}})
	if resp.Request.URL.Path != "/console/signedout" {
		t.Errorf("sign-out ended at %s: %d\n%s", resp.Request.URL, resp.StatusCode, body)
	}
}

func TestSignOutAndExpiry(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b := f.admin(t)
	tok := b.csrf("/console/tenants")
	resp, body := b.post("/console/signout", url.Values{"csrf": {"wrong"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-out with a wrong token: %d\n%s", resp.StatusCode, body)
	}
	resp, _ = b.post("/console/signout", url.Values{"csrf": {tok}})
	if resp.Request.URL.Path != "/console/signedout" {
		t.Fatalf("sign-out ended at %s", resp.Request.URL)
	}
	if resp := b.getNoFollow("/console/tenants"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after sign-out: %d, want 303 to the sign-in", resp.StatusCode)
	}

	// The access token lasts an hour: the session ends with it.
	b = f.admin(t)
	f.clock.advance(61 * time.Minute)
	if resp := b.getNoFollow("/console/tenants"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after the token's expiry: %d, want 303 to the sign-in", resp.StatusCode)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b := f.admin(t)
	for _, p := range []string{"/console/tenants", "/console/assets/console.css", "/console/signedout", "/console/nope"} {
		resp, _ := b.get(p)
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", p, h)
		}
		if p != "/console/assets/console.css" && h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", p, h.Get("Cache-Control"))
		}
	}
	resp := f.browser(t).getNoFollow("/console/signin")
	if resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("sign-in redirect headers: %v", resp.Header)
	}
}

// TestCrossTenantCredentials: a tenant's MCP bearer token opens nothing
// on the console, and a console session cookie opens nothing on /mcp or
// the admin API.
func TestCrossTenantCredentials(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	tenantTok := f.h.Tenant(0).Token
	for _, p := range []string{"/console/tenants", "/console/tenants/" + string(f.h.Tenant(1).Record.ID), "/console/impersonation"} {
		req, _ := http.NewRequest(http.MethodGet, f.base+p, nil)
		req.Header.Set("Authorization", "Bearer "+tenantTok)
		c := *f.client
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/signin") {
			t.Errorf("GET %s with a tenant's bearer token: %d, want 303 to the sign-in", p, resp.StatusCode)
		}
	}

	b := f.admin(t)
	u, _ := url.Parse(f.base + "/console/")
	var cookie string
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "tenantmcp_console" {
			cookie = c.Name + "=" + c.Value
		}
	}
	if cookie == "" {
		t.Fatal("no session cookie after sign-in")
	}
	if st := f.mcpStatus(t, "", "Cookie", cookie); st != http.StatusUnauthorized {
		t.Errorf("/mcp with the console cookie: %d, want 401", st)
	}
	req, _ := http.NewRequest(http.MethodGet, f.base+"/admin/v1/tenants", nil)
	req.Header.Set("Cookie", cookie)
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/admin/v1/tenants with the console cookie: %d, want 401", resp.StatusCode)
	}
}

func TestSignInProviderDown(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	f.idp.ts.Close()
	resp, body := f.browser(t).get("/console/")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "Sign-in unavailable") {
		t.Errorf("provider down: %d\n%s", resp.StatusCode, body)
	}
}

// TestSignInAgainAsAdmin: a browser signed in without admin rights can
// sign in again as an admin, and then gets in.
func TestSignInAgainAsAdmin(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b, resp, _ := f.signIn(t, "bob", "read:tools")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("tenant user: %d", resp.StatusCode)
	}
	f.idp.signInAs("alice", adminScope)
	resp, body := b.get("/console/signin?next=/console/impersonation")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/impersonation" {
		t.Fatalf("signing in again as an admin: %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	wantContains(t, body, "alice")
}

// TestSignInUnrecorded: a sign-in the audit trail cannot record is
// refused, and leaves no session.
func TestSignInUnrecorded(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.w.Close(ctx); err != nil { // no room for any event from now on
		t.Fatal(err)
	}
	b, resp, body := f.signIn(t, "alice")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("sign-in with the audit trail closed: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	wantContains(t, body, "could not be recorded in the audit trail")
	// No session: the console sends the browser to sign in again (which
	// the test's identity provider answers at once, and which is refused
	// again), never to the page.
	if resp, _ := b.get("/console/tenants"); resp.Request.URL.Path != "/console/callback" || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after the refused sign-in, /console/tenants ended at %s with %d, want a new, refused sign-in", resp.Request.URL, resp.StatusCode)
	}
}
