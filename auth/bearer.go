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
// It runs on every request over a token of several hundred bytes, so the
// character class is a table lookup.
func isToken68(s string) bool {
	i := 0
	for i < len(s) && token68Char[s[i]] {
		i++
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

// token68Char[c] is whether c may appear in token68 before its "=" padding.
var token68Char = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", byte(c)) >= 0
	}
	return t
}()
