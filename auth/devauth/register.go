package devauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// client is a registered client: public (no secret), authorization code
// with PKCE only.
type client struct {
	ID           string
	Name         string
	RedirectURIs []string
	Scope        string
	IssuedAt     time.Time
}

// Limits on what a registration may hold.
const (
	maxRedirectURIs   = 10
	maxRedirectURILen = 2000
	maxClientNameLen  = 200
	maxRequestBody    = 64 << 10
)

// checkRedirectURI enforces the redirect URI rules: an absolute http(s)
// URL without fragment or user information, http only for a loopback host
// (RFC 8252 §7.3, OAuth 2.1 §2.3.1).
func checkRedirectURI(raw string) error {
	if raw == "" {
		return errors.New("redirect URI is empty")
	}
	if len(raw) > maxRedirectURILen {
		return fmt.Errorf("redirect URI is longer than %d bytes", maxRedirectURILen)
	}
	if strings.Contains(raw, "#") {
		return fmt.Errorf("redirect URI %q has a fragment; remove the #…", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("redirect URI %q is not a URL", raw)
	}
	if !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("redirect URI %q is not an absolute URL with a host", raw)
	}
	if u.User != nil {
		return fmt.Errorf("redirect URI %q carries a user name or password", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("redirect URI %q uses http with host %q: http is allowed only for loopback hosts (127.0.0.1, [::1], localhost); use https", raw, u.Hostname())
		}
	default:
		return fmt.Errorf("redirect URI %q has scheme %q: use https, or http on a loopback host", raw, u.Scheme)
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// registration is the RFC 7591 client metadata this server reads; other
// members are ignored.
type registration struct {
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name"`
	Scope                   string   `json:"scope"`
}

// registered is the registration response (RFC 7591 §3.2.1).
type registered struct {
	ClientID                string   `json:"client_id"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
}

// serveRegister is dynamic client registration (RFC 7591). Every client
// is registered as a public client (token_endpoint_auth_method "none",
// replacing any other method asked for, as §3.2.1 allows) for the
// authorization code grant.
func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	if !cors(w, r, "POST, OPTIONS") {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST with a JSON client metadata document (RFC 7591)")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "send the client metadata as Content-Type: application/json")
		return
	}
	var reg registration
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err := dec.Decode(&reg); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "the body is not a JSON client metadata document: "+err.Error())
		return
	}
	if code, problem := checkRegistration(&reg); problem != "" {
		oauthError(w, http.StatusBadRequest, code, problem)
		return
	}
	c := &client{ID: "dev-" + randomToken()[:22], Name: reg.ClientName,
		RedirectURIs: slices.Clone(reg.RedirectURIs), Scope: reg.Scope, IssuedAt: s.opts.Now()}
	s.mu.Lock()
	s.clients[c.ID] = c
	s.order = append(s.order, c.ID)
	for len(s.order) > s.opts.MaxClients {
		delete(s.clients, s.order[0])
		s.order = s.order[1:]
	}
	s.mu.Unlock()
	s.log.InfoContext(r.Context(), "devauth: client registered", "client_id", c.ID, "client_name", c.Name, "redirect_uris", c.RedirectURIs)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(registered{
		ClientID: c.ID, ClientIDIssuedAt: c.IssuedAt.Unix(), RedirectURIs: c.RedirectURIs,
		TokenEndpointAuthMethod: authMethodNone, GrantTypes: []string{grantAuthorizationCode},
		ResponseTypes: []string{"code"}, ClientName: c.Name, Scope: c.Scope,
	})
}

// checkRegistration returns the RFC 7591 error code and description of
// the first problem with reg, or "" if there is none.
func checkRegistration(reg *registration) (code, problem string) {
	if len(reg.RedirectURIs) == 0 {
		return "invalid_redirect_uri", "redirect_uris is required: the URIs the client receives codes at"
	}
	if len(reg.RedirectURIs) > maxRedirectURIs {
		return "invalid_redirect_uri", fmt.Sprintf("redirect_uris has %d entries; at most %d are kept", len(reg.RedirectURIs), maxRedirectURIs)
	}
	for _, u := range reg.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return "invalid_redirect_uri", err.Error()
		}
	}
	if len(reg.GrantTypes) > 0 && !slices.Contains(reg.GrantTypes, grantAuthorizationCode) {
		return "invalid_client_metadata", "grant_types must include authorization_code, the only grant this server supports"
	}
	if len(reg.ResponseTypes) > 0 && !slices.Contains(reg.ResponseTypes, "code") {
		return "invalid_client_metadata", `response_types must include "code", the only response type this server supports`
	}
	if utf8.RuneCountInString(reg.ClientName) > maxClientNameLen || strings.ContainsFunc(reg.ClientName, isControl) {
		return "invalid_client_metadata", fmt.Sprintf("client_name must be at most %d characters without control characters", maxClientNameLen)
	}
	if len(reg.Scope) > 1000 || strings.ContainsFunc(reg.Scope, isControl) {
		return "invalid_client_metadata", "scope must be at most 1000 characters without control characters"
	}
	return "", ""
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// client returns the registered client id, or nil.
func (s *Server) client(id string) *client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clients[id]
}

// oauthError answers an RFC 6749 §5.2 (or RFC 7591 §3.2.2) error.
func oauthError(w http.ResponseWriter, status int, code, description string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	// The description may echo what the client sent: never let a browser
	// read it as anything but JSON (this origin is the console's in dev).
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
