package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
)

// Checks of the HTTP request itself, made before anything else: method,
// Origin, Host and header values.

const headerSessionID = "Mcp-Session-Id"

// methodError refuses an HTTP method; allow lists the methods that are.
type methodError struct{ allow string }

func (e *methodError) Error() string {
	return "method not allowed: use " + e.allow
}

func (s *Server) allowedMethods() string {
	if s.sessions != nil {
		return "POST, GET, DELETE"
	}
	return "POST"
}

// headerError refuses an MCP header whose value the protocol forbids.
type headerError struct{ name string }

func (e *headerError) Error() string {
	return fmt.Sprintf("header %s: value must be visible ASCII (encode other values as =?base64?…?=)", e.name)
}

// checkHeaderValues refuses MCP headers (Mcp-*) whose values are not
// visible ASCII: the 2026-07-28 transport requires non-ASCII values to be
// Base64-wrapped, and net/http lets raw bytes above 0x7f through.
func checkHeaderValues(h http.Header) error {
	for name, values := range h {
		if len(name) < 4 || !strings.EqualFold(name[:4], "mcp-") {
			continue
		}
		for _, v := range values {
			for i := 0; i < len(v); i++ {
				if c := v[i]; c >= 0x7f || (c < 0x20 && c != '\t') {
					return &headerError{name: name}
				}
			}
		}
	}
	return nil
}

// isModern reports whether a request speaks the 2026-07-28 revision (or
// later): by its MCP-Protocol-Version header or its _meta.
func isModern(h http.Header, body []byte) bool {
	if mcp.IsModernProtocol(h.Get(mcp.HeaderProtocolVersion)) {
		return true
	}
	var m struct {
		Params struct {
			Meta *mcp.Meta `json:"_meta"`
		} `json:"params"`
	}
	if len(body) == 0 || !bytes.Contains(body, []byte("_meta")) || json.Unmarshal(body, &m) != nil {
		return false
	}
	return mcp.IsModernProtocol(m.Params.Meta.ProtocolVersion())
}

// originPolicy decides which browser origins may call the server. A
// request without an Origin header (any non-browser client) is not
// affected; one with an Origin that is not allowed gets 403, as the
// Streamable HTTP transport requires.
type originPolicy struct {
	any      bool
	loopback bool
	exact    map[string]bool
}

func newOriginPolicy(resourceURL string, allowed []string, loopback bool) (originPolicy, error) {
	p := originPolicy{loopback: loopback, exact: map[string]bool{}}
	if u, err := url.Parse(resourceURL); err == nil && u.Host != "" {
		p.exact[strings.ToLower(u.Scheme+"://"+u.Host)] = true // same origin
	}
	for _, o := range allowed {
		if o == "*" {
			p.any = true
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return p, fmt.Errorf("server: allowed origin %q: want scheme://host[:port] or \"*\"", o)
		}
		p.exact[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	return p, nil
}

func (p originPolicy) allowed(origin string) bool {
	if origin == "" || p.any || p.exact[strings.ToLower(origin)] {
		return true
	}
	if p.loopback {
		if u, err := url.Parse(origin); err == nil && (u.Scheme == "http" || u.Scheme == "https") && isLoopback(u.Host) {
			return true
		}
	}
	return false
}
