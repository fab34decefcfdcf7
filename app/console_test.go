package app_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestDevServesConsole: dev mounts the console, whose sign-in goes to the
// dev authorization server with its pre-registered console client.
func TestDevServesConsole(t *testing.T) {
	d := deploy(t, "[auth.multi_tenant]\ntenant_claim = \"org_id\"\nisolation = \"database_per_tenant\"\n", nil)
	base := strings.TrimSuffix(d.url, "/mcp")
	c := &http.Client{Transport: &http.Transport{}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(c.CloseIdleConnections)
	get := func(u string) *http.Response {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := get(base + "/console/tenants")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/signin") {
		t.Fatalf("GET /console/tenants: %d to %q, want the sign-in", resp.StatusCode, loc)
	}
	resp = get(base + "/console/signin")
	az, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther || az.String() == "" {
		t.Fatalf("GET /console/signin: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	q := az.Query()
	if got := az.Scheme + "://" + az.Host + az.Path; got != d.iss.Issuer()+"/authorize" {
		t.Errorf("sign-in goes to %s, want the dev authorization server", got)
	}
	if q.Get("client_id") != "tenantmcp-console" || q.Get("redirect_uri") != base+"/console/callback" || q.Get("resource") != d.url {
		t.Errorf("authorization request %v", q)
	}
	req, _ := http.NewRequest(http.MethodGet, az.String(), nil)
	for _, ck := range resp.Cookies() {
		req.AddCookie(ck)
	}
	page, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != http.StatusOK || !strings.Contains(string(body), "Administrator") {
		t.Errorf("the dev sign-in page for the console: %d\n%s", page.StatusCode, body)
	}
}
