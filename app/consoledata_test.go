package app_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestConsoleDataPagesInDev: in dev, the console's charts, audit viewer
// and jobs page are wired to the server's history, the audit store and
// the lifecycle: an operator signed in at the dev authorization server
// sees a tenant's real traffic.
func TestConsoleDataPagesInDev(t *testing.T) {
	d := deploy(t, "[auth.multi_tenant]\ntenant_claim = \"org_id\"\n", nil)
	base := strings.TrimSuffix(d.url, "/mcp")
	acme := d.client(t, "acme", "alice")
	for range 3 {
		call(t, acme, "list_documents", nil)
	}
	rec, err := d.app.Registry.Lookup(context.Background(), d.iss.Issuer(), "acme")
	if err != nil {
		t.Fatal(err)
	}

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	// Sign in as the administrator on the dev sign-in page.
	resp, page := get("/console/charts")
	action := regexp.MustCompile(`<form method="post" action="([^"]+)"`).FindStringSubmatch(page)
	request := regexp.MustCompile(`name="request" value="([^"]+)"`).FindStringSubmatch(page)
	if action == nil || request == nil || !strings.Contains(page, `value="admin"`) {
		t.Fatalf("no dev sign-in form with an administrator at %s:\n%s", resp.Request.URL, page)
	}
	to, _ := url.Parse(html.UnescapeString(action[1]))
	form := url.Values{"request": {html.UnescapeString(request[1])}, "account": {"admin"}, "action": {"allow"}}
	req, _ := http.NewRequest(http.MethodPost, resp.Request.URL.ResolveReference(to).String(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	if resp, err = c.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/console/charts" {
		t.Fatalf("sign-in ended at %s (%d)", resp.Request.URL, resp.StatusCode)
	}

	_, page = get("/console/charts/" + string(rec.ID))
	if n := strings.Count(page, "<svg"); n != 3 || strings.Contains(page, "<dt>Requests</dt><dd>0</dd>") {
		t.Errorf("charts of acme: %d charts\n%s", n, page)
	}
	_, page = get("/console/tenants")
	if !strings.Contains(page, `class="spark"`) {
		t.Errorf("no sparkline on the tenants page:\n%s", page)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, page = get("/console/audit?tenant=acme&tool=list_documents")
		if strings.Contains(page, "<code>list_documents</code>") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the audit writer batches
	}
	if !strings.Contains(page, "<code>list_documents</code>") || !strings.Contains(page, "Verify chain now") {
		t.Errorf("acme's tool calls are not in the audit viewer:\n%s", page)
	}
	if resp, page = get("/console/jobs"); resp.StatusCode != http.StatusOK || !strings.Contains(page, "acme") {
		t.Errorf("jobs: %d\n%s", resp.StatusCode, page)
	}
}
