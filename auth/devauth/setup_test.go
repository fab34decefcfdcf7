package devauth_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/auth/devauth"
)

// bundle is a dev authorization server on an httptest server.
type bundle struct {
	srv      *httptest.Server
	das      *devauth.Server
	iss      *auth.DevIssuer
	verifier *auth.Verifier
	resource string
	clock    *clock

	mu      sync.Mutex
	tenants []devauth.Tenant
	failing error // Tenants fails with it when set
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const adminScope = "tenantmcp:admin"

var defaultScopes = []string{"read:tools", "execute:tools"}

// setup starts a server offering acme and globex; opts (may be nil) are
// completed with the defaults of these tests.
func setup(t *testing.T, opts *devauth.Options) *bundle {
	t.Helper()
	b := &bundle{clock: &clock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)},
		tenants: []devauth.Tenant{{ExternalID: "acme", Name: "Acme Corporation"}, {ExternalID: "globex", Name: "Globex Inc."}}}
	mux := http.NewServeMux()
	b.srv = httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	key, err := auth.GenerateDevKey()
	if err != nil {
		t.Fatal(err)
	}
	if b.iss, err = auth.NewDevIssuer(b.srv.URL+"/dev", key); err != nil {
		t.Fatal(err)
	}
	b.resource = b.srv.URL + "/mcp"
	o := devauth.Options{Scopes: defaultScopes, AdminScope: adminScope}
	if opts != nil {
		o = *opts
	}
	o.Now = b.clock.Now
	b.das, err = devauth.New(b.iss, b.resource, b.listTenants, &o)
	if err != nil {
		t.Fatal(err)
	}
	for pattern, h := range b.das.Routes() {
		mux.Handle(pattern, h)
	}
	b.verifier, err = auth.NewVerifier(context.Background(), &auth.Options{Issuer: b.iss.Issuer(), Audience: b.resource,
		JWKS: b.iss.JWKS(), Claims: auth.DevClaimMap(), TenantOptional: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.verifier.Close)
	return b
}

func (b *bundle) listTenants(context.Context) ([]devauth.Tenant, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failing != nil {
		return nil, b.failing
	}
	return slices.Clone(b.tenants), nil
}

func (b *bundle) setTenants(ts ...devauth.Tenant) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tenants = ts
}

// browser is an HTTP client with cookies that does not follow redirects.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (r *response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("response %d is not JSON: %v\n%s", r.status, err, r.body)
	}
	return m
}

func do(t *testing.T, c *http.Client, req *http.Request) *response {
	t.Helper()
	if c == nil {
		c = browser(t)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return &response{status: res.StatusCode, header: res.Header, body: string(body)}
}

func get(t *testing.T, c *http.Client, u string) *response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, c, req)
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values, header ...string) *response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, c, req)
}

func postJSON(t *testing.T, u, body string) *response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return do(t, nil, req)
}

// register registers a client with redirectURIs and returns its id.
func (b *bundle) register(t *testing.T, redirectURIs ...string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"redirect_uris": redirectURIs, "client_name": "Test Client", "token_endpoint_auth_method": "none"})
	res := postJSON(t, b.srv.URL+"/dev/register", string(body))
	if res.status != http.StatusCreated {
		t.Fatalf("register: %d %s", res.status, res.body)
	}
	return res.json(t)["client_id"].(string)
}

// pkce returns a verifier and its S256 challenge.
func pkce(seed string) (verifier, challenge string) {
	v := sha256.Sum256([]byte(seed))
	verifier = base64.RawURLEncoding.EncodeToString(v[:])
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// flow is one authorization by one client in one browser.
type flow struct {
	b                      *bundle
	browser                *http.Client
	clientID, redirectURI  string
	verifier, challenge    string
	state                  string
	extra                  url.Values // more authorization request parameters
	pageRequest, pageBody  string     // from the sign-in page
	signInStatus, location string
}

func (b *bundle) newFlow(t *testing.T, redirectURI string) *flow {
	t.Helper()
	v, c := pkce("verifier-" + redirectURI)
	return &flow{b: b, browser: browser(t), clientID: b.register(t, redirectURI), redirectURI: redirectURI,
		verifier: v, challenge: c, state: "state-123", extra: url.Values{}}
}

func (f *flow) authorizeURL() string {
	q := url.Values{"response_type": {"code"}, "client_id": {f.clientID}, "redirect_uri": {f.redirectURI},
		"state": {f.state}, "code_challenge": {f.challenge}, "code_challenge_method": {"S256"}, "resource": {f.b.resource}}
	for k, v := range f.extra {
		q[k] = v
	}
	return f.b.srv.URL + "/dev/authorize?" + q.Encode()
}

var requestRE = regexp.MustCompile(`name="request" value="([^"]+)"`)

// open loads the sign-in page and keeps its form's request token.
func (f *flow) open(t *testing.T) *response {
	t.Helper()
	res := get(t, f.browser, f.authorizeURL())
	if res.status != http.StatusOK {
		t.Fatalf("sign-in page: %d %s %s", res.status, res.header.Get("Location"), res.body)
	}
	m := requestRE.FindStringSubmatch(res.body)
	if m == nil {
		t.Fatalf("sign-in page has no request token:\n%s", res.body)
	}
	f.pageRequest, f.pageBody = m[1], res.body
	return res
}

// submit posts the sign-in form with account (and user, if not "").
func (f *flow) submit(t *testing.T, account, user string) *response {
	t.Helper()
	form := url.Values{"request": {f.pageRequest}, "account": {account}, "action": {"allow"}}
	if user != "" {
		form.Set("user", user)
	}
	return postForm(t, f.browser, f.b.srv.URL+"/dev/authorize", form, "Origin", f.b.srv.URL)
}

// code signs in as account and returns the code the client receives.
func (f *flow) code(t *testing.T, account, user string) string {
	t.Helper()
	f.open(t)
	res := f.submit(t, account, user)
	q := redirected(t, res, f.redirectURI)
	if q.Get("state") != f.state || q.Get("iss") != f.b.iss.Issuer() || q.Get("code") == "" {
		t.Fatalf("redirect %s: want code, state %q and iss %q", res.header.Get("Location"), f.state, f.b.iss.Issuer())
	}
	return q.Get("code")
}

// redeem asks the token endpoint for a token for code.
func (f *flow) redeem(t *testing.T, code string, override ...string) *response {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {f.clientID},
		"redirect_uri": {f.redirectURI}, "code_verifier": {f.verifier}, "resource": {f.b.resource}}
	for i := 0; i+1 < len(override); i += 2 {
		if override[i+1] == "" {
			form.Del(override[i])
		} else {
			form.Set(override[i], override[i+1])
		}
	}
	return postForm(t, nil, f.b.srv.URL+"/dev/token", form)
}

// token redeems code and verifies the access token.
func (f *flow) token(t *testing.T, code string) (*auth.Identity, map[string]any) {
	t.Helper()
	res := f.redeem(t, code)
	if res.status != http.StatusOK {
		t.Fatalf("token: %d %s", res.status, res.body)
	}
	m := res.json(t)
	if m["token_type"] != "Bearer" || res.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token response %v, Cache-Control %q", m, res.header.Get("Cache-Control"))
	}
	id, err := f.b.verifier.Verify(context.Background(), m["access_token"].(string))
	if err != nil {
		t.Fatalf("access token does not verify: %v", err)
	}
	return id, m
}

// redirected checks res redirects to redirectURI and returns its query.
func redirected(t *testing.T, res *response, redirectURI string) url.Values {
	t.Helper()
	loc := res.header.Get("Location")
	if res.status != http.StatusSeeOther || loc == "" {
		t.Fatalf("want a redirect to %s, got %d (Location %q)\n%s", redirectURI, res.status, loc, res.body)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := url.Parse(redirectURI)
	q := u.Query()
	for k, v := range want.Query() { // the redirect URI's own query is kept
		if !slices.Equal(q[k], v) {
			t.Fatalf("redirect to %s lost %s=%v of %s", loc, k, v, redirectURI)
		}
	}
	u.RawQuery, want.RawQuery = "", ""
	if u.String() != want.String() {
		t.Fatalf("redirect to %s, want %s", loc, redirectURI)
	}
	return q
}

// oauthErr checks res is an RFC 6749 JSON error with code and status.
func oauthErr(t *testing.T, res *response, status int, code string) {
	t.Helper()
	if res.status != status || res.header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(res.header.Get("Content-Type"), "application/json") {
		t.Fatalf("want %d %s (no-store, JSON), got %d %v\n%s", status, code, res.status, res.header, res.body)
	}
	m := res.json(t)
	if m["error"] != code || m["error_description"] == "" {
		t.Fatalf("want error %q with a description, got %v", code, m)
	}
}

// refusedOnPage checks res is an HTML refusal page with status, not a redirect.
func refusedOnPage(t *testing.T, res *response, status int, want string) {
	t.Helper()
	if res.status != status || res.header.Get("Location") != "" || !strings.HasPrefix(res.header.Get("Content-Type"), "text/html") {
		t.Fatalf("want a %d page, got %d Location %q\n%s", status, res.status, res.header.Get("Location"), res.body)
	}
	if !strings.Contains(res.body, "Sign-in refused") || !strings.Contains(res.body, want) {
		t.Fatalf("refusal page lacks %q:\n%s", want, res.body)
	}
}

var errListing = errors.New("registry unreachable")
