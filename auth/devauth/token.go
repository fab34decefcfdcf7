package devauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	"github.com/tenantmcp/tenantmcp/auth"
)

// tokenResponse is RFC 6749 §5.1's answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
	IDToken     string `json:"id_token,omitempty"`
}

// serveToken is the token endpoint: the authorization code grant with
// PKCE, for public clients (client_id, no secret).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if !cors(w, r, "POST, OPTIONS") {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST with an application/x-www-form-urlencoded body")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "send the parameters as Content-Type: application/x-www-form-urlencoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body could not be read as a form")
		return
	}
	f := r.PostForm
	for k, v := range f {
		if len(v) > 1 && k != "resource" {
			oauthError(w, http.StatusBadRequest, "invalid_request", k+" is given more than once")
			return
		}
	}
	switch gt := f.Get("grant_type"); {
	case gt == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required; use authorization_code")
		return
	case gt != grantAuthorizationCode:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only the authorization_code grant is supported")
		return
	}

	clientID := f.Get("client_id")
	basicID, secret, basic := r.BasicAuth()
	switch {
	case basic && clientID != "" && basicID != clientID:
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_id differs from the client in the Authorization header")
		return
	case basic:
		clientID = basicID
	}
	if secret != "" || f.Get("client_secret") != "" {
		clientError(w, basic, "this server issues no client secrets: authenticate as a public client (token_endpoint_auth_method none) with client_id alone")
		return
	}
	if clientID == "" {
		clientError(w, basic, "client_id is required")
		return
	}
	if s.client(clientID) == nil {
		clientError(w, basic, "the client is not registered here (registrations are kept in memory: after a restart of tenantmcp dev, register again)")
		return
	}

	code, redirectURI, verifier := f.Get("code"), f.Get("redirect_uri"), f.Get("code_verifier")
	switch {
	case code == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "code is required")
		return
	case redirectURI == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri is required: the one of the authorization request")
		return
	case verifier == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "code_verifier is required (PKCE)")
		return
	case !codeVerifierRE.MatchString(verifier):
		oauthError(w, http.StatusBadRequest, "invalid_request", "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636)")
		return
	}
	for _, res := range f["resource"] {
		if res != s.resource {
			oauthError(w, http.StatusBadRequest, "invalid_target", "resource must be "+s.resource+", the MCP server these tokens are for")
			return
		}
	}

	// The code is spent by any attempt to redeem it, right or wrong.
	now := s.opts.Now()
	s.mu.Lock()
	g := s.codes[code]
	delete(s.codes, code)
	s.mu.Unlock()
	const spent = "the code is unknown, expired or already used: start a new authorization"
	switch {
	case g == nil || !now.Before(g.expires):
		oauthError(w, http.StatusBadRequest, "invalid_grant", spent)
		return
	case g.clientID != clientID:
		oauthError(w, http.StatusBadRequest, "invalid_grant", spent)
		s.log.WarnContext(r.Context(), "devauth: a client presented another client's code; the code is void", "client_id", clientID)
		return
	case g.redirectURI != redirectURI:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri differs from the one of the authorization request; the code is void, start a new authorization")
		return
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(g.challenge)) != 1 {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge (PKCE S256); the code is void, start a new authorization")
		return
	}

	tok, err := s.iss.Mint(auth.TokenRequest{Audience: s.resource, TenantID: g.tenant.ExternalID, TenantName: g.tenant.Name,
		UserID: g.user, Scopes: g.scopes, TTL: s.opts.TokenTTL})
	if err != nil {
		s.log.ErrorContext(r.Context(), "devauth: mint access token", "err", err)
		oauthError(w, http.StatusInternalServerError, "server_error", "minting the token failed; see the server's log")
		return
	}
	resp := tokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int64(s.opts.TokenTTL.Seconds()), Scope: strings.Join(g.scopes, " ")}
	if g.openid {
		extra := map[string]any{"azp": clientID}
		if g.nonce != "" {
			extra["nonce"] = g.nonce
		}
		if resp.IDToken, err = s.iss.Mint(auth.TokenRequest{Audience: clientID, TenantID: g.tenant.ExternalID, TenantName: g.tenant.Name,
			UserID: g.user, TTL: s.opts.TokenTTL, Extra: extra}); err != nil {
			s.log.ErrorContext(r.Context(), "devauth: mint ID token", "err", err)
			oauthError(w, http.StatusInternalServerError, "server_error", "minting the ID token failed; see the server's log")
			return
		}
	}
	s.log.InfoContext(r.Context(), "devauth: token issued", "client_id", clientID, "tenant", g.tenant.ExternalID, "user", g.user, "admin", g.admin)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	_ = json.NewEncoder(w).Encode(resp)
}

// clientError answers invalid_client: 401, with a Basic challenge when the
// client tried the Authorization header (RFC 6749 §5.2).
func clientError(w http.ResponseWriter, basic bool, description string) {
	status := http.StatusBadRequest
	if basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="tenantmcp dev"`)
		status = http.StatusUnauthorized
	}
	oauthError(w, status, "invalid_client", description)
}
