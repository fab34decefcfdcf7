package devauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tenantmcp/tenantmcp/auth"
)

// ConsoleClientID is the client id of the web console, registered when the
// server starts (no dynamic registration needed): a public client (PKCE, no
// secret) whose only redirect URI is Options.ConsoleRedirectURI, by default
// the issuer's origin + "/console/callback".
const ConsoleClientID = "tenantmcp-console"

// Defaults of the Options fields.
const (
	DefaultCodeTTL    = 60 * time.Second
	DefaultTokenTTL   = time.Hour
	DefaultRequestTTL = 10 * time.Minute
	DefaultMaxClients = 1000
	DefaultMaxPending = 1000
)

// Tenant is a tenant a user can sign in to on the sign-in page.
type Tenant struct {
	// ExternalID becomes the token's tenant claim (org_id). Required.
	ExternalID string
	// Name is shown on the page and becomes org_name; "" = ExternalID is
	// shown and org_name omitted.
	Name string
}

// Tenants lists the tenants the sign-in page offers (shown in order of
// name). It is called on every page view and again when the form is
// posted (a tenant that is no longer listed cannot be signed in to), so
// tenants created while the server runs are offered at once.
type Tenants func(ctx context.Context) ([]Tenant, error)

// Options configure a Server. The zero value of each field is its default.
type Options struct {
	// Scopes are the scopes tokens for tenant users carry: all of them
	// when the client asks for no scope, else those it asks for. nil =
	// none (tokens without a scope claim).
	Scopes []string
	// AdminScope, if set, offers an administrator on the sign-in page,
	// whose tokens carry no tenant and only this scope. "" = no
	// administrator is offered.
	AdminScope string
	// ConsoleRedirectURI is the redirect URI of ConsoleClientID; "" = the
	// issuer's origin + "/console/callback".
	ConsoleRedirectURI string
	// CodeTTL is how long an authorization code can be redeemed; 0 =
	// DefaultCodeTTL.
	CodeTTL time.Duration
	// TokenTTL is the access token lifetime (expires_in); 0 =
	// DefaultTokenTTL.
	TokenTTL time.Duration
	// RequestTTL is how long a sign-in page can be submitted; 0 =
	// DefaultRequestTTL.
	RequestTTL time.Duration
	// MaxClients bounds the registered clients kept in memory: the oldest
	// registration is forgotten to make room (its client gets
	// invalid_client and registers again). 0 = DefaultMaxClients.
	MaxClients int
	// MaxPending bounds the sign-in pages and unredeemed codes kept in
	// memory (each); further sign-ins are refused until some expire. 0 =
	// DefaultMaxPending.
	MaxPending int
	// Now is the clock; nil = time.Now. (Token lifetimes follow the
	// DevIssuer's own clock.)
	Now func() time.Time
	// Logger receives one line per registration and per token issued;
	// nil = discard.
	Logger *slog.Logger
}

// Server is the development authorization server. Mount Routes on the
// dev server's mux.
type Server struct {
	iss      *auth.DevIssuer
	resource string
	tenants  Tenants
	opts     Options
	log      *slog.Logger

	issuer string // iss.Issuer() without a trailing "/"
	path   string // the issuer URL's path, e.g. "/dev"
	origin string // scheme://host of the issuer
	secure bool   // the issuer is https: cookies get Secure

	oauthMeta, oidcMeta []byte

	mu      sync.Mutex
	clients map[string]*client
	order   []string // dynamically registered client ids, oldest first
	pending map[string]*pending
	codes   map[string]*grant
}

// New returns an authorization server for the dev issuer iss, whose tokens
// are for resource (the MCP server's URL: their audience, and the only
// RFC 8707 resource it accepts), offering the tenants that tenants lists.
func New(iss *auth.DevIssuer, resource string, tenants Tenants, opts *Options) (*Server, error) {
	if iss == nil {
		return nil, errors.New("devauth: New: a DevIssuer is required")
	}
	if tenants == nil {
		return nil, errors.New("devauth: New: a Tenants function is required")
	}
	if u, err := url.Parse(resource); err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" {
		return nil, fmt.Errorf("devauth: New: resource %q is not an absolute URL without fragment (e.g. http://127.0.0.1:8080/mcp)", resource)
	}
	iu, err := url.Parse(iss.Issuer())
	if err != nil || (iu.Scheme != "http" && iu.Scheme != "https") || iu.Host == "" || iu.RawQuery != "" || iu.Fragment != "" {
		return nil, fmt.Errorf("devauth: New: issuer %q is not an http(s) URL without query or fragment", iss.Issuer())
	}
	s := &Server{iss: iss, resource: resource, tenants: tenants,
		issuer: strings.TrimSuffix(iss.Issuer(), "/"), path: strings.TrimSuffix(iu.Path, "/"),
		origin: iu.Scheme + "://" + iu.Host, secure: iu.Scheme == "https",
		clients: map[string]*client{}, pending: map[string]*pending{}, codes: map[string]*grant{}}
	if opts != nil {
		s.opts = *opts
	}
	o := &s.opts
	o.Scopes = slices.Clone(o.Scopes)
	for _, sc := range append(slices.Clone(o.Scopes), o.AdminScope) {
		if strings.ContainsAny(sc, " \t\r\n\"\\") {
			return nil, fmt.Errorf("devauth: New: scope %q contains whitespace, a quote or a backslash", sc)
		}
	}
	if o.CodeTTL == 0 {
		o.CodeTTL = DefaultCodeTTL
	}
	if o.TokenTTL == 0 {
		o.TokenTTL = DefaultTokenTTL
	}
	if o.RequestTTL == 0 {
		o.RequestTTL = DefaultRequestTTL
	}
	if o.MaxClients == 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.MaxPending == 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.CodeTTL < 0 || o.TokenTTL < 0 || o.RequestTTL < 0 || o.MaxClients < 0 || o.MaxPending < 0 {
		return nil, errors.New("devauth: New: CodeTTL, TokenTTL, RequestTTL, MaxClients and MaxPending must not be negative (0 = default)")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s.log = o.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if o.ConsoleRedirectURI == "" {
		o.ConsoleRedirectURI = s.origin + "/console/callback"
	}
	if err := checkRedirectURI(o.ConsoleRedirectURI); err != nil {
		return nil, fmt.Errorf("devauth: New: ConsoleRedirectURI: %w", err)
	}
	s.clients[ConsoleClientID] = &client{ID: ConsoleClientID, Name: "tenantmcp console",
		RedirectURIs: []string{o.ConsoleRedirectURI}, IssuedAt: o.Now()}
	if s.oauthMeta, err = json.Marshal(s.metadata(false)); err != nil {
		return nil, fmt.Errorf("devauth: New: %w", err)
	}
	if s.oidcMeta, err = json.Marshal(s.metadata(true)); err != nil {
		return nil, fmt.Errorf("devauth: New: %w", err)
	}
	return s, nil
}

// Endpoint URLs, all under the issuer.
func (s *Server) authorizeURL() string { return s.issuer + "/authorize" }
func (s *Server) tokenURL() string     { return s.issuer + "/token" }
func (s *Server) registerURL() string  { return s.issuer + "/register" }
func (s *Server) jwksURL() string      { return s.issuer + "/jwks.json" }

// Routes returns the server's handlers keyed by http.ServeMux pattern,
// for server.Options.Routes: the authorization-server metadata (RFC 8414
// at /.well-known/oauth-authorization-server<issuer path>, and the OpenID
// discovery shape at /.well-known/openid-configuration<issuer path> and
// <issuer path>/.well-known/openid-configuration), <issuer>/register,
// <issuer>/authorize, <issuer>/token and the issuer's JWK Set at
// <issuer>/jwks.json.
func (s *Server) Routes() map[string]http.Handler {
	oauth := metadataHandler(s.oauthMeta)
	oidc := metadataHandler(s.oidcMeta)
	return map[string]http.Handler{
		"/.well-known/oauth-authorization-server" + s.path: oauth,
		"/.well-known/openid-configuration" + s.path:       oidc,
		s.path + "/.well-known/openid-configuration":       oidc,
		s.path + "/register":                               http.HandlerFunc(s.serveRegister),
		s.path + "/authorize":                              http.HandlerFunc(s.serveAuthorize),
		s.path + "/token":                                  http.HandlerFunc(s.serveToken),
		"GET " + s.path + "/jwks.json":                     s.iss,
	}
}

// metadata is the authorization server's metadata document (RFC 8414), or
// with oidc its OpenID Provider Metadata shape (the same, plus what OpenID
// Connect Discovery requires).
func (s *Server) metadata(oidc bool) map[string]any {
	scopes := slices.Clone(s.opts.Scopes)
	if s.opts.AdminScope != "" && !slices.Contains(scopes, s.opts.AdminScope) {
		scopes = append(scopes, s.opts.AdminScope)
	}
	scopes = append(scopes, scopeOpenID)
	m := map[string]any{
		"issuer":                                         s.iss.Issuer(),
		"authorization_endpoint":                         s.authorizeURL(),
		"token_endpoint":                                 s.tokenURL(),
		"registration_endpoint":                          s.registerURL(),
		"jwks_uri":                                       s.jwksURL(),
		"scopes_supported":                               scopes,
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{grantAuthorizationCode},
		"token_endpoint_auth_methods_supported":          []string{authMethodNone},
		"code_challenge_methods_supported":               []string{"S256"},
		"authorization_response_iss_parameter_supported": true,
		"service_documentation":                          "https://github.com/tenantmcp/tenantmcp#readme",
	}
	if oidc {
		m["subject_types_supported"] = []string{"public"}
		m["id_token_signing_alg_values_supported"] = []string{"ES256"}
		m["claims_supported"] = []string{"iss", "aud", "sub", "exp", "iat", "nonce", "org_id", "org_name"}
	}
	return m
}

// metadataHandler serves a metadata document to any origin.
func metadataHandler(doc []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !cors(w, r, "GET, HEAD, OPTIONS") {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD, OPTIONS")
			http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=60")
		if r.Method == http.MethodGet {
			_, _ = w.Write(doc)
		}
	})
}

// cors lets any origin read the response (no credentials are involved:
// these endpoints take no cookies) and answers a preflight, returning
// false when it did.
func cors(w http.ResponseWriter, r *http.Request, methods string) bool {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method != http.MethodOptions {
		return true
	}
	h.Set("Access-Control-Allow-Methods", methods)
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, MCP-Protocol-Version")
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
	return false
}

// randomToken returns 32 random bytes, base64url-encoded.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

const (
	grantAuthorizationCode = "authorization_code"
	authMethodNone         = "none"
	scopeOpenID            = "openid"
)
