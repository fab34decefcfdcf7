package auth_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/internal/idptest"
)

// verdict is what one Verify call is expected to answer: "" = accepted,
// otherwise the exact error text of a refusal wrapping ErrInvalidToken.
type verdict struct {
	name  string
	token string
	want  string
}

func checkVerdicts(t *testing.T, b *bundle, tests []verdict) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := b.v.Verify(b.ctx, tt.token)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", id)
			}
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("errors.Is(%v, ErrInvalidToken) = false", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error text\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

// TestIDTokensRefused: an ID token, signed by the IdP with the keys of its
// access tokens, is never accepted as an access token, for every preset.
func TestIDTokensRefused(t *testing.T) {
	t.Parallel()
	const idToken = "token is an ID token (token_use \"id\"): send an access token"

	t.Run("cognito", func(t *testing.T) {
		t.Parallel()
		const clientID = "4f1c2app0client0id0example"
		b := setup(t, func(idp *idptest.IdP, o *auth.Options) {
			o.Issuer = idp.Issuer()
			o.Audience = clientID
			o.Claims = preset(t, "cognito")
		}, idptest.WithIssuer("{url}/us-east-1_Example"))
		idp := b.idp
		// The ID token's aud is the app client id, the very audience
		// Cognito access tokens are checked against (through client_id).
		id := idp.CognitoIDClaims(clientID, "tenant-42", "Globex", "9a7b-user")
		access := idp.CognitoAccessClaims(clientID, "tenant-42", "Globex", "9a7b-user", "docs/read")
		noUse := idp.CognitoAccessClaims(clientID, "tenant-42", "Globex", "9a7b-user")
		delete(noUse, "token_use")
		otherUse := idp.CognitoAccessClaims(clientID, "tenant-42", "Globex", "9a7b-user")
		otherUse["token_use"] = "refresh"
		checkVerdicts(t, b, []verdict{
			{"access token", idp.Sign(access), ""},
			{"ID token", idp.Sign(id), idToken},
			{"ID token with client_id", idp.Sign(with(id, map[string]any{"client_id": clientID})), idToken},
			{"no token_use", idp.Sign(noUse), `token has no 'token_use' claim: this server accepts only tokens with token_use = "access"`},
			{"other token_use", idp.Sign(otherUse), `token claim 'token_use' is "refresh": this server accepts only tokens with token_use = "access"`},
		})
	})

	t.Run("auth0", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		idp := b.idp
		// Auth0 ID tokens name the application's client id in aud, never
		// the API identifier: the audience check refuses them.
		checkVerdicts(t, b, []verdict{
			{"access token", idp.Sign(b.auth0("org_1")), ""},
			{"ID token", idp.Sign(idp.Auth0IDClaims("aZ1cl13ntId0000000000000000000", "org_1", "auth0|user-1")),
				`audience not accepted: expected "https://mcp.example.com/mcp"`},
			// Even one carrying our audience is refused when it says what
			// it is, in its header or (Cognito style) its payload.
			{"typ id_token", idp.SignWithHeader(b.auth0("org_1"), map[string]any{"typ": "id_token"}),
				`token is an ID token (header typ "id_token"): send an access token`},
			{"token_use id", idp.Sign(with(b.auth0("org_1"), map[string]any{"token_use": "id"})), idToken},
		})
	})

	t.Run("entra", func(t *testing.T) {
		t.Parallel()
		// One app registration for the client and the API: v2.0 ID and
		// access tokens both carry its client id in aud. The idtyp
		// optional claim (on access tokens only) tells them apart.
		const app = "7d2c0f4e-0000-4000-8000-00000000a11d"
		b := setup(t, func(idp *idptest.IdP, o *auth.Options) {
			o.Issuer = idp.EntraIssuerTemplate()
			o.Audience = app
			o.Claims = preset(t, "entra")
			o.Claims.RequiredClaims = map[string]string{"idtyp": "user"}
		})
		idp := b.idp
		const tid = "11111111-1111-1111-1111-111111111111"
		access := with(idp.EntraClaims(app, tid, "oid-1"), map[string]any{"idtyp": "user"})
		appOnly := with(idp.EntraClaims(app, tid, "oid-1"), map[string]any{"idtyp": "app"})
		checkVerdicts(t, b, []verdict{
			{"access token", idp.Sign(access), ""},
			{"ID token", idp.Sign(idp.EntraIDClaims(app, tid, "oid-1")),
				`token has no 'idtyp' claim: this server accepts only tokens with idtyp = "user"`},
			{"app-only token", idp.Sign(appOnly),
				`token claim 'idtyp' is "app": this server accepts only tokens with idtyp = "user"`},
			{"idtyp not a string", idp.Sign(with(access, map[string]any{"idtyp": 1})),
				`token claim 'idtyp' is not a string: this server accepts only tokens with idtyp = "user"`},
		})
	})

	t.Run("generic", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(_ *idptest.IdP, o *auth.Options) { o.Claims = preset(t, "generic") })
		idp := b.idp
		access := idp.GenericClaims(resource, "u1", []string{"docs:read"}, nil)
		var tests []verdict
		for _, typ := range []string{"id_token", "ID_TOKEN", "id+jwt", "application/id+jwt", "id_token+jwt", "idtoken"} {
			tests = append(tests, verdict{"header typ " + typ, idp.SignWithHeader(access, map[string]any{"typ": typ}),
				`token is an ID token (header typ "` + typ + `"): send an access token`})
		}
		for _, typ := range []string{"JWT", "at+jwt", "application/at+jwt", "jwt"} {
			tests = append(tests, verdict{"header typ " + typ, idp.SignWithHeader(access, map[string]any{"typ": typ}), ""})
		}
		tests = append(tests,
			verdict{"no typ", idp.SignWithHeader(access, map[string]any{"typ": nil}), ""},
			verdict{"typ not a string", idp.SignWithHeader(access, map[string]any{"typ": 7}), "token header typ is not a string"},
			// Keycloak marks its tokens in a payload typ claim.
			verdict{"Keycloak ID token", idp.Sign(with(access, map[string]any{"typ": "ID"})), `token is an ID token (typ claim "ID"): send an access token`},
			verdict{"Keycloak access token", idp.Sign(with(access, map[string]any{"typ": "Bearer"})), ""},
		)
		checkVerdicts(t, b, tests)
	})
}

// TestTokenTypePinned: with Options.TokenType only tokens of that JOSE typ
// are accepted; with Claims.RequiredClaims only tokens carrying those
// payload values.
func TestTokenTypePinned(t *testing.T) {
	t.Parallel()
	b := setup(t, func(_ *idptest.IdP, o *auth.Options) {
		o.TokenType = "application/AT+JWT"
		o.Claims.RequiredClaims = map[string]string{"ver": "2.0", "client.kind": "public"}
	})
	idp := b.idp
	good := with(b.auth0("org_1"), map[string]any{"ver": "2.0", "client": map[string]any{"kind": "public"}})
	checkVerdicts(t, b, []verdict{
		{"at+jwt", idp.SignWithHeader(good, map[string]any{"typ": "at+jwt"}), ""},
		{"application/at+jwt", idp.SignWithHeader(good, map[string]any{"typ": "application/at+jwt"}), ""},
		{"JWT", idp.SignWithHeader(good, map[string]any{"typ": "JWT"}),
			`token type "JWT" is not accepted: this server accepts only "at+jwt" access tokens`},
		{"no typ", idp.SignWithHeader(good, map[string]any{"typ": nil}),
			`token header has no typ: this server accepts only "at+jwt" access tokens`},
		{"ID token still says so", idp.SignWithHeader(good, map[string]any{"typ": "id+jwt"}),
			`token is an ID token (header typ "id+jwt"): send an access token`},
		{"wrong ver", idp.SignWithHeader(with(good, map[string]any{"ver": "1.0"}), map[string]any{"typ": "at+jwt"}),
			`token claim 'ver' is "1.0": this server accepts only tokens with ver = "2.0"`},
		// Claims are checked in name order, so the first missing one is
		// reported whatever the map order.
		{"nested claim missing", idp.SignWithHeader(with(good, map[string]any{"client": nil}), map[string]any{"typ": "at+jwt"}),
			`token has no 'client.kind' claim: this server accepts only tokens with client.kind = "public"`},
	})
}

// TestCritHeaderRefused: RFC 7515 §4.1.11 — a JWS whose crit names
// extensions the recipient does not understand is invalid. This verifier
// understands none, so any crit, well-formed or not, is refused, before a
// key is looked up (an unknown kid with crit costs no JWKS fetch).
func TestCritHeaderRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	idp := b.idp
	c := b.auth0("org_1")
	const malformed = "token header crit is malformed: it must be a non-empty array of header parameter names (RFC 7515 §4.1.11)"
	checkVerdicts(t, b, []verdict{
		{"no crit", idp.Sign(c), ""},
		{"crit exp", idp.SignWithHeader(c, map[string]any{"crit": []any{"exp"}, "exp": 1}),
			`token header crit names extensions this server does not support: "exp"`},
		{"crit b64", idp.SignWithHeader(c, map[string]any{"crit": []any{"b64"}, "b64": false}),
			`token header crit names extensions this server does not support: "b64"`},
		{"crit naming a registered header", idp.SignWithHeader(c, map[string]any{"crit": []any{"alg"}}),
			`token header crit names extensions this server does not support: "alg"`},
		{"many names", idp.SignWithHeader(c, map[string]any{"crit": []any{"a", "b", "c", "d", "e", "f"}}),
			`token header crit names extensions this server does not support: "a", "b", "c", "d", and 2 more`},
		{"empty array", idp.SignWithHeader(c, map[string]any{"crit": []any{}}), malformed},
		{"string", idp.SignWithHeader(c, map[string]any{"crit": "b64"}), malformed},
		{"number in array", idp.SignWithHeader(c, map[string]any{"crit": []any{"b64", 1}}), malformed},
		{"empty name", idp.SignWithHeader(c, map[string]any{"crit": []any{""}}), malformed},
		{"object", idp.SignWithHeader(c, map[string]any{"crit": map[string]any{"b64": true}}), malformed},
	})
	// JSON null: the parameter is present all the same. (Swapping the
	// header breaks the signature; crit is refused before it is checked.)
	_, rest, _ := strings.Cut(idp.Sign(c), ".")
	null := b64url(`{"alg":"RS256","typ":"JWT","kid":"`+idp.RSAKid()+`","crit":null}`) + "." + rest
	if _, err := b.v.Verify(b.ctx, null); !errors.Is(err, auth.ErrInvalidToken) || err.Error() != malformed {
		t.Errorf("crit null: err = %v, want %s", err, malformed)
	}

	before := idp.JWKSFetches()
	_, frest, _ := strings.Cut(idp.ForgedKid("forged-crit", c), ".")
	critForged := b64url(`{"alg":"RS256","typ":"JWT","kid":"forged-crit","crit":["exp"]}`) + "." + frest
	if _, err := b.v.Verify(b.ctx, critForged); !errors.Is(err, auth.ErrInvalidToken) || !strings.HasPrefix(err.Error(), "token header crit") {
		t.Errorf("crit with an unknown kid: err = %v, want the crit refusal", err)
	}
	if n := idp.JWKSFetches() - before; n != 0 {
		t.Errorf("a token refused for its crit header caused %d JWKS fetches", n)
	}
}

// with returns a copy of c with the entries of extra set (nil deletes).
func with(c, extra map[string]any) map[string]any {
	out := make(map[string]any, len(c)+len(extra))
	for k, v := range c {
		out[k] = v
	}
	for k, v := range extra {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
