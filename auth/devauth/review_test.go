package devauth_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Findings of the attack review of the dev authorization server (issue
// 15), each a test that failed before its fix, and checks of what was
// found fine.

// TestReviewNoOpenRedirect: anyone can register a client (dynamic client
// registration, CORS open to every origin) with an https redirect URI of
// their own. An invalid authorization request of such a client must not
// bounce the browser there without the user doing anything: that would
// make /dev/authorize an open redirector to any site (RFC 9700 §4.11.2:
// redirect automatically only to trusted redirect URIs). The error is
// shown on the page instead. A redirect URI on this machine (loopback,
// RFC 8252 native clients such as the MCP Inspector) and the console's
// own client still get their errors as error=… with their state.
func TestReviewNoOpenRedirect(t *testing.T) {
	b := setup(t, nil)
	const remote = "https://phish.example/landing"
	f := b.newFlow(t, remote)
	for _, tc := range []struct {
		name string
		set  map[string][]string
	}{
		{"no response_type", map[string][]string{"response_type": nil}},
		{"implicit", map[string][]string{"response_type": {"token"}}},
		{"no state", map[string][]string{"state": nil}},
		{"no code_challenge", map[string][]string{"code_challenge": nil}},
		{"another resource", map[string][]string{"resource": {"https://other.example/mcp"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse(f.authorizeURL())
			q := u.Query()
			for k, v := range tc.set {
				q[k] = v
			}
			u.RawQuery = q.Encode()
			res := get(t, f.browser, u.String())
			if loc := res.header.Get("Location"); loc != "" {
				t.Fatalf("an invalid request of a remote client redirects by itself to %s (open redirect)", loc)
			}
			refusedOnPage(t, res, http.StatusBadRequest, "Nothing was sent back")
			if strings.Contains(res.body, "phish.example") {
				t.Fatal("the refusal page shows the client's URL as if it were a place to go")
			}
		})
	}
	// A valid request of the same client still works: the code goes there
	// after the user signed in (a decision of the user's).
	if q := redirected(t, func() *response { f.open(t); return f.submit(t, "tenant:acme", "") }(), remote); q.Get("code") == "" {
		t.Fatalf("sign-in of a remote client: %v", q)
	}
	// Cancelling is the user's decision too: it goes back to the client.
	f.open(t)
	res := postForm(t, f.browser, b.srv.URL+"/dev/authorize", url.Values{"request": {f.pageRequest}, "action": {"deny"}}, "Origin", b.srv.URL)
	if q := redirected(t, res, remote); q.Get("error") != "access_denied" {
		t.Fatalf("cancel: %v", q)
	}
	// A loopback client still gets its errors back (TestAuthorizeErrorsRedirect).
	lf := b.newFlow(t, callback)
	u, _ := url.Parse(lf.authorizeURL())
	q := u.Query()
	q.Del("response_type")
	u.RawQuery = q.Encode()
	if got := redirected(t, get(t, lf.browser, u.String()), callback); got.Get("error") != "invalid_request" {
		t.Fatalf("loopback client: %v", got)
	}
}

// TestReviewBodiesBounded: every POST endpoint reads at most 64 KiB; a
// larger body is refused and changes nothing (no client registered, no
// code issued).
func TestReviewBodiesBounded(t *testing.T) {
	b := setup(t, nil)
	big := strings.Repeat("a", 70<<10)

	res := postJSON(t, b.srv.URL+"/dev/register", `{"redirect_uris":["`+callback+`"],"client_name":"`+big+`"}`)
	oauthErr(t, res, http.StatusBadRequest, "invalid_client_metadata")

	f := b.newFlow(t, callback)
	f.open(t)
	res = postForm(t, f.browser, b.srv.URL+"/dev/authorize",
		url.Values{"request": {f.pageRequest}, "account": {"tenant:acme"}, "action": {"allow"}, "pad": {big}}, "Origin", b.srv.URL)
	refusedOnPage(t, res, http.StatusBadRequest, "could not be read")
	// The pending request was not spent by the oversized post.
	if q := redirected(t, f.submit(t, "tenant:acme", ""), callback); q.Get("code") == "" {
		t.Fatal(q)
	}

	code := f.code(t, "tenant:acme", "")
	res = f.redeem(t, code, "pad", big)
	oauthErr(t, res, http.StatusBadRequest, "invalid_request")
	// Still redeemable: the refused request did not reach the code.
	if id, _ := f.token(t, code); id.TenantID != "acme" {
		t.Fatalf("identity %+v", id)
	}
}

// TestReviewTokenResponsesNotStored: token and registration answers and
// their errors are never cached; the sign-in page cannot be framed and
// has a CSP.
func TestReviewTokenResponsesNotStored(t *testing.T) {
	b := setup(t, nil)
	f := b.newFlow(t, callback)
	res := f.redeem(t, "nope")
	oauthErr(t, res, http.StatusBadRequest, "invalid_grant") // checks no-store
	// An error that echoes the client's input is JSON-escaped and not
	// sniffable as HTML.
	res = postForm(t, nil, b.srv.URL+"/dev/token", url.Values{"grant_type": {"authorization_code"}, "<script>x</script>": {"1", "2"}})
	oauthErr(t, res, http.StatusBadRequest, "invalid_request")
	if res.header.Get("X-Content-Type-Options") != "nosniff" || strings.Contains(res.body, "<script>") {
		t.Fatalf("error response %v\n%s", res.header, res.body)
	}
	res = postJSON(t, b.srv.URL+"/dev/register", `{"redirect_uris":["`+callback+`"]}`)
	if res.status != http.StatusCreated || res.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("registration: %d %v", res.status, res.header)
	}
	page := f.open(t)
	h := page.header
	if h.Get("X-Frame-Options") != "DENY" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
		h.Get("Cache-Control") != "no-store" || strings.Contains(h.Get("Content-Security-Policy"), "unsafe-inline") {
		t.Fatalf("sign-in page headers %v", h)
	}
}
