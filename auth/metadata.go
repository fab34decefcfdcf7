package auth

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// ResourceMetadata is an OAuth 2.0 Protected Resource Metadata document
// (RFC 9728), which MCP clients fetch to find the authorization server for
// this server. Serve it at MetadataURL(Resource).
type ResourceMetadata struct {
	// Resource is this server's resource identifier (its URL, e.g.
	// https://mcp.example.com/mcp); tokens must carry it as aud.
	Resource string `json:"resource"`
	// AuthorizationServers are the issuer URLs of the identity providers
	// whose tokens are accepted. nil is served as [].
	AuthorizationServers []string `json:"authorization_servers"`
	// ScopesSupported are the scopes tools check; omitted when empty.
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	// BearerMethodsSupported: nil is served as ["header"], the only method
	// BearerToken accepts.
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	// ResourceName is a human-readable name; omitted when empty.
	ResourceName string `json:"resource_name,omitempty"`
	// ResourceDocumentation is a URL of documentation; omitted when empty.
	ResourceDocumentation string `json:"resource_documentation,omitempty"`
}

var (
	_ http.Handler = ResourceMetadata{}
	_ http.Handler = (*DevIssuer)(nil)
	_ error        = (*TokenError)(nil)
	_ error        = (*ClaimError)(nil)
)

// ServeHTTP answers GET and HEAD with the document as application/json,
// readable from any origin (Access-Control-Allow-Origin: *), and OPTIONS
// (CORS preflight) with 204. Other methods get 405.
func (m ResourceMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
		return
	}
	if m.AuthorizationServers == nil {
		m.AuthorizationServers = []string{}
	}
	if m.BearerMethodsSupported == nil {
		m.BearerMethodsSupported = []string{"header"}
	}
	body, err := json.Marshal(m)
	if err != nil {
		http.Error(w, "encoding resource metadata failed", http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=3600")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// MetadataURL returns where RFC 9728 §3.1 places the metadata of resource:
// "/.well-known/oauth-protected-resource" inserted between the host and the
// path (a trailing "/" of the path dropped), so https://h/mcp →
// https://h/.well-known/oauth-protected-resource/mcp and https://h →
// https://h/.well-known/oauth-protected-resource. A query is kept, a
// fragment dropped. It returns "" when resource is not an absolute URL.
func MetadataURL(resource string) string {
	u, err := url.Parse(resource)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	res := u.Scheme + "://" + u.Host + "/.well-known/oauth-protected-resource" + path
	if u.RawQuery != "" {
		res += "?" + u.RawQuery
	}
	return res
}

// Challenge returns a WWW-Authenticate value for the Bearer scheme (RFC 6750
// §3, with RFC 9728's resource_metadata):
//
//	Bearer error="invalid_token", error_description="token expired at …", scope="docs:read", resource_metadata="https://…"
//
// Empty parameters are omitted (all empty gives "Bearer"). Inside the
// quoted strings `"` and `\` are escaped and control characters (CR, LF,
// ...) removed, so untrusted text cannot break the header.
func Challenge(code, description, scope, metadataURL string) string {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	param := func(name, val string) {
		if val == "" {
			return
		}
		b.WriteString(sep)
		sep = ", "
		b.WriteString(name)
		b.WriteString(`="`)
		for i := 0; i < len(val); i++ {
			c := val[i]
			switch {
			case c < 0x20 || c == 0x7f:
				continue
			case c == '"' || c == '\\':
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
	}
	param("error", code)
	param("error_description", description)
	param("scope", scope)
	param("resource_metadata", metadataURL)
	return b.String()
}
