package console

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/server"
)

// Path is where the console is mounted; every console URL starts with it.
const Path = "/console/"

// Defaults of Options.
const (
	DefaultSessionTTL  = 8 * time.Hour
	DefaultMaxSessions = 10000
	// SignInTimeout is how long a started sign-in may take at the
	// identity provider.
	SignInTimeout = 10 * time.Minute
)

// Authenticator checks an access token the console received for an
// operator with the server's own admin authentication:
// (*server.Server).AuthenticateAdmin. It returns an error wrapping
// server.ErrNotAdmin for a valid token that is not an admin's.
type Authenticator interface {
	AuthenticateAdmin(ctx context.Context, token string) (*server.AdminCaller, error)
}

// AuthenticatorFunc is an Authenticator as a function, for a server built
// after the console (its routes include the console):
//
//	var srv *server.Server
//	auth := console.AuthenticatorFunc(func(ctx context.Context, tok string) (*server.AdminCaller, error) {
//		return srv.AuthenticateAdmin(ctx, tok)
//	})
type AuthenticatorFunc func(ctx context.Context, token string) (*server.AdminCaller, error)

// AuthenticateAdmin calls f.
func (f AuthenticatorFunc) AuthenticateAdmin(ctx context.Context, token string) (*server.AdminCaller, error) {
	return f(ctx, token)
}

// Options configure a Console. Service, Authenticator, Issuer, ClientID
// and RedirectURL are required.
type Options struct {
	// Service performs every operation; the console never changes
	// anything any other way.
	Service *admin.Service
	// Authenticator verifies the operators' access tokens (the server).
	Authenticator Authenticator
	// Issuer is the admin identity provider's issuer URL: its metadata is
	// read from Issuer + /.well-known/openid-configuration, else
	// /.well-known/oauth-authorization-server (RFC 8414).
	Issuer string
	// ClientID is the console's client at the identity provider.
	// ClientSecret, if set, authenticates it (a confidential client);
	// "" = a public client (PKCE only). The secret is never logged.
	ClientID, ClientSecret string
	// RedirectURL is the console's callback URL registered at the identity
	// provider (public URL + /console/callback). Its scheme and host are
	// the console's origin, which every POST must come from; on a
	// loopback http URL the session cookie is not Secure.
	RedirectURL string
	// Resource is the resource indicator (RFC 8707) asked for: the
	// server's resource URL, the audience its admin tokens must carry.
	// "" asks for none.
	Resource string
	// Scope is the admin scope asked for; "" = server.DefaultAdminScope.
	// "openid" is added when the identity provider supports it.
	Scope string
	// SessionTTL bounds a session (it also ends when its access token
	// expires); 0 = DefaultSessionTTL.
	SessionTTL time.Duration
	// MaxSessions bounds the session table; 0 = DefaultMaxSessions. When
	// it is full, expired sessions go first, then sessions without admin
	// access, then the oldest.
	MaxSessions int
	// DefaultRateLimit is the deployment's rate limit per tenant (requests
	// per minute), shown for tenants without one of their own; 0 = shown
	// as "default".
	DefaultRateLimit int
	// Tools are the names of the tools the deployment serves, offered as
	// choices for a tenant's allowed tools; nil = free text.
	Tools []string
	// Activity, if set, gives the tenants page its 24 h sparklines.
	Activity Activity
	// Audit, Charts and Jobs feed the audit, charts and jobs pages (see
	// audit*.go, chart*.go, jobs*.go); nil = the page says what is missing.
	Audit  AuditSource
	Charts ChartSource
	Jobs   JobSource
	// HTTPClient talks to the identity provider; nil = a client with a 10 s
	// timeout.
	HTTPClient *http.Client
	// Logger receives a line per sign-in and refusal; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil = time.Now.
	Now func() time.Time
}

// Console is the operator console: an http.Handler for everything under
// Path.
type Console struct {
	o        Options
	log      *slog.Logger
	mux      *http.ServeMux
	origin   string // scheme://host of RedirectURL, normalised (normalOrigin)
	secure   bool   // Secure cookies
	sessions *sessions
	oidc     *oidcClient
	imports  *imports // background imports (import.go), stopped by Close
}

// New validates opts and returns a Console.
func New(opts Options) (*Console, error) {
	var errs []error
	if opts.Service == nil {
		errs = append(errs, errors.New("console: Service is required"))
	}
	if opts.Authenticator == nil {
		errs = append(errs, errors.New("console: Authenticator is required"))
	}
	if opts.Issuer == "" {
		errs = append(errs, errors.New("console: Issuer is required (the admin identity provider)"))
	}
	if opts.ClientID == "" {
		errs = append(errs, errors.New("console: ClientID is required (the console's client at the identity provider)"))
	}
	ru, err := url.Parse(opts.RedirectURL)
	switch {
	case opts.RedirectURL == "":
		errs = append(errs, errors.New("console: RedirectURL is required"))
	case err != nil || (ru.Scheme != "https" && ru.Scheme != "http") || ru.Host == "":
		errs = append(errs, fmt.Errorf("console: RedirectURL %q is not an absolute http(s) URL", opts.RedirectURL))
	case ru.Scheme == "http" && !loopback(ru.Hostname()):
		errs = append(errs, fmt.Errorf("console: RedirectURL %q must be https (http only on a loopback host)", opts.RedirectURL))
	}
	if opts.SessionTTL < 0 || opts.MaxSessions < 0 {
		errs = append(errs, errors.New("console: SessionTTL and MaxSessions must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	opts.SessionTTL = cmp.Or(opts.SessionTTL, DefaultSessionTTL)
	opts.MaxSessions = cmp.Or(opts.MaxSessions, DefaultMaxSessions)
	opts.Scope = cmp.Or(opts.Scope, server.DefaultAdminScope)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Console{
		o:        opts,
		log:      log,
		origin:   normalOrigin(ru.Scheme + "://" + ru.Host),
		secure:   !(ru.Scheme == "http" && loopback(ru.Hostname())),
		sessions: newSessions(opts.MaxSessions, opts.Now),
	}
	c.oidc = &oidcClient{issuer: strings.TrimRight(opts.Issuer, "/"), http: opts.HTTPClient, now: opts.Now}
	c.mux = c.routes()
	return c, nil
}

// loopback reports whether host is localhost or a loopback address.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ServeHTTP serves the console.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	c.mux.ServeHTTP(w, r)
}

// securityHeaders are set on every console response.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// routes mounts every page. Public pages (sign-in, callback, signed out,
// assets) need no session; the others go through c.admin (an admin's
// session) and, for POST, c.change (CSRF checks). See doc.go for adding a
// page.
func (c *Console) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /console/assets/", http.StripPrefix("/console/assets/", assetHandler()))
	mux.HandleFunc("GET /console/signin", c.signIn)
	mux.HandleFunc("GET /console/callback", c.callback)
	mux.HandleFunc("GET /console/signedout", c.signedOut)
	mux.HandleFunc("POST /console/signout", c.signOut)
	mux.Handle("GET /console/{$}", c.admin(func(w http.ResponseWriter, r *http.Request, s *session) {
		http.Redirect(w, r, "/console/tenants", http.StatusSeeOther)
	}))
	c.tenantRoutes(mux)
	c.impersonationRoutes(mux)
	c.auditRoutes(mux)
	c.chartRoutes(mux)
	c.jobRoutes(mux)
	mux.Handle("/console/", c.admin(func(w http.ResponseWriter, r *http.Request, s *session) {
		c.errorPage(w, r, s, http.StatusNotFound, "Not found", "There is no console page at this address.")
	}))
	return mux
}

// pageFunc is a page's handler: it runs for an admin's session only.
type pageFunc func(w http.ResponseWriter, r *http.Request, s *session)

// admin serves f to a signed-in admin: no session → the sign-in; a
// session without admin access → the "no admin access" page, whatever the
// URL; a POST → the CSRF checks first.
func (c *Console) admin(f pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		s := c.sessionOf(r)
		if s == nil {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/console/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.errorPage(w, r, nil, http.StatusUnauthorized, "Signed out", "Your session has ended; nothing was changed. Sign in again and repeat the change.")
			return
		}
		if !s.admin {
			c.noAccess(w, r, s)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if why := c.checkCSRF(r, s); why != "" {
				c.log.WarnContext(r.Context(), "console: refused a change", "reason", why, "admin", s.subject, "path", r.URL.Path)
				c.errorPage(w, r, s, http.StatusForbidden, "Refused", "This change was refused and nothing was changed: "+why+". Reload the page and submit the form again.")
				return
			}
		}
		f(w, r, s)
	})
}

// principal is the operator a session's changes are audited as.
func (s *session) principal() admin.Principal {
	return admin.Principal{Subject: s.subject, Issuer: s.issuer, Via: admin.ViaConsole, RequestID: "con_" + randomID(9)}
}
