package devauth_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/auth/devauth"
)

const callback = "http://127.0.0.1:9999/callback"

func TestMetadata(t *testing.T) {
	b := setup(t, nil)
	base := b.srv.URL
	for _, tc := range []struct {
		path string
		oidc bool
	}{
		{"/.well-known/oauth-authorization-server/dev", false},
		{"/.well-known/openid-configuration/dev", true},
		{"/dev/.well-known/openid-configuration", true},
	} {
		t.Run(tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, base+tc.path, nil)
			req.Header.Set("Origin", "http://localhost:6274") // the Inspector's UI
			res := do(t, nil, req)
			if res.status != http.StatusOK || res.header.Get("Access-Control-Allow-Origin") != "*" {
				t.Fatalf("%d, CORS %q\n%s", res.status, res.header.Get("Access-Control-Allow-Origin"), res.body)
			}
			m := res.json(t)
			want := map[string]any{
				"issuer":                                b.iss.Issuer(),
				"authorization_endpoint":                base + "/dev/authorize",
				"token_endpoint":                        base + "/dev/token",
				"registration_endpoint":                 base + "/dev/register",
				"jwks_uri":                              base + "/dev/jwks.json",
				"code_challenge_methods_supported":      []any{"S256"},
				"response_types_supported":              []any{"code"},
				"grant_types_supported":                 []any{"authorization_code"},
				"token_endpoint_auth_methods_supported": []any{"none"},
				"scopes_supported":                      []any{"read:tools", "execute:tools", adminScope, "openid"},
			}
			if tc.oidc {
				want["subject_types_supported"] = []any{"public"}
				want["id_token_signing_alg_values_supported"] = []any{"ES256"}
			}
			for k, v := range want {
				if fmt.Sprint(m[k]) != fmt.Sprint(v) {
					t.Errorf("%s = %v, want %v", k, m[k], v)
				}
			}
			if _, ok := m["client_id_metadata_document_supported"]; ok {
				t.Error("metadata claims Client ID Metadata Document support, which is not implemented")
			}
			if !tc.oidc && m["subject_types_supported"] != nil {
				t.Error("RFC 8414 document has OIDC members")
			}

			req, _ = http.NewRequest(http.MethodOptions, base+tc.path, nil)
			req.Header.Set("Origin", "http://localhost:6274")
			req.Header.Set("Access-Control-Request-Method", "GET")
			if res := do(t, nil, req); res.status != http.StatusNoContent || res.header.Get("Access-Control-Allow-Origin") != "*" {
				t.Fatalf("preflight: %d %v", res.status, res.header)
			}
			if res := postJSON(t, base+tc.path, "{}"); res.status != http.StatusMethodNotAllowed {
				t.Fatalf("POST: %d", res.status)
			}
		})
	}
	// The JWK Set the metadata names verifies the issuer's tokens.
	res := get(t, nil, base+"/dev/jwks.json")
	if res.status != http.StatusOK || res.body != string(b.iss.JWKS()) {
		t.Fatalf("jwks: %d %s", res.status, res.body)
	}
}

func TestRegister(t *testing.T) {
	b := setup(t, nil)
	u := b.srv.URL + "/dev/register"
	res := postJSON(t, u, `{"redirect_uris":["http://127.0.0.1:5173/cb","http://localhost/cb","http://[::1]:80/x?a=b","https://app.example/cb"],
		"client_name":"My Client","token_endpoint_auth_method":"client_secret_basic","grant_types":["authorization_code","refresh_token"],"scope":"read:tools","logo_uri":"https://x/logo.png"}`)
	if res.status != http.StatusCreated || res.header.Get("Access-Control-Allow-Origin") != "*" || res.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("register: %d %v\n%s", res.status, res.header, res.body)
	}
	m := res.json(t)
	id, _ := m["client_id"].(string)
	if !strings.HasPrefix(id, "dev-") || len(id) < 20 {
		t.Fatalf("client_id %q", id)
	}
	if m["token_endpoint_auth_method"] != "none" || m["client_secret"] != nil || fmt.Sprint(m["grant_types"]) != "[authorization_code]" ||
		fmt.Sprint(m["redirect_uris"]) != "[http://127.0.0.1:5173/cb http://localhost/cb http://[::1]:80/x?a=b https://app.example/cb]" ||
		m["client_name"] != "My Client" || m["client_id_issued_at"] == nil {
		t.Fatalf("registration response %v", m)
	}
	if res := postJSON(t, u, `{"redirect_uris":["http://127.0.0.1:5173/cb"]}`); res.json(t)["client_id"] == id {
		t.Fatal("two registrations got the same client_id")
	}

	for _, tc := range []struct{ name, body, code, want string }{
		{"no redirect_uris", `{"client_name":"x"}`, "invalid_redirect_uri", "redirect_uris is required"},
		{"empty redirect_uris", `{"redirect_uris":[]}`, "invalid_redirect_uri", "redirect_uris is required"},
		{"http on a public host", `{"redirect_uris":["http://app.example/cb"]}`, "invalid_redirect_uri", "only for loopback"},
		{"http on a host named like loopback", `{"redirect_uris":["http://127.0.0.1.evil.example/cb"]}`, "invalid_redirect_uri", "only for loopback"},
		{"localhost subdomain", `{"redirect_uris":["http://localhost.evil.example/cb"]}`, "invalid_redirect_uri", "only for loopback"},
		{"fragment", `{"redirect_uris":["https://app.example/cb#frag"]}`, "invalid_redirect_uri", "fragment"},
		{"empty fragment", `{"redirect_uris":["https://app.example/cb#"]}`, "invalid_redirect_uri", "fragment"},
		{"user info", `{"redirect_uris":["https://evil@app.example/cb"]}`, "invalid_redirect_uri", "user name"},
		{"custom scheme", `{"redirect_uris":["myapp://cb"]}`, "invalid_redirect_uri", "scheme"},
		{"javascript", `{"redirect_uris":["javascript://alert(1)"]}`, "invalid_redirect_uri", "scheme"},
		{"relative", `{"redirect_uris":["/cb"]}`, "invalid_redirect_uri", "absolute"},
		{"one bad among good", `{"redirect_uris":["https://ok.example/cb","http://evil.example/cb"]}`, "invalid_redirect_uri", "evil.example"},
		{"too many", `{"redirect_uris":[` + strings.TrimSuffix(strings.Repeat(`"https://a.example/cb",`, 11), ",") + `]}`, "invalid_redirect_uri", "at most 10"},
		{"not JSON", `redirect_uris=x`, "invalid_client_metadata", "not a JSON"},
		{"wrong types", `{"redirect_uris":"https://a.example/cb"}`, "invalid_client_metadata", "not a JSON"},
		{"implicit grant only", `{"redirect_uris":["https://a.example/cb"],"grant_types":["implicit"]}`, "invalid_client_metadata", "authorization_code"},
		{"token response type", `{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}`, "invalid_client_metadata", `"code"`},
		{"control characters in the name", `{"redirect_uris":["https://a.example/cb"],"client_name":"a\u0007b"}`, "invalid_client_metadata", "client_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := postJSON(t, u, tc.body)
			oauthErr(t, res, http.StatusBadRequest, tc.code)
			if d := res.json(t)["error_description"].(string); !strings.Contains(d, tc.want) {
				t.Fatalf("error_description %q lacks %q", d, tc.want)
			}
		})
	}
	t.Run("not JSON content type", func(t *testing.T) {
		oauthErr(t, postForm(t, nil, u, url.Values{"redirect_uris": {"https://a.example/cb"}}), http.StatusBadRequest, "invalid_client_metadata")
	})
	t.Run("GET", func(t *testing.T) {
		oauthErr(t, get(t, nil, u), http.StatusMethodNotAllowed, "invalid_request")
	})
	t.Run("preflight", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, u, nil)
		res := do(t, nil, req)
		if res.status != http.StatusNoContent || !strings.Contains(res.header.Get("Access-Control-Allow-Headers"), "Content-Type") {
			t.Fatalf("preflight: %d %v", res.status, res.header)
		}
	})
}

// TestRegistrationsBounded: beyond MaxClients the oldest registration is
// forgotten (its client is refused as unknown and registers again); the
// console's client is never forgotten.
func TestRegistrationsBounded(t *testing.T) {
	b := setup(t, &devauth.Options{Scopes: defaultScopes, MaxClients: 2})
	first := b.newFlow(t, callback)
	second, third := b.newFlow(t, callback), b.newFlow(t, callback)
	refusedOnPage(t, get(t, first.browser, first.authorizeURL()), http.StatusBadRequest, "not registered")
	second.open(t)
	third.open(t)
	oauthErr(t, first.redeem(t, "whatever"), http.StatusBadRequest, "invalid_client")
	console := &flow{b: b, browser: browser(t), clientID: devauth.ConsoleClientID, redirectURI: b.srv.URL + "/console/callback", state: "s", extra: url.Values{}}
	console.verifier, console.challenge = pkce("console")
	console.open(t)
}

func TestFlow(t *testing.T) {
	b := setup(t, nil)
	f := b.newFlow(t, callback)
	page := f.open(t)
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options"} {
		if page.header.Get(h) == "" {
			t.Errorf("sign-in page lacks %s", h)
		}
	}
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "form-action 'self' http://127.0.0.1:9999") {
		t.Errorf("CSP %q", csp)
	}
	for _, want := range []string{`<html lang="en">`, `<label for="account-0">Acme Corporation`, `<label for="account-1">Globex Inc.`,
		`<label for="account-admin">Administrator`, `<label for="user">User</label>`, `<legend>Sign in as</legend>`, "Test Client", "http://127.0.0.1:9999", b.resource} {
		if !strings.Contains(f.pageBody, want) {
			t.Errorf("sign-in page lacks %q", want)
		}
	}
	if strings.Contains(f.pageBody, "<script") {
		t.Error("sign-in page has a script")
	}
	id, m := f.token(t, f.code(t, "tenant:globex", "bob@globex.example"))
	if id.TenantID != "globex" || id.TenantName != "Globex Inc." || id.UserID != "bob@globex.example" || !slices.Equal(id.Scopes, defaultScopes) {
		t.Fatalf("token identity %+v", id)
	}
	if m["expires_in"] != float64(3600) || m["scope"] != "read:tools execute:tools" || m["id_token"] != nil {
		t.Fatalf("token response %v", m)
	}
	if time.Until(id.ExpiresAt) > time.Hour+time.Minute {
		t.Fatalf("token lives until %s", id.ExpiresAt)
	}

	t.Run("default user", func(t *testing.T) {
		f := b.newFlow(t, callback)
		if id, _ := f.token(t, f.code(t, "tenant:acme", "")); id.UserID != "user@acme" || id.TenantID != "acme" {
			t.Fatalf("identity %+v", id)
		}
	})
	t.Run("scopes asked for", func(t *testing.T) {
		f := b.newFlow(t, callback)
		f.extra.Set("scope", "read:tools "+adminScope+" unknown:scope")
		if id, m := f.token(t, f.code(t, "tenant:acme", "")); !slices.Equal(id.Scopes, []string{"read:tools"}) || m["scope"] != "read:tools" {
			t.Fatalf("a tenant user asking for read:tools and the admin scope got %v", id.Scopes)
		}
	})
	t.Run("admin", func(t *testing.T) {
		f := b.newFlow(t, callback)
		f.extra.Set("scope", "read:tools")
		id, _ := f.token(t, f.code(t, "admin", "ops@example.com"))
		if id.TenantID != "" || id.UserID != "ops@example.com" || !slices.Equal(id.Scopes, []string{adminScope}) {
			t.Fatalf("admin identity %+v", id)
		}
		f = b.newFlow(t, callback)
		if id, _ := f.token(t, f.code(t, "admin", "")); id.UserID != "admin" {
			t.Fatalf("admin default user %q", id.UserID)
		}
	})
	t.Run("openid", func(t *testing.T) {
		f := b.newFlow(t, callback)
		f.extra.Set("scope", "openid read:tools")
		f.extra.Set("nonce", "n-0S6_WzA2Mj")
		_, m := f.token(t, f.code(t, "tenant:acme", "alice"))
		idTok, _ := m["id_token"].(string)
		parts := strings.Split(idTok, ".")
		if len(parts) != 3 {
			t.Fatalf("no ID token: %v", m)
		}
		raw, _ := base64Decode(parts[1])
		var claims map[string]any
		if err := json.Unmarshal(raw, &claims); err != nil {
			t.Fatal(err)
		}
		if claims["aud"] != f.clientID || claims["nonce"] != "n-0S6_WzA2Mj" || claims["sub"] != "alice" || claims["iss"] != b.iss.Issuer() || claims["org_id"] != "acme" {
			t.Fatalf("ID token claims %v", claims)
		}
		// An ID token is not an access token for the MCP server.
		if _, err := b.verifier.Verify(t.Context(), idTok); err == nil {
			t.Fatal("the ID token verifies as an access token")
		}
	})
	t.Run("redirect URI with a query", func(t *testing.T) {
		f := b.newFlow(t, "http://localhost:9999/cb?client=1")
		code := f.code(t, "tenant:acme", "")
		f.token(t, code)
	})
	t.Run("cancel", func(t *testing.T) {
		f := b.newFlow(t, callback)
		f.open(t)
		res := postForm(t, f.browser, b.srv.URL+"/dev/authorize", url.Values{"request": {f.pageRequest}, "account": {"tenant:acme"}, "action": {"deny"}})
		if q := redirected(t, res, callback); q.Get("error") != "access_denied" || q.Get("state") != f.state || q.Get("code") != "" {
			t.Fatalf("cancel redirects with %v", q)
		}
	})
}

// TestAuthorizeRefusedOnPage: until the client and its redirect URI are
// verified, nothing is redirected (no open redirect).
func TestAuthorizeRefusedOnPage(t *testing.T) {
	b := setup(t, nil)
	f := b.newFlow(t, callback)
	for _, tc := range []struct {
		name string
		set  map[string][]string
		want string
	}{
		{"no client_id", map[string][]string{"client_id": nil}, "no client_id"},
		{"unknown client_id", map[string][]string{"client_id": {"dev-unknown"}, "redirect_uri": {"https://evil.example/steal"}}, "not registered"},
		{"no redirect_uri", map[string][]string{"redirect_uri": nil}, "no redirect_uri"},
		{"unregistered redirect_uri", map[string][]string{"redirect_uri": {"https://evil.example/steal"}}, "not one of the redirect URIs"},
		{"another port", map[string][]string{"redirect_uri": {"http://127.0.0.1:9998/callback"}}, "not one of the redirect URIs"},
		{"a longer path", map[string][]string{"redirect_uri": {callback + "/x"}}, "not one of the redirect URIs"},
		{"an added query", map[string][]string{"redirect_uri": {callback + "?next=https://evil.example"}}, "not one of the redirect URIs"},
		{"a trailing slash", map[string][]string{"redirect_uri": {callback + "/"}}, "not one of the redirect URIs"},
		{"two redirect_uris", map[string][]string{"redirect_uri": {callback, "https://evil.example/steal"}}, "more than once"},
		{"two client_ids", map[string][]string{"client_id": {f.clientID, "dev-other"}}, "more than once"},
		{"another client's redirect_uri", map[string][]string{"client_id": {devauth.ConsoleClientID}}, "not one of the redirect URIs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse(f.authorizeURL())
			q := u.Query()
			for k, v := range tc.set {
				q[k] = v
			}
			// Even with every other parameter wrong, it is the page.
			q.Set("response_type", "token")
			u.RawQuery = q.Encode()
			res := get(t, f.browser, u.String())
			refusedOnPage(t, res, http.StatusBadRequest, tc.want)
			if strings.Contains(res.body, "evil.example") {
				t.Fatal("the refusal page shows the attacker's URL")
			}
		})
	}
	t.Run("PUT", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, f.authorizeURL(), nil)
		refusedOnPage(t, do(t, nil, req), http.StatusMethodNotAllowed, "GET")
	})
	t.Run("no CORS", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, f.authorizeURL(), nil)
		req.Header.Set("Origin", "http://localhost:6274")
		if res := do(t, nil, req); res.header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatal("the authorization endpoint answers other origins")
		}
	})
}

// TestAuthorizeErrorsRedirect: once the redirect URI is verified, request
// errors go back to the client with its state.
func TestAuthorizeErrorsRedirect(t *testing.T) {
	b := setup(t, nil)
	f := b.newFlow(t, callback)
	for _, tc := range []struct {
		name  string
		set   map[string][]string
		error string
	}{
		{"no response_type", map[string][]string{"response_type": nil}, "invalid_request"},
		{"implicit", map[string][]string{"response_type": {"token"}}, "unsupported_response_type"},
		{"no state", map[string][]string{"state": nil}, "invalid_request"},
		{"no code_challenge", map[string][]string{"code_challenge": nil}, "invalid_request"},
		{"plain", map[string][]string{"code_challenge_method": {"plain"}}, "invalid_request"},
		{"no code_challenge_method", map[string][]string{"code_challenge_method": nil}, "invalid_request"},
		{"challenge too short", map[string][]string{"code_challenge": {"abc"}}, "invalid_request"},
		{"another resource", map[string][]string{"resource": {"http://127.0.0.1:1/mcp"}}, "invalid_target"},
		{"two resources", map[string][]string{"resource": {b.resource, "https://other.example/mcp"}}, "invalid_target"},
		{"two scopes", map[string][]string{"scope": {"read:tools", "execute:tools"}}, "invalid_request"},
		{"two states", map[string][]string{"state": {"a", "b"}}, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse(f.authorizeURL())
			q := u.Query()
			for k, v := range tc.set {
				q[k] = v
			}
			u.RawQuery = q.Encode()
			res := get(t, f.browser, u.String())
			got := redirected(t, res, callback)
			wantState := f.state
			if v, ok := tc.set["state"]; ok {
				wantState = ""
				if len(v) > 0 {
					wantState = v[0]
				}
			}
			if got.Get("error") != tc.error || got.Get("error_description") == "" || got.Get("state") != wantState || got.Get("code") != "" || got.Get("iss") != b.iss.Issuer() {
				t.Fatalf("redirect query %v, want error %s and state %q", got, tc.error, wantState)
			}
		})
	}
	t.Run("no resource is fine", func(t *testing.T) {
		f := b.newFlow(t, callback)
		f.extra["resource"] = nil
		if id, _ := f.token(t, f.code(t, "tenant:acme", "")); id.TenantID != "acme" {
			t.Fatalf("identity %+v", id)
		}
	})
}

// TestSignInForm: the form's one-time token, bound to the authorization
// request and the browser, is its CSRF proof.
func TestSignInForm(t *testing.T) {
	b := setup(t, nil)
	post := func(c *http.Client, form url.Values, header ...string) *response {
		return postForm(t, c, b.srv.URL+"/dev/authorize", form, header...)
	}
	allow := func(request string) url.Values {
		return url.Values{"request": {request}, "account": {"tenant:acme"}, "action": {"allow"}}
	}
	t.Run("no token", func(t *testing.T) {
		f := b.newFlow(t, callback)
		f.open(t)
		refusedOnPage(t, post(f.browser, url.Values{"account": {"tenant:acme"}, "action": {"allow"}}), http.StatusBadRequest, "lacks its one-time request token")
	})
	t.Run("wrong token", func(t *testing.T) {
		f := b.newFlow(t, callback)
		f.open(t)
		refusedOnPage(t, post(f.browser, allow(f.pageRequest[:len(f.pageRequest)-1]+"x")), http.StatusBadRequest, "expired or was already used")
		// and the right one still works
		if q := redirected(t, f.submit(t, "tenant:acme", ""), callback); q.Get("code") == "" {
			t.Fatal(q)
		}
	})
	t.Run("used twice", func(t *testing.T) {
		f := b.newFlow(t, callback)
		f.code(t, "tenant:acme", "")
		refusedOnPage(t, f.submit(t, "tenant:acme", ""), http.StatusBadRequest, "expired or was already used")
	})
	t.Run("another browser", func(t *testing.T) {
		f := b.newFlow(t, callback)
		f.open(t)
		refusedOnPage(t, post(browser(t), allow(f.pageRequest)), http.StatusForbidden, "not opened in this browser")
	})
	t.Run("cross-site post", func(t *testing.T) {
		f := b.newFlow(t, callback)
		f.open(t)
		refusedOnPage(t, post(f.browser, allow(f.pageRequest), "Origin", "https://evil.example"), http.StatusForbidden, "another site")
	})
	t.Run("expired", func(t *testing.T) {
		f := b.newFlow(t, callback)
		f.open(t)
		b.clock.advance(devauth.DefaultRequestTTL)
		refusedOnPage(t, f.submit(t, "tenant:acme", ""), http.StatusBadRequest, "expired")
	})
	t.Run("unknown tenant", func(t *testing.T) {
		f := b.newFlow(t, callback)
		f.open(t)
		res := f.submit(t, "tenant:initech", "")
		if res.status != http.StatusBadRequest || !strings.Contains(res.body, "not offered here") || res.header.Get("Location") != "" {
			t.Fatalf("unknown tenant: %d\n%s", res.status, res.body)
		}
		// The form is shown again with a new token; the old one is spent.
		m := requestRE.FindStringSubmatch(res.body)
		if m == nil || m[1] == f.pageRequest {
			t.Fatalf("the form is not shown again with a new token:\n%s", res.body)
		}
		refusedOnPage(t, f.submit(t, "tenant:acme", ""), http.StatusBadRequest, "already used")
		f.pageRequest = m[1]
		if q := redirected(t, f.submit(t, "tenant:acme", ""), callback); q.Get("code") == "" {
			t.Fatal(q)
		}
	})
	t.Run("no account", func(t *testing.T) {
		f := b.newFlow(t, callback)
		f.open(t)
		if res := f.submit(t, "", ""); res.status != http.StatusBadRequest || !strings.Contains(res.body, "Choose whom") {
			t.Fatalf("%d %s", res.status, res.body)
		}
	})
	t.Run("user with spaces", func(t *testing.T) {
		f := b.newFlow(t, callback)
		f.open(t)
		if res := f.submit(t, "tenant:acme", "a b"); res.status != http.StatusBadRequest || !strings.Contains(res.body, "without spaces") {
			t.Fatalf("%d %s", res.status, res.body)
		}
	})
	t.Run("tenants read at each request", func(t *testing.T) {
		f := b.newFlow(t, callback)
		f.open(t)
		if strings.Contains(f.pageBody, "Initech") {
			t.Fatal("initech offered before it exists")
		}
		b.setTenants(devauth.Tenant{ExternalID: "acme", Name: "Acme Corporation"}, devauth.Tenant{ExternalID: "initech", Name: "Initech"})
		defer b.setTenants(devauth.Tenant{ExternalID: "acme", Name: "Acme Corporation"}, devauth.Tenant{ExternalID: "globex", Name: "Globex Inc."})
		// globex, offered when the page was shown, is gone when it is posted
		if res := f.submit(t, "tenant:globex", ""); res.status != http.StatusBadRequest || !strings.Contains(res.body, "not offered") {
			t.Fatalf("a tenant removed meanwhile: %d\n%s", res.status, res.body)
		}
		f = b.newFlow(t, callback)
		f.open(t)
		if !strings.Contains(f.pageBody, "Initech") || strings.Contains(f.pageBody, "Globex") {
			t.Fatalf("page does not follow the tenant list:\n%s", f.pageBody)
		}
		if id, _ := f.token(t, f.code(t, "tenant:initech", "")); id.TenantID != "initech" {
			t.Fatal(id)
		}
	})
	t.Run("no tenants", func(t *testing.T) {
		b := setup(t, &devauth.Options{Scopes: defaultScopes})
		b.setTenants()
		f := b.newFlow(t, callback)
		f.open(t)
		if !strings.Contains(f.pageBody, "No tenant is registered") || strings.Contains(f.pageBody, `value="allow"`) {
			t.Fatalf("empty page:\n%s", f.pageBody)
		}
	})
	t.Run("tenant list fails", func(t *testing.T) {
		b := setup(t, nil)
		f := b.newFlow(t, callback)
		b.mu.Lock()
		b.failing = errListing
		b.mu.Unlock()
		res := get(t, f.browser, f.authorizeURL())
		refusedOnPage(t, res, http.StatusInternalServerError, "could not be read")
		if strings.Contains(res.body, errListing.Error()) {
			t.Fatal("the page shows the internal error")
		}
	})
	t.Run("admin not offered", func(t *testing.T) {
		b := setup(t, &devauth.Options{Scopes: defaultScopes})
		f := b.newFlow(t, callback)
		f.open(t)
		if strings.Contains(f.pageBody, "Administrator") {
			t.Fatal("administrator offered without AdminScope")
		}
		if res := f.submit(t, "admin", ""); res.status != http.StatusBadRequest || res.header.Get("Location") != "" {
			t.Fatalf("admin sign-in without AdminScope: %d %s", res.status, res.header.Get("Location"))
		}
	})
	t.Run("bounded", func(t *testing.T) {
		b := setup(t, &devauth.Options{Scopes: defaultScopes, MaxPending: 1})
		f := b.newFlow(t, callback)
		f.open(t)
		refusedOnPage(t, get(t, f.browser, f.authorizeURL()), http.StatusServiceUnavailable, "Too many sign-ins")
		b.clock.advance(devauth.DefaultRequestTTL)
		f.open(t) // the expired one made room
	})
}

func TestToken(t *testing.T) {
	b := setup(t, nil)
	tokenURL := b.srv.URL + "/dev/token"
	t.Run("wrong verifier", func(t *testing.T) {
		f := b.newFlow(t, callback)
		code := f.code(t, "tenant:acme", "")
		other, _ := pkce("another verifier")
		oauthErr(t, f.redeem(t, code, "code_verifier", other), http.StatusBadRequest, "invalid_grant")
		oauthErr(t, f.redeem(t, code), http.StatusBadRequest, "invalid_grant") // spent
	})
	t.Run("replayed", func(t *testing.T) {
		f := b.newFlow(t, callback)
		code := f.code(t, "tenant:acme", "")
		f.token(t, code)
		oauthErr(t, f.redeem(t, code), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("expired", func(t *testing.T) {
		f := b.newFlow(t, callback)
		code := f.code(t, "tenant:acme", "")
		b.clock.advance(devauth.DefaultCodeTTL)
		oauthErr(t, f.redeem(t, code), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("just in time", func(t *testing.T) {
		f := b.newFlow(t, callback)
		code := f.code(t, "tenant:acme", "")
		b.clock.advance(devauth.DefaultCodeTTL - time.Second)
		f.token(t, code)
	})
	t.Run("wrong redirect_uri", func(t *testing.T) {
		f := b.newFlow(t, callback)
		code := f.code(t, "tenant:acme", "")
		oauthErr(t, f.redeem(t, code, "redirect_uri", "http://127.0.0.1:9999/other"), http.StatusBadRequest, "invalid_grant")
		oauthErr(t, f.redeem(t, code), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("unknown code", func(t *testing.T) {
		f := b.newFlow(t, callback)
		oauthErr(t, f.redeem(t, "made-up"), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("unknown client", func(t *testing.T) {
		f := b.newFlow(t, callback)
		code := f.code(t, "tenant:acme", "")
		oauthErr(t, f.redeem(t, code, "client_id", "dev-unknown"), http.StatusBadRequest, "invalid_client")
		f.token(t, code) // an unknown client does not spend the code
	})
	t.Run("client secret", func(t *testing.T) {
		f := b.newFlow(t, callback)
		oauthErr(t, f.redeem(t, "c", "client_secret", "s3cret"), http.StatusBadRequest, "invalid_client")
		req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(url.Values{"grant_type": {"authorization_code"}, "code": {"c"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(f.clientID, "s3cret")
		res := do(t, nil, req)
		oauthErr(t, res, http.StatusUnauthorized, "invalid_client")
		if res.header.Get("WWW-Authenticate") == "" {
			t.Fatal("401 without WWW-Authenticate")
		}
	})
	t.Run("basic without secret", func(t *testing.T) {
		f := b.newFlow(t, callback)
		code := f.code(t, "tenant:acme", "")
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}, "code_verifier": {f.verifier}}
		req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(f.clientID, "")
		if res := do(t, nil, req); res.status != http.StatusOK {
			t.Fatalf("%d %s", res.status, res.body)
		}
	})
	for _, tc := range []struct {
		name     string
		override []string
		status   int
		code     string
	}{
		{"no grant_type", []string{"grant_type", ""}, 400, "invalid_request"},
		{"refresh_token grant", []string{"grant_type", "refresh_token"}, 400, "unsupported_grant_type"},
		{"client_credentials grant", []string{"grant_type", "client_credentials"}, 400, "unsupported_grant_type"},
		{"no client_id", []string{"client_id", ""}, 400, "invalid_client"},
		{"no code", []string{"code", ""}, 400, "invalid_request"},
		{"no redirect_uri", []string{"redirect_uri", ""}, 400, "invalid_request"},
		{"no code_verifier", []string{"code_verifier", ""}, 400, "invalid_request"},
		{"short code_verifier", []string{"code_verifier", "abc"}, 400, "invalid_request"},
		{"another resource", []string{"resource", "http://127.0.0.1:1/mcp"}, 400, "invalid_target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := b.newFlow(t, callback)
			code := f.code(t, "tenant:acme", "")
			oauthErr(t, f.redeem(t, code, tc.override...), tc.status, tc.code)
		})
	}
	t.Run("duplicate parameter", func(t *testing.T) {
		f := b.newFlow(t, callback)
		code := f.code(t, "tenant:acme", "")
		body := url.Values{"grant_type": {"authorization_code"}, "code": {code, "other"}, "client_id": {f.clientID}, "redirect_uri": {callback}, "code_verifier": {f.verifier}}
		oauthErr(t, postForm(t, nil, tokenURL, body), http.StatusBadRequest, "invalid_request")
	})
	t.Run("JSON body", func(t *testing.T) {
		oauthErr(t, postJSON(t, tokenURL, `{"grant_type":"authorization_code"}`), http.StatusBadRequest, "invalid_request")
	})
	t.Run("GET", func(t *testing.T) {
		oauthErr(t, get(t, nil, tokenURL), http.StatusMethodNotAllowed, "invalid_request")
	})
	t.Run("CORS", func(t *testing.T) {
		f := b.newFlow(t, callback)
		if res := f.redeem(t, "x"); res.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatal("token errors lack CORS")
		}
		req, _ := http.NewRequest(http.MethodOptions, tokenURL, nil)
		req.Header.Set("Access-Control-Request-Method", "POST")
		if res := do(t, nil, req); res.status != http.StatusNoContent || res.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("preflight %d %v", res.status, res.header)
		}
	})
}

// TestCrossTenant: a code yields a token for the tenant chosen on its
// sign-in page and nothing else, and only to the client it was issued to.
func TestCrossTenant(t *testing.T) {
	b := setup(t, nil)
	a, g := b.newFlow(t, callback), b.newFlow(t, "http://localhost:7777/cb")
	acmeCode, globexCode := a.code(t, "tenant:acme", "alice"), g.code(t, "tenant:globex", "bob")

	// Client g presents a's code (with a's verifier and redirect URI, as a
	// thief would): refused, and the code is void for a too.
	oauthErr(t, g.redeem(t, acmeCode, "redirect_uri", callback, "code_verifier", a.verifier), http.StatusBadRequest, "invalid_grant")
	oauthErr(t, a.redeem(t, acmeCode), http.StatusBadRequest, "invalid_grant")

	// Parameters naming another tenant are ignored: the code decides.
	id, _ := g.token(t, globexCode)
	if id.TenantID != "globex" || id.UserID != "bob" {
		t.Fatalf("globex's code gave %+v", id)
	}
	a = b.newFlow(t, callback)
	a.extra.Set("org_id", "globex")
	a.extra.Set("tenant", "globex")
	a.open(t)
	res := postForm(t, a.browser, b.srv.URL+"/dev/authorize", url.Values{"request": {a.pageRequest}, "account": {"tenant:acme"},
		"action": {"allow"}, "org_id": {"globex"}, "client_id": {g.clientID}, "redirect_uri": {"http://localhost:7777/cb"}}, "Origin", b.srv.URL)
	q := redirected(t, res, callback) // the request decides where the code goes, not the form
	res = a.redeem(t, q.Get("code"), "org_id", "globex", "tenant", "globex")
	if res.status != http.StatusOK {
		t.Fatal(res.body)
	}
	tok, err := b.verifier.Verify(t.Context(), res.json(t)["access_token"].(string))
	if err != nil || tok.TenantID != "acme" {
		t.Fatalf("acme's code gave %+v, %v", tok, err)
	}
	// A form token of one client's request cannot be used for another's.
	g = b.newFlow(t, "http://localhost:7777/cb")
	g.open(t)
	res = postForm(t, a.browser, b.srv.URL+"/dev/authorize", url.Values{"request": {g.pageRequest}, "account": {"tenant:globex"}, "action": {"allow"}}, "Origin", b.srv.URL)
	refusedOnPage(t, res, http.StatusForbidden, "not opened in this browser")
}

func base64Decode(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}
