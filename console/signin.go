package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/server"
)

// oidcClient signs operators in at the admin identity provider:
// authorization code with PKCE (S256).
type oidcClient struct {
	issuer string
	http   *http.Client
	now    func() time.Time

	mu     sync.Mutex
	meta   *providerMetadata
	metaAt time.Time
	err    error // the last failure, reused until errAt + metadataRetry
	errAt  time.Time
}

// providerMetadata is what the console reads of the provider's metadata.
type providerMetadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	ScopesSupported       []string `json:"scopes_supported"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
	AuthMethods           []string `json:"token_endpoint_auth_methods_supported"`
	oidc                  bool     // read from openid-configuration
}

// metadataTTL is how long the provider's metadata is reused, and
// metadataRetry how long a failure to read it is (so sign-in attempts do
// not turn into a stream of requests to a provider that is down).
const (
	metadataTTL   = 10 * time.Minute
	metadataRetry = 5 * time.Second
)

// errProvider: the identity provider could not be reached or answered
// something unusable.
var errProvider = errors.New("identity provider")

// metadata returns the provider's metadata: OpenID Connect discovery,
// else RFC 8414.
func (o *oidcClient) metadata(ctx context.Context) (*providerMetadata, error) {
	o.mu.Lock()
	if o.meta != nil && o.now().Sub(o.metaAt) < metadataTTL {
		m := o.meta
		o.mu.Unlock()
		return m, nil
	}
	if o.err != nil && o.now().Sub(o.errAt) < metadataRetry {
		err := o.err
		o.mu.Unlock()
		return nil, err
	}
	o.mu.Unlock()
	var errs []error
	for _, wk := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		var m providerMetadata
		if err := o.getJSON(ctx, o.issuer+wk, &m); err != nil {
			errs = append(errs, err)
			continue
		}
		m.oidc = strings.HasSuffix(wk, "openid-configuration")
		switch {
		case strings.TrimRight(m.Issuer, "/") != o.issuer:
			errs = append(errs, fmt.Errorf("%w: %s names issuer %q, not %q", errProvider, wk, m.Issuer, o.issuer))
			continue
		case m.AuthorizationEndpoint == "" || m.TokenEndpoint == "":
			errs = append(errs, fmt.Errorf("%w: %s has no authorization_endpoint or token_endpoint", errProvider, wk))
			continue
		case len(m.CodeChallengeMethods) > 0 && !slices.Contains(m.CodeChallengeMethods, "S256"):
			errs = append(errs, fmt.Errorf("%w: %s does not support PKCE S256", errProvider, wk))
			continue
		}
		o.mu.Lock()
		o.meta, o.metaAt = &m, o.now()
		o.mu.Unlock()
		return &m, nil
	}
	err := errors.Join(errs...)
	o.mu.Lock()
	o.err, o.errAt = err, o.now()
	o.mu.Unlock()
	return nil, err
}

// maxProviderBody bounds what is read of the provider's answers.
const maxProviderBody = 1 << 20

func (o *oidcClient) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", errProvider, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := o.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: GET %s: %v", errProvider, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: GET %s: %s", errProvider, u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxProviderBody)).Decode(v); err != nil {
		return fmt.Errorf("%w: GET %s: %v", errProvider, u, err)
	}
	return nil
}

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	IDToken          string `json:"id_token"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// exchange trades an authorization code for tokens.
func (c *Console) exchange(ctx context.Context, m *providerMetadata, code, verifier string) (*tokenResponse, error) {
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {c.o.RedirectURL},
		"code_verifier": {verifier},
		"client_id":     {c.o.ClientID},
	}
	if c.o.Resource != "" {
		form.Set("resource", c.o.Resource)
	}
	useBasic := c.o.ClientSecret != "" && (len(m.AuthMethods) == 0 || slices.Contains(m.AuthMethods, "client_secret_basic"))
	if c.o.ClientSecret != "" && !useBasic {
		form.Set("client_secret", c.o.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errProvider, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if useBasic {
		req.SetBasicAuth(url.QueryEscape(c.o.ClientID), url.QueryEscape(c.o.ClientSecret))
	}
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: token endpoint: %v", errProvider, err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	derr := json.NewDecoder(io.LimitReader(resp.Body, maxProviderBody)).Decode(&tr)
	switch {
	case resp.StatusCode != http.StatusOK && tr.Error != "":
		return nil, fmt.Errorf("%w: token endpoint refused the code: %s %s", errProvider, clip(tr.Error), clip(tr.ErrorDescription))
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: token endpoint: %s", errProvider, resp.Status)
	case derr != nil:
		return nil, fmt.Errorf("%w: token endpoint: %v", errProvider, derr)
	case tr.AccessToken == "":
		return nil, fmt.Errorf("%w: token endpoint returned no access_token", errProvider)
	}
	return &tr, nil
}

// clip bounds text from the provider for logs and pages.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// pkceChallenge is the S256 challenge of verifier (RFC 7636).
func pkceChallenge(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// maxNext bounds the return address a sign-in keeps (in its cookie).
const maxNext = 1024

// safeNext keeps a return address inside the console (and short).
func safeNext(next string) string {
	if !strings.HasPrefix(next, Path) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") || len(next) > maxNext {
		return Path + "tenants"
	}
	return next
}

// signInAttempt is a sign-in sent to the identity provider and not back
// yet. It lives only in the browser's sign-in cookie, sealed: the server
// keeps nothing of it, so starting sign-ins costs the server nothing and
// cannot push out an operator's sign-in in progress.
type signInAttempt struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Next     string    `json:"r"`
	Expires  time.Time `json:"e"`
}

// Why a sign-in cookie is refused.
var (
	errSignInUnreadable = errors.New("the sign-in cookie does not open: it was sealed by another replica or before a restart, or altered")
	errSignInExpired    = errors.New("the sign-in expired")
)

// maxSignInCookie bounds the sign-in cookie read (a sealed attempt is
// well under 1 KiB with the longest next).
const maxSignInCookie = 3000

// sealSignIn returns a's cookie value: AES-GCM under the process's key,
// so its nonce and PKCE verifier cannot be read from it and it cannot be
// altered or made up.
func (t *sessions) sealSignIn(a *signInAttempt) string {
	b, err := json.Marshal(a)
	if err != nil {
		panic(err) // strings and a time always marshal
	}
	return base64.RawURLEncoding.EncodeToString(t.seal.Seal(nil, nil, b, []byte(signInCookie)))
}

// openSignIn returns the live attempt sealed in v, or why not
// (errSignInUnreadable, errSignInExpired).
func (t *sessions) openSignIn(v string) (*signInAttempt, error) {
	if len(v) > maxSignInCookie {
		return nil, errSignInUnreadable
	}
	ct, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, errSignInUnreadable
	}
	b, err := t.seal.Open(nil, nil, ct, []byte(signInCookie))
	if err != nil {
		return nil, errSignInUnreadable
	}
	var a signInAttempt
	if err := json.Unmarshal(b, &a); err != nil || a.State == "" {
		return nil, errSignInUnreadable
	}
	if !t.now().Before(a.Expires) {
		return nil, errSignInExpired
	}
	return &a, nil
}

// signIn starts a sign-in: a new state, nonce and PKCE verifier, sealed in
// the browser's sign-in cookie, and a redirect to the identity provider.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s := c.sessionOf(r); s != nil && s.admin {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	m, err := c.oidc.metadata(r.Context())
	if err != nil {
		c.log.ErrorContext(r.Context(), "console: sign-in: identity provider metadata", "issuer", c.oidc.issuer, "err", err)
		c.render(w, r, nil, http.StatusBadGateway, "message", "", message{Heading: "Sign-in unavailable",
			Text: "The identity provider's metadata could not be read, so sign-in cannot start. The server log has the details; try again shortly.", Back: "/console/signin"})
		return
	}
	a := &signInAttempt{State: randomID(24), Nonce: randomID(24), Verifier: randomID(48), Next: safeNext(r.URL.Query().Get("next")),
		Expires: c.o.Now().Add(SignInTimeout)}
	scope := c.o.Scope
	if m.oidc && (len(m.ScopesSupported) == 0 || slices.Contains(m.ScopesSupported, "openid")) {
		scope = "openid " + scope
	}
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.o.ClientID},
		"redirect_uri":          {c.o.RedirectURL},
		"scope":                 {scope},
		"state":                 {a.State},
		"nonce":                 {a.Nonce},
		"code_challenge":        {pkceChallenge(a.Verifier)},
		"code_challenge_method": {"S256"},
	}
	if c.o.Resource != "" {
		q.Set("resource", c.o.Resource)
	}
	// The attempt is bound to this browser: a callback with a state
	// started elsewhere (login CSRF) is refused.
	http.SetCookie(w, c.cookie(signInCookie, c.sessions.sealSignIn(a), a.Expires))
	sep := "?"
	if strings.Contains(m.AuthorizationEndpoint, "?") {
		sep = "&"
	}
	http.Redirect(w, r, m.AuthorizationEndpoint+sep+q.Encode(), http.StatusSeeOther)
}

// callback finishes a sign-in: opens this browser's sign-in cookie,
// checks the state against it, trades the code (with the PKCE verifier)
// for an access token, and has the server check that token as it checks
// the admin API's. The cookie is cleared whatever the outcome, and a
// state whose code was traded is refused from then on.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	ctx := r.Context()
	q := r.URL.Query()
	fail := func(status int, text, logMsg string, args ...any) {
		c.log.WarnContext(ctx, "console: sign-in failed: "+logMsg, args...)
		http.SetCookie(w, c.cookie(signInCookie, "", time.Time{}))
		c.render(w, r, nil, status, "message", "", message{Heading: "Sign-in failed", Text: text, Back: "/console/signin"})
	}
	used := func() {
		fail(http.StatusBadRequest, "This sign-in was already used. Start again.", "state already used (a replayed callback)")
	}
	state := q.Get("state")
	ck, err := r.Cookie(signInCookie)
	if state == "" || err != nil || ck.Value == "" {
		fail(http.StatusBadRequest, "This sign-in was not started in this browser, or it was already used. Start again.", "no sign-in cookie or no state")
		return
	}
	a, err := c.sessions.openSignIn(ck.Value)
	switch {
	case errors.Is(err, errSignInExpired):
		fail(http.StatusBadRequest, fmt.Sprintf("This sign-in expired: it must be finished within %d minutes of starting it. Start again.", int(SignInTimeout/time.Minute)), "expired")
		return
	case err != nil:
		fail(http.StatusBadRequest, "This sign-in cannot be finished here: it was started on another server of this deployment, or before the server restarted. Start again (a deployment with several replicas needs sticky sessions for /console/).",
			"cookie", "err", err)
		return
	case subtle.ConstantTimeCompare([]byte(a.State), []byte(state)) != 1:
		fail(http.StatusBadRequest, "This sign-in was not started in this browser, or it was already used. Start again.", "state does not match this browser's")
		return
	case c.sessions.signInUsed(a.State):
		used()
		return
	}
	if e := q.Get("error"); e != "" {
		fail(http.StatusUnauthorized, "The identity provider did not sign you in ("+clip(e)+" "+clip(q.Get("error_description"))+"). Start again.", "identity provider error", "error", clip(e))
		return
	}
	code := q.Get("code")
	if code == "" {
		fail(http.StatusBadRequest, "The identity provider sent no authorization code. Start again.", "no code")
		return
	}
	m, err := c.oidc.metadata(ctx)
	if err != nil {
		fail(http.StatusBadGateway, "The identity provider could not be reached. Try again shortly.", "metadata", "err", err)
		return
	}
	tr, err := c.exchange(ctx, m, code, a.Verifier)
	if err != nil {
		fail(http.StatusBadGateway, "The identity provider did not give the console a token. Start again; the server log has the details.", "token exchange", "err", err)
		return
	}
	// Claimed after the exchange, so only codes the provider redeemed are
	// remembered; of two callbacks racing with one cookie, one gets on.
	if !c.sessions.useSignIn(a.State, a.Expires) {
		used()
		return
	}
	if tr.IDToken != "" {
		if why := c.checkIDToken(tr.IDToken, m, a.Nonce); why != "" {
			fail(http.StatusUnauthorized, "The identity provider's answer did not belong to this sign-in. Start again.", "id token: "+why)
			return
		}
	}
	caller, err := c.o.Authenticator.AuthenticateAdmin(ctx, tr.AccessToken)
	now := c.o.Now()
	s := &session{id: randomID(32), csrf: randomID(32), created: now, expires: now.Add(c.o.SessionTTL)}
	switch {
	case errors.Is(err, server.ErrNotAdmin):
		// A valid sign-in without admin rights: a session that shows the
		// "no admin access" page and nothing else.
		s.name = "signed-in user"
		c.log.InfoContext(ctx, "console: sign-in without admin access", "err", err)
	case err != nil:
		fail(http.StatusUnauthorized, "The access token the identity provider gave the console was not accepted by this server. Check the console's client settings (resource, scope) at the identity provider; the server log has the details.", "token refused", "err", err)
		return
	default:
		s.admin, s.subject, s.issuer = true, caller.Identity.UserID, caller.Identity.Issuer
		s.name = s.subject
		if n, ok := caller.Identity.Claims["name"].(string); ok && n != "" {
			s.name = n
		}
		if exp := caller.Identity.ExpiresAt; !exp.IsZero() && exp.Before(s.expires) {
			s.expires = exp
		}
		p := admin.Principal{Subject: s.subject, Issuer: s.issuer, Via: admin.ViaConsole, RequestID: caller.RequestID}
		if err := c.o.Service.SignIn(ctx, p); err != nil {
			fail(http.StatusServiceUnavailable, "The sign-in could not be recorded in the audit trail, so it was refused. Try again shortly; the server log has the details.", "audit", "err", err)
			return
		}
		c.log.InfoContext(ctx, "console: admin signed in", "admin", s.subject, "issuer", s.issuer, "request_id", caller.RequestID, "expires", s.expires)
	}
	if !s.admin && tr.ExpiresIn > 0 {
		if exp := now.Add(time.Duration(tr.ExpiresIn) * time.Second); exp.Before(s.expires) {
			s.expires = exp
		}
	}
	if old := c.sessionOf(r); old != nil {
		c.sessions.remove(old.id) // the browser's previous sign-in ends
	}
	c.sessions.add(s)
	http.SetCookie(w, c.cookie(signInCookie, "", time.Time{}))
	http.SetCookie(w, c.cookie(sessionCookie, s.id, s.expires))
	http.Redirect(w, r, a.Next, http.StatusSeeOther)
}

// idTokenLeeway is the clock skew allowed on an ID token's exp.
const idTokenLeeway = time.Minute

// checkIDToken checks the ID token's issuer, audience, nonce and expiry.
// It came straight from the token endpoint over the back channel (TLS: the
// issuer must be https), so its signature, and with it its alg, need not
// be checked (OpenID Connect Core 3.1.3.7); the access token is what the
// server verifies.
func (c *Console) checkIDToken(tok string, m *providerMetadata, nonce string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "not a JWT"
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "payload is not base64url"
	}
	var cl struct {
		Iss   string          `json:"iss"`
		Aud   json.RawMessage `json:"aud"`
		Nonce string          `json:"nonce"`
		Exp   *float64        `json:"exp"`
	}
	if json.Unmarshal(b, &cl) != nil {
		return "payload is not JSON (or exp is not a number)"
	}
	var auds []string
	if json.Unmarshal(cl.Aud, &auds) != nil {
		var one string
		json.Unmarshal(cl.Aud, &one)
		auds = []string{one}
	}
	switch {
	case cl.Iss != m.Issuer:
		return "issuer " + clip(cl.Iss)
	case !slices.Contains(auds, c.o.ClientID):
		return "audience is not the console's client id"
	case subtle.ConstantTimeCompare([]byte(cl.Nonce), []byte(nonce)) != 1:
		return "nonce does not match"
	case cl.Exp == nil:
		return "no exp"
	case !c.o.Now().Before(time.Unix(int64(*cl.Exp), 0).Add(idTokenLeeway)):
		return "expired at " + time.Unix(int64(*cl.Exp), 0).UTC().Format(time.RFC3339)
	}
	return ""
}

// signOut ends the session (a POST with the CSRF checks).
func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s := c.sessionOf(r)
	if s == nil {
		http.Redirect(w, r, "/console/signedout", http.StatusSeeOther)
		return
	}
	if why := c.checkCSRF(r, s); why != "" {
		c.errorPage(w, r, s, http.StatusForbidden, "Refused", "Sign-out was refused: "+why+". Reload the page and try again.")
		return
	}
	c.sessions.remove(s.id)
	http.SetCookie(w, c.cookie(sessionCookie, "", time.Time{}))
	c.log.InfoContext(r.Context(), "console: signed out", "admin", s.subject)
	http.Redirect(w, r, "/console/signedout", http.StatusSeeOther)
}

func (c *Console) signedOut(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, nil, http.StatusOK, "message", "", message{Heading: "Signed out", Text: "You are signed out of the console.", Back: "/console/signin"})
}

// noAccess is the only page a session without admin rights ever sees.
func (c *Console) noAccess(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, r, s, http.StatusForbidden, "noaccess", "", nil)
}
