package auth

import (
	"fmt"
	"slices"
	"strings"
)

// An identity provider signs ID tokens (for the client: who logged in) with
// the same keys as access tokens (for resource servers: what the bearer may
// do). An ID token must never be accepted as an access token. Verify refuses
// every token that says it is an ID token (checkHeader, checkKind); what an
// IdP's access tokens look like beyond that is pinned with Options.TokenType
// (the JOSE header typ) and ClaimMap.RequiredClaims (payload claims).

// mediaType normalises a JOSE typ for comparison: RFC 7515 §4.1.9 makes it
// a case-insensitive media type whose "application/" prefix may be left out.
func mediaType(typ string) string {
	t := strings.ToLower(strings.TrimSpace(typ))
	return strings.TrimPrefix(t, "application/")
}

// isIDTokenType reports whether the normalised typ t marks an ID token
// ("id_token", "id+jwt", "id_token+jwt", ...). Access tokens say "at+jwt"
// (RFC 9068) or the generic "JWT".
func isIDTokenType(t string) bool {
	switch strings.TrimSuffix(t, "+jwt") {
	case "id", "id_token", "idtoken", "id-token":
		return true
	}
	return false
}

// CheckTokenType reports why typ cannot be Options.TokenType, or nil: it
// must be a media type such as "at+jwt" (an "application/" prefix is
// allowed) and not the type of ID tokens. NewVerifier applies it; a
// configuration loader may too, to name its own key in the error.
func CheckTokenType(typ string) error {
	t := mediaType(typ)
	switch {
	case t == "" || strings.ContainsAny(t, " \t\r\n,;"):
		return fmt.Errorf("%q is not a media type such as \"at+jwt\"", typ)
	case isIDTokenType(t):
		return fmt.Errorf("%q is the type of ID tokens, which are never accepted: name the typ of the access tokens, such as \"at+jwt\"", typ)
	}
	return nil
}

// maxCritShown bounds how many crit names an error message repeats.
const maxCritShown = 4

// checkHeader refuses a JOSE header this verifier must not accept, before
// any key is looked up: a crit parameter (RFC 7515 §4.1.11: a JWS naming
// extensions the recipient does not understand must be refused, and this
// verifier understands none), a typ that is not a string or names an ID
// token, and, with Options.TokenType set, any other typ.
func (v *Verifier) checkHeader(h map[string]any) error {
	if c, present := h["crit"]; present {
		return critError(c)
	}
	raw, present := h["typ"]
	if !present {
		if v.tokenType != "" {
			return invalid(nil, "token header has no typ: this server accepts only %s access tokens", quote(v.tokenType))
		}
		return nil
	}
	typ, ok := raw.(string)
	if !ok {
		return invalid(nil, "token header typ is not a string")
	}
	t := mediaType(typ)
	if isIDTokenType(t) {
		return invalid(nil, "token is an ID token (header typ %s): send an access token", quote(typ))
	}
	if v.tokenType != "" && t != v.tokenType {
		return invalid(nil, "token type %s is not accepted: this server accepts only %s access tokens", quote(typ), quote(v.tokenType))
	}
	return nil
}

func critError(c any) error {
	list, ok := c.([]any)
	names := make([]string, 0, min(len(list), maxCritShown))
	for _, e := range list {
		s, isString := e.(string)
		if !isString || s == "" {
			ok = false
			break
		}
		if len(names) < maxCritShown {
			names = append(names, quote(s))
		}
	}
	if !ok || len(list) == 0 {
		return invalid(nil, "token header crit is malformed: it must be a non-empty array of header parameter names (RFC 7515 §4.1.11)")
	}
	if len(list) > maxCritShown {
		names = append(names, fmt.Sprintf("and %d more", len(list)-maxCritShown))
	}
	return invalid(nil, "token header crit names extensions this server does not support: %s", strings.Join(names, ", "))
}

// requiredClaim is one entry of ClaimMap.RequiredClaims.
type requiredClaim struct{ name, value string }

// sortedRequired returns m as a list in name order, so that the first
// mismatch reported does not depend on map iteration.
func sortedRequired(m map[string]string) []requiredClaim {
	out := make([]requiredClaim, 0, len(m))
	for n, val := range m {
		out = append(out, requiredClaim{n, val})
	}
	slices.SortFunc(out, func(a, b requiredClaim) int { return strings.Compare(a.name, b.name) })
	return out
}

// checkKind refuses a verified token whose payload says it is an ID token
// (Cognito token_use "id", Keycloak typ "ID") or that lacks a required
// claim value.
func (v *Verifier) checkKind(claims map[string]any) error {
	if use, _ := claims["token_use"].(string); use == "id" {
		return invalid(nil, "token is an ID token (token_use \"id\"): send an access token")
	}
	if typ, _ := claims["typ"].(string); strings.EqualFold(typ, "id") {
		return invalid(nil, "token is an ID token (typ claim %s): send an access token", quote(typ))
	}
	for _, rc := range v.required {
		got, present, isString := v.claims.lookupString(claims, rc.name)
		switch {
		case !present:
			return invalid(nil, "token has no '%s' claim: this server accepts only tokens with %s = %s", rc.name, rc.name, quote(rc.value))
		case !isString:
			return invalid(nil, "token claim '%s' is not a string: this server accepts only tokens with %s = %s", rc.name, rc.name, quote(rc.value))
		case got != rc.value:
			return invalid(nil, "token claim '%s' is %s: this server accepts only tokens with %s = %s", rc.name, quote(got), rc.name, quote(rc.value))
		}
	}
	return nil
}
