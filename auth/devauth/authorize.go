package devauth

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// pending is an authorization request whose sign-in page is shown: the
// form posts back only its id (the form's one-time CSRF token) and the
// choice, so nothing of the request can be changed on the way.
type pending struct {
	clientID, redirectURI, state string
	challenge, nonce             string
	scopes                       []string // as requested; nil = none asked for
	browser                      string   // the value of the browser's binding cookie
	expires                      time.Time
}

// grant is an issued authorization code and what it is bound to.
type grant struct {
	clientID, redirectURI, challenge, nonce string
	tenant                                  Tenant // zero for the administrator
	admin                                   bool
	user                                    string
	scopes                                  []string // granted
	openid                                  bool
	expires                                 time.Time
}

//go:embed signin.html
var signinHTML string

var signinTmpl = template.Must(template.New("signin").Parse(signinHTML))

// styleCSP allows the page's one inline style sheet, by hash.
var styleCSP = func() string {
	_, css, _ := strings.Cut(signinHTML, "<style>")
	css, _, _ = strings.Cut(css, "</style>")
	sum := sha256.Sum256([]byte(css))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// page is what signin.html shows: Problem alone (a refusal), or the form.
type page struct {
	Problem                                      string
	ClientName, Resource, RedirectOrigin, Action string
	Request, Error, AdminScope                   string
	Tenants                                      []Tenant
	Admin                                        bool
	formAction                                   string // CSP form-action sources
}

// codeChallengeRE is an S256 challenge: a base64url SHA-256, unpadded.
var codeChallengeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// codeVerifierRE is RFC 7636 §4.1's code_verifier.
var codeVerifierRE = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// browserCookie names the cookie that binds a sign-in form to the browser
// it was shown in.
const browserCookie = "tenantmcp_devauth"

// maxStateLen bounds the state echoed back to the client.
const maxStateLen = 2000

// serveAuthorize is the authorization endpoint: GET starts an
// authorization request and shows the sign-in page, POST is that page's
// form.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.startAuthorization(w, r)
	case http.MethodPost:
		s.finishAuthorization(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		s.refusePage(w, http.StatusMethodNotAllowed, "The authorization endpoint takes GET (an authorization request) or POST (its sign-in form).")
	}
}

// startAuthorization checks an authorization request. Until the client
// and its redirect URI are known to belong together, problems are shown
// on a page (never redirected: that would be an open redirect); after
// that they go back to the client as error=… with its state, if its
// redirect URI is trusted (trustedRedirect), else they too are shown on
// a page.
func (s *Server) startAuthorization(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for _, k := range []string{"client_id", "redirect_uri"} {
		if len(q[k]) > 1 {
			s.refusePage(w, http.StatusBadRequest, "The authorization request has "+k+" more than once.")
			return
		}
	}
	c, redirectURI, ok := s.checkClient(w, q.Get("client_id"), q.Get("redirect_uri"))
	if !ok {
		return
	}
	state := q.Get("state")
	fail := func(code, description string) {
		if !trustedRedirect(c, redirectURI) {
			// Anyone can register a client with a redirect URI of their
			// own: bouncing the browser there without the user doing
			// anything would make this endpoint an open redirector
			// (RFC 9700 §4.11.2).
			s.refusePage(w, http.StatusBadRequest, "The application's authorization request is invalid ("+code+": "+description+
				"). Nothing was sent back to the application: its redirect URI is not on this machine, so errors are shown here instead.")
			return
		}
		s.redirect(w, r, redirectURI, url.Values{"error": {code}, "error_description": {description}}, state)
	}
	for _, k := range []string{"response_type", "state", "code_challenge", "code_challenge_method", "scope", "nonce"} {
		if len(q[k]) > 1 {
			fail("invalid_request", k+" is given more than once")
			return
		}
	}
	switch rt := q.Get("response_type"); {
	case rt == "":
		fail("invalid_request", `response_type is required; use "code"`)
		return
	case rt != "code":
		fail("unsupported_response_type", `only response_type "code" is supported`)
		return
	}
	if state == "" {
		fail("invalid_request", "state is required: send a random value and check it comes back")
		return
	}
	if len(state) > maxStateLen {
		fail("invalid_request", "state is longer than 2000 bytes")
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "":
		fail("invalid_request", "code_challenge is required (PKCE with code_challenge_method S256)")
		return
	case method != "S256":
		fail("invalid_request", "code_challenge_method must be S256; plain (or none given) is not supported")
		return
	case !codeChallengeRE.MatchString(challenge):
		fail("invalid_request", "code_challenge is not an S256 challenge (43 base64url characters)")
		return
	}
	for _, res := range q["resource"] {
		if res != s.resource {
			fail("invalid_target", "resource must be "+s.resource+", the MCP server these tokens are for")
			return
		}
	}
	nonce := q.Get("nonce")
	if len(nonce) > maxStateLen {
		fail("invalid_request", "nonce is longer than 2000 bytes")
		return
	}
	var scopes []string
	if q.Has("scope") {
		scopes = strings.Fields(q.Get("scope"))
	}
	p := &pending{clientID: c.ID, redirectURI: redirectURI, state: state, challenge: challenge,
		nonce: nonce, scopes: scopes, browser: s.browser(w, r)}
	s.showForm(w, r, c, p, http.StatusOK, "")
}

// checkClient returns the client clientID and redirectURI if it is one of
// the client's, else shows why not.
func (s *Server) checkClient(w http.ResponseWriter, clientID, redirectURI string) (*client, string, bool) {
	if clientID == "" {
		s.refusePage(w, http.StatusBadRequest, "The authorization request has no client_id.")
		return nil, "", false
	}
	c := s.client(clientID)
	if c == nil {
		s.refusePage(w, http.StatusBadRequest, "The client_id is not registered here. Register the client first (the registration_endpoint of this server's metadata); registrations are kept in memory, so after a restart of tenantmcp dev the client must register again.")
		return nil, "", false
	}
	if redirectURI == "" {
		s.refusePage(w, http.StatusBadRequest, "The authorization request has no redirect_uri.")
		return nil, "", false
	}
	if !slices.Contains(c.RedirectURIs, redirectURI) {
		s.refusePage(w, http.StatusBadRequest, "The redirect_uri is not one of the redirect URIs this client registered (they must match exactly).")
		return nil, "", false
	}
	return c, redirectURI, true
}

// trustedRedirect reports whether an authorization request's errors may
// go back to redirectURI without the user doing anything: the console's
// pre-registered client, or a redirect URI on this machine (a loopback
// host, as native clients and the MCP Inspector use).
func trustedRedirect(c *client, redirectURI string) bool {
	if c.ID == ConsoleClientID {
		return true
	}
	u, err := url.Parse(redirectURI)
	return err == nil && isLoopbackHost(u.Hostname())
}

// browser returns the browser's binding cookie, setting a new one if it
// has none.
func (s *Server) browser(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(browserCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	v := randomToken()
	http.SetCookie(w, &http.Cookie{Name: browserCookie, Value: v, Path: s.path + "/authorize",
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode})
	return v
}

// showForm stores p under a new one-time id and shows the sign-in page.
func (s *Server) showForm(w http.ResponseWriter, r *http.Request, c *client, p *pending, status int, problem string) {
	tenants, err := s.tenants(r.Context())
	if err != nil {
		s.log.ErrorContext(r.Context(), "devauth: list tenants", "err", err)
		s.refusePage(w, http.StatusInternalServerError, "The list of tenants could not be read; see the server's log, then start the sign-in again.")
		return
	}
	slices.SortStableFunc(tenants, func(a, b Tenant) int {
		return cmp.Or(cmp.Compare(cmp.Or(a.Name, a.ExternalID), cmp.Or(b.Name, b.ExternalID)), cmp.Compare(a.ExternalID, b.ExternalID))
	})
	now := s.opts.Now()
	p.expires = now.Add(s.opts.RequestTTL)
	id := randomToken()
	s.mu.Lock()
	full := sweep(s.pending, now, func(p *pending) time.Time { return p.expires }) >= s.opts.MaxPending
	if !full {
		s.pending[id] = p
	}
	s.mu.Unlock()
	if full {
		s.refusePage(w, http.StatusServiceUnavailable, "Too many sign-ins are in progress; try again in a few minutes.")
		return
	}
	name := c.Name
	if name == "" {
		name = "An application (client " + c.ID + ")"
	}
	u, _ := url.Parse(p.redirectURI) // checked at registration
	origin := u.Scheme + "://" + u.Host
	s.render(w, status, &page{ClientName: name, Resource: s.resource, RedirectOrigin: origin,
		Action: s.authorizeURL(), Request: id, Error: problem, Tenants: tenants,
		Admin: s.opts.AdminScope != "", AdminScope: s.opts.AdminScope, formAction: "'self' " + origin})
}

// sweep deletes the expired entries of m and returns how many remain.
func sweep[V any](m map[string]V, now time.Time, expires func(V) time.Time) int {
	for k, v := range m {
		if !now.Before(expires(v)) {
			delete(m, k)
		}
	}
	return len(m)
}

// finishAuthorization handles the sign-in form: the one-time request id
// (CSRF proof) must name a pending request shown in this browser; then
// the choice is checked and a code issued.
func (s *Server) finishAuthorization(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	if err := r.ParseForm(); err != nil {
		s.refusePage(w, http.StatusBadRequest, "The sign-in form could not be read.")
		return
	}
	if o := r.Header.Get("Origin"); o != "" && o != s.origin {
		s.refusePage(w, http.StatusForbidden, "The sign-in form was posted from another site. Start the sign-in again from your MCP client.")
		return
	}
	id := r.PostForm.Get("request")
	if id == "" {
		s.refusePage(w, http.StatusBadRequest, "The sign-in form lacks its one-time request token. Start the sign-in again from your MCP client.")
		return
	}
	now := s.opts.Now()
	s.mu.Lock()
	p := s.pending[id]
	delete(s.pending, id) // one use, whatever comes next
	s.mu.Unlock()
	if p == nil || !now.Before(p.expires) {
		s.refusePage(w, http.StatusBadRequest, "This sign-in form has expired or was already used. Start the sign-in again from your MCP client.")
		return
	}
	if ck, err := r.Cookie(browserCookie); err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(p.browser)) != 1 {
		s.refusePage(w, http.StatusForbidden, "This sign-in form was not opened in this browser. Start the sign-in again from your MCP client.")
		return
	}
	c := s.client(p.clientID)
	if c == nil {
		s.refusePage(w, http.StatusBadRequest, "The client was forgotten while signing in (too many registrations, or a restart). Start the sign-in again from your MCP client.")
		return
	}
	if r.PostForm.Get("action") != "allow" {
		s.redirect(w, r, p.redirectURI, url.Values{"error": {"access_denied"}, "error_description": {"the user cancelled the sign-in"}}, p.state)
		return
	}
	g, problem, err := s.choose(r, p)
	if err != nil {
		s.log.ErrorContext(r.Context(), "devauth: list tenants", "err", err)
		s.refusePage(w, http.StatusInternalServerError, "The list of tenants could not be read; see the server's log, then start the sign-in again.")
		return
	}
	if problem != "" {
		s.showForm(w, r, c, p, http.StatusBadRequest, problem)
		return
	}
	g.expires = now.Add(s.opts.CodeTTL)
	code := randomToken()
	s.mu.Lock()
	full := sweep(s.codes, now, func(g *grant) time.Time { return g.expires }) >= s.opts.MaxPending
	if !full {
		s.codes[code] = g
	}
	s.mu.Unlock()
	if full {
		s.redirect(w, r, p.redirectURI, url.Values{"error": {"temporarily_unavailable"}, "error_description": {"too many unredeemed codes; try again in a minute"}}, p.state)
		return
	}
	s.redirect(w, r, p.redirectURI, url.Values{"code": {code}}, p.state)
}

// choose reads the account and user of the form into a grant for p, or
// returns the problem to show.
func (s *Server) choose(r *http.Request, p *pending) (*grant, string, error) {
	g := &grant{clientID: p.clientID, redirectURI: p.redirectURI, challenge: p.challenge, nonce: p.nonce,
		openid: slices.Contains(p.scopes, scopeOpenID)}
	user := strings.TrimSpace(r.PostForm.Get("user"))
	if utf8.RuneCountInString(user) > maxClientNameLen || strings.ContainsFunc(user, func(r rune) bool { return isControl(r) || r == ' ' || r == '\t' }) {
		return nil, "The user must be at most 200 characters without spaces.", nil
	}
	account := r.PostForm.Get("account")
	switch ext, isTenant := strings.CutPrefix(account, "tenant:"); {
	case account == "admin" && s.opts.AdminScope != "":
		g.admin, g.user, g.scopes = true, cmp.Or(user, "admin"), []string{s.opts.AdminScope}
	case isTenant:
		tenants, err := s.tenants(r.Context())
		if err != nil {
			return nil, "", err
		}
		i := slices.IndexFunc(tenants, func(t Tenant) bool { return t.ExternalID == ext })
		if i < 0 {
			return nil, "That tenant is not offered here (any more). Choose one of the list.", nil
		}
		g.tenant, g.user = tenants[i], cmp.Or(user, "user@"+ext)
		g.scopes = s.opts.Scopes
		if p.scopes != nil {
			g.scopes = slices.DeleteFunc(slices.Clone(s.opts.Scopes), func(sc string) bool { return !slices.Contains(p.scopes, sc) })
		}
	default:
		return nil, "Choose whom to sign in as.", nil
	}
	return g, "", nil
}

// redirect sends the browser back to the client's redirectURI with params,
// state and iss (RFC 9207).
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values, state string) {
	u, _ := url.Parse(redirectURI) // checked at registration
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", s.iss.Issuer())
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// refusePage shows problem on a page of its own: nothing goes back to the
// client.
func (s *Server) refusePage(w http.ResponseWriter, status int, problem string) {
	s.render(w, status, &page{Problem: problem, formAction: "'none'"})
}

func (s *Server) render(w http.ResponseWriter, status int, p *page) {
	var b bytes.Buffer
	if err := signinTmpl.Execute(&b, p); err != nil {
		http.Error(w, "rendering the sign-in page failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: with no-referrer a browser posts the
	// form with "Origin: null", which the form's check refuses.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src "+styleCSP+"; form-action "+p.formAction+"; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}
