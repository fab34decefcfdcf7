package console_test

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/console"
	"github.com/tenantmcp/tenantmcp/examples/documents"
	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenanttest"
)

const (
	clientID   = "console-test"
	adminScope = server.DefaultAdminScope
)

// fakeIdP is an OpenID provider for the console's sign-in: discovery,
// an authorization endpoint that signs in whoever the test says, and a
// token endpoint that checks the PKCE verifier.
type fakeIdP struct {
	ts       *httptest.Server
	iss      *auth.DevIssuer
	redirect string // the console's callback
	oidc     bool   // serve openid-configuration (else only RFC 8414)
	audience string // the access tokens' aud; "" = the resource asked for

	mu         sync.Mutex
	user       string
	scopes     []string
	authorizes []url.Values
	tokenReqs  []url.Values
	codes      map[string]url.Values // code → its authorize request
}

func newFakeIdP(t *testing.T, oidc bool) *fakeIdP {
	t.Helper()
	p := &fakeIdP{oidc: oidc, codes: map[string]url.Values{}, user: "alice", scopes: []string{adminScope}}
	mux := http.NewServeMux()
	p.ts = httptest.NewServer(mux)
	t.Cleanup(p.ts.Close)
	key, err := auth.GenerateDevKey()
	if err != nil {
		t.Fatal(err)
	}
	if p.iss, err = auth.NewDevIssuer(p.ts.URL, key); err != nil {
		t.Fatal(err)
	}
	meta := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"authorization_endpoint":%q,"token_endpoint":%q,"code_challenge_methods_supported":["S256"],"scopes_supported":["openid",%q]}`,
			p.ts.URL, p.ts.URL+"/authorize", p.ts.URL+"/token", adminScope)
	}
	if oidc {
		mux.HandleFunc("GET /.well-known/openid-configuration", meta)
	}
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", meta)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	return p
}

// signInAs sets who the next sign-in is.
func (p *fakeIdP) signInAs(user string, scopes ...string) {
	p.mu.Lock()
	p.user, p.scopes = user, scopes
	p.mu.Unlock()
}

func (p *fakeIdP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.authorizes = append(p.authorizes, q)
	if q.Get("client_id") != clientID || q.Get("redirect_uri") != p.redirect || q.Get("response_type") != "code" ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	code := fmt.Sprintf("code-%d", len(p.authorizes))
	q.Set("user", p.user)
	q.Set("granted", strings.Join(p.scopes, " "))
	p.codes[code] = q
	http.Redirect(w, r, p.redirect+"?code="+code+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
}

func (p *fakeIdP) token(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	f := r.PostForm
	p.mu.Lock()
	p.tokenReqs = append(p.tokenReqs, f)
	a := p.codes[f.Get("code")]
	delete(p.codes, f.Get("code"))
	p.mu.Unlock()
	bad := func(msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"invalid_grant","error_description":%q}`, msg)
	}
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	switch {
	case a == nil:
		bad("unknown code")
		return
	case f.Get("grant_type") != "authorization_code" || f.Get("client_id") != clientID || f.Get("redirect_uri") != p.redirect:
		bad("wrong client or redirect")
		return
	case base64.RawURLEncoding.EncodeToString(sum[:]) != a.Get("code_challenge"):
		bad("PKCE verifier does not match")
		return
	}
	p.mu.Lock()
	aud := cmp.Or(p.audience, f.Get("resource"))
	p.mu.Unlock()
	var scopes []string
	if g := a.Get("granted"); g != "" {
		scopes = strings.Fields(g)
	}
	at, err := p.iss.Mint(auth.TokenRequest{Audience: aud, UserID: a.Get("user"), Scopes: scopes})
	if err != nil {
		bad(err.Error())
		return
	}
	var idt string
	if p.oidc {
		idt, _ = p.iss.Mint(auth.TokenRequest{Audience: clientID, UserID: a.Get("user"), Extra: map[string]any{"nonce": a.Get("nonce")}})
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600,"id_token":%q}`, at, idt)
}

// clock is the console's clock, moved by tests.
type clock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.d)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.d += d
	c.mu.Unlock()
}

type fixture struct {
	h      *tenanttest.Harness
	base   string
	idp    *fakeIdP
	reg    *registry.Registry
	events *audit.MemoryStore
	w      *audit.Writer
	clock  *clock
	client *http.Client // for requests without a browser
}

type setupOptions struct {
	rfc8414Only bool // the identity provider has no openid-configuration
	data        bool // the data pages' sources too (withData, activity_test.go)
}

var auditKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

// setup starts a server with two tenants, admins signing in at a fake
// identity provider of their own, and the console mounted.
func setup(t *testing.T, so setupOptions) *fixture {
	t.Helper()
	f := &fixture{idp: newFakeIdP(t, !so.rfc8414Only), events: audit.NewMemoryStore(), clock: &clock{},
		client: &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}}
	t.Cleanup(f.client.CloseIdleConnections)
	idpClient := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	t.Cleanup(idpClient.CloseIdleConnections)
	w, err := audit.NewWriter(f.events, auditKey, &audit.WriterOptions{FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f.w = w
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	var toolNames []string
	for _, tool := range documents.Tools() {
		toolNames = append(toolNames, tool.Name)
	}
	f.h = tenanttest.New(t, 2, &tenanttest.Options{
		Tools: documents.Tools(),
		Server: func(o *server.Options) {
			f.reg = o.Registry.(*registry.Registry)
			f.base = strings.TrimSuffix(o.ResourceURL, "/mcp")
			f.idp.redirect = f.base + "/console/callback"
			if m, ok := o.Limiter.(*ratelimit.Memory); ok {
				t.Cleanup(func() { m.Close() })
			}
			svc, err := admin.NewService(admin.Options{
				Registry:    f.reg,
				Store:       admin.NewMemoryStore(),
				Audit:       w,
				Lifecycle:   f.lifecycle(t, o.Stores),
				Issuer:      o.Metadata.AuthorizationServers[0],
				AdminScopes: []string{adminScope},
				Tools:       toolNames,
			})
			if err != nil {
				t.Fatal(err)
			}
			v, err := auth.NewVerifier(context.Background(), &auth.Options{
				Issuer:   f.idp.iss.Issuer(),
				Audience: o.ResourceURL,
				JWKS:     f.idp.iss.JWKS(),
				Claims:   auth.ClaimMap{User: "sub", Scopes: []string{"scope"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(v.Close)
			o.Audit = w
			o.Admin = &server.AdminOptions{
				Verifier: v, Issuer: f.idp.iss.Issuer(),
				Tools: admin.Tools(svc), API: admin.Handler(svc), Impersonation: svc,
			}
			c, err := console.New(so.withData(t, f, o, console.Options{
				Service: svc,
				Authenticator: console.AuthenticatorFunc(func(ctx context.Context, tok string) (*server.AdminCaller, error) {
					return f.h.Server.AuthenticateAdmin(ctx, tok)
				}),
				Issuer:      f.idp.ts.URL,
				ClientID:    clientID,
				RedirectURL: f.base + "/console/callback",
				Resource:    o.ResourceURL,
				Tools:       toolNames,
				HTTPClient:  idpClient,
				Now:         f.clock.Now,
			}))
			if err != nil {
				t.Fatal(err)
			}
			o.Routes[console.Path] = c
		},
	})
	return f
}

func (f *fixture) lifecycle(t *testing.T, stores *store.Set) *lifecycle.Manager {
	t.Helper()
	archives, err := archive.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { archives.Close() })
	var backends []lifecycle.Backend
	for name, be := range map[string]store.Backend{"docs": stores.Docs, "blobs": stores.Blobs} {
		backends = append(backends, lifecycle.Backend{Name: name, Data: be.(store.Portable)})
	}
	lc, err := lifecycle.New(lifecycle.Options{
		Registry: f.reg, Backends: backends, Archives: archives, Audit: f.w, AuditStore: f.events,
		Strategy: config.IsolationDatabase, TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return lc
}

// browser is a cookie-keeping HTTP client, as a browser would be.
type browser struct {
	t      *testing.T
	f      *fixture
	c      *http.Client
	origin string // sent as Origin on POST; "" = none
}

func (f *fixture) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	return &browser{t: t, f: f, c: c, origin: f.base}
}

// do sends a request and returns the final response (redirects followed)
// and its body.
func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	u := path
	if !strings.HasPrefix(u, "http") {
		u = b.f.base + path
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post submits a form; hdr are header name/value pairs.
func (b *browser) post(path string, form url.Values, hdr ...string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.f.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from a page.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	_, body := b.get(path)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("GET %s: no csrf field in the page:\n%s", path, body)
	}
	return m[1]
}

// signIn signs a browser in as user with scopes (nil = the admin scope)
// and returns it with the page it landed on.
func (f *fixture) signIn(t *testing.T, user string, scopes ...string) (*browser, *http.Response, string) {
	t.Helper()
	if scopes == nil {
		scopes = []string{adminScope}
	}
	f.idp.signInAs(user, scopes...)
	b := f.browser(t)
	resp, body := b.get("/console/")
	return b, resp, body
}

func (f *fixture) admin(t *testing.T) *browser {
	t.Helper()
	b, resp, body := f.signIn(t, "alice")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/tenants" {
		t.Fatalf("admin sign-in ended at %s with %d:\n%s", resp.Request.URL, resp.StatusCode, body)
	}
	return b
}

func (f *fixture) tenant(t *testing.T, i int) *registry.Tenant {
	t.Helper()
	rec, err := f.reg.Get(context.Background(), f.h.Tenant(i).Record.ID)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// mcpStatus sends a tools/list with token and returns the HTTP status.
func (f *fixture) mcpStatus(t *testing.T, token string, hdr ...string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.h.URL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// chain returns the events of one tenant's chain (after a flush).
func (f *fixture) chain(t *testing.T, chain string) []*audit.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var out []*audit.Event
	err := f.events.Scan(ctx, chain, 1, func(r *audit.Record) error {
		e, err := r.Event()
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// consoleEvents are the admin events of method in chain made through the
// console.
func (f *fixture) consoleEvents(t *testing.T, chain, method string) []*audit.Event {
	t.Helper()
	var out []*audit.Event
	for _, e := range f.chain(t, chain) {
		if e.Kind == audit.KindAdmin && e.Method == "admin/"+method && e.Detail["via"] == admin.ViaConsole {
			out = append(out, e)
		}
	}
	return out
}

// wantConsoleEvent checks that one successful event of method by sub
// through the console is in the tenant's chain.
func (f *fixture) wantConsoleEvent(t *testing.T, rec *registry.Tenant, method, sub string) *audit.Event {
	t.Helper()
	var evs []*audit.Event
	for _, e := range f.consoleEvents(t, string(rec.ID), method) {
		if e.Outcome == audit.OutcomeOK {
			evs = append(evs, e)
		}
	}
	if len(evs) != 1 {
		t.Fatalf("chain of %s: %d successful console events %s, want 1", rec.ExternalID, len(evs), method)
	}
	e := evs[0]
	if e.Actor == nil || e.Actor.Sub != sub || e.Actor.Issuer != f.idp.iss.Issuer() || e.RequestID == "" {
		t.Fatalf("event %s: outcome %s, actor %+v, request id %q; want ok by %s of %s", method, e.Outcome, e.Actor, e.RequestID, sub, f.idp.iss.Issuer())
	}
	return e
}

func wantContains(t *testing.T, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q:\n%s", w, body)
		}
	}
}

func wantNot(t *testing.T, body string, not ...string) {
	t.Helper()
	for _, w := range not {
		if strings.Contains(body, w) {
			t.Errorf("page shows %q but must not:\n%s", w, body)
		}
	}
}

// unescape makes page text comparable with plain strings.
func unescape(s string) string { return html.UnescapeString(s) }
