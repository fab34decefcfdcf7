package auth

import (
	"net/http"
	"strings"
)

// BearerToken returns the token of the request's "Authorization: Bearer
// <token>" header (RFC 6750 §2.1; the scheme is matched case-insensitively).
// No Authorization header → ErrMissingToken. Another scheme (Basic, ...),
// an empty value, more than one token, characters outside token68, or the
// header sent twice → ErrMalformedHeader. Tokens in query strings or form
// bodies are never looked at.
func BearerToken(h http.Header) (string, error) {
	vals := h.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", ErrMissingToken
	case 1:
	default:
		return "", ErrMalformedHeader
	}
	scheme, rest, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrMalformedHeader
	}
	tok := strings.TrimLeft(rest, " ")
	if !isToken68(tok) {
		return "", ErrMalformedHeader
	}
	return tok, nil
}

// isToken68 reports whether s matches RFC 7235's
// token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	if s == "" {
		return false
	}
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
