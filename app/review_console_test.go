package app_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Checks of the attack review of the console and the dev authorization
// server (issue 15), through a server assembled as dev assembles it.

var reviewRequestRE = regexp.MustCompile(`name="request" value="([^"]+)"`)

// reviewBrowser is a cookie-keeping client; follow says whether it
// follows redirects.
func reviewBrowser(t *testing.T, follow bool) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: &http.Transport{}}
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func reviewDo(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func reviewGet(t *testing.T, c *http.Client, u, bearer string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return reviewDo(t, c, req)
}

// signInPage posts the dev sign-in form of page (shown to c) as account.
func signInPage(t *testing.T, c *http.Client, base, page, account string) (*http.Response, string) {
	t.Helper()
	m := reviewRequestRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no sign-in form:\n%s", page)
	}
	form := url.Values{"request": {m[1]}, "account": {account}, "action": {"allow"}}
	req, _ := http.NewRequest(http.MethodPost, base+"/dev/authorize", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	return reviewDo(t, c, req)
}

// TestReviewConsoleThroughDevAuth: in dev, a tenant's user who signs in
// to the console at the dev authorization server sees "No admin access"
// on every page and nothing of any tenant; a tenant token asking for the
// admin scope does not get it and is refused by the admin API; the ID
// token the console receives is no bearer token for /mcp or the admin
// API. The administrator gets in.
func TestReviewConsoleThroughDevAuth(t *testing.T) {
	d := deploy(t, "[auth.multi_tenant]\ntenant_claim = \"org_id\"\nisolation = \"database_per_tenant\"\n", nil)
	base := strings.TrimSuffix(d.url, "/mcp")
	ctx := context.Background()
	for _, ext := range []string{"acme", "globex"} {
		if _, err := d.app.EnsureTenant(ctx, d.iss.Issuer(), ext, "Tenant "+ext); err != nil {
			t.Fatal(err)
		}
	}
	globex, err := d.app.Registry.Lookup(ctx, d.iss.Issuer(), "globex")
	if err != nil {
		t.Fatal(err)
	}

	// A tenant's user signs in to the console.
	user := reviewBrowser(t, true)
	_, page := reviewGet(t, user, base+"/console/signin", "")
	resp, body := signInPage(t, user, base, page, "tenant:acme")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "No admin access") {
		t.Fatalf("acme's user at the console: %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	for _, p := range []string{"/console/tenants", "/console/tenants/" + string(globex.ID), "/console/charts/" + string(globex.ID),
		"/console/audit?tenant=globex", "/console/impersonation", "/console/jobs"} {
		resp, body := reviewGet(t, user, base+p, "")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "No admin access") {
			t.Errorf("acme's user GET %s: %d", p, resp.StatusCode)
		}
		for _, secret := range []string{"globex", "Tenant acme", string(globex.ID)} {
			if strings.Contains(body, secret) {
				t.Errorf("acme's user GET %s sees %q", p, secret)
			}
		}
	}

	// A client of its own (the console's client id, which is public)
	// asking for the admin scope as acme's user, with openid.
	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {"tenantmcp-console"}, "redirect_uri": {base + "/console/callback"},
		"state": {"s"}, "nonce": {"n"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"scope": {"openid " + d.app.Config.Admin.Scope + " read:tools"}, "resource": {d.url}}
	tokens := func(account string) (access, id string) {
		t.Helper()
		c := reviewBrowser(t, false)
		_, page := reviewGet(t, c, base+"/dev/authorize?"+q.Encode(), "")
		resp, _ := signInPage(t, c, base, page, account)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		code := loc.Query().Get("code")
		if resp.StatusCode != http.StatusSeeOther || code == "" {
			t.Fatalf("sign-in as %s: %d to %s", account, resp.StatusCode, loc)
		}
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"tenantmcp-console"},
			"redirect_uri": {base + "/console/callback"}, "code_verifier": {verifier}}
		tr, err := http.PostForm(base+"/dev/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Body.Close()
		var m struct {
			AccessToken string `json:"access_token"`
			IDToken     string `json:"id_token"`
			Scope       string `json:"scope"`
		}
		if err := json.NewDecoder(tr.Body).Decode(&m); err != nil || m.AccessToken == "" || m.IDToken == "" {
			t.Fatalf("token response %d %+v %v", tr.StatusCode, m, err)
		}
		if account != "admin" && strings.Contains(m.Scope, d.app.Config.Admin.Scope) {
			t.Fatalf("%s was granted the admin scope: %q", account, m.Scope)
		}
		return m.AccessToken, m.IDToken
	}
	plain := reviewBrowser(t, false)
	acmeTok, acmeID := tokens("tenant:acme")
	if resp, _ := reviewGet(t, plain, base+"/admin/v1/tenants", acmeTok); resp.StatusCode != http.StatusForbidden {
		t.Errorf("acme's token at the admin API: %d, want 403", resp.StatusCode)
	}
	adminTok, adminID := tokens("admin")
	if resp, _ := reviewGet(t, plain, base+"/admin/v1/tenants", adminTok); resp.StatusCode != http.StatusOK {
		t.Errorf("the administrator's token at the admin API: %d, want 200", resp.StatusCode)
	}
	for name, idt := range map[string]string{"acme's": acmeID, "the administrator's": adminID} {
		if resp, _ := reviewGet(t, plain, base+"/admin/v1/tenants", idt); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s ID token at the admin API: %d, want 401", name, resp.StatusCode)
		}
		req, _ := http.NewRequest(http.MethodPost, d.url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
		req.Header.Set("Authorization", "Bearer "+idt)
		if resp, _ := reviewDo(t, plain, req); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s ID token at /mcp: %d, want 401", name, resp.StatusCode)
		}
	}

	// The administrator signs in to the console and sees the tenants.
	op := reviewBrowser(t, true)
	_, page = reviewGet(t, op, base+"/console/signin", "")
	resp, body = signInPage(t, op, base, page, "admin")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/tenants" || !strings.Contains(body, "Tenant globex") {
		t.Fatalf("the administrator at the console: %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
}
