package auth_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/internal/idptest"
)

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc.def.ghi", "bearer x", "Basic dXNlcg==", "", "Bearer", "Bearer a b", "Bearer  a==", "Bearer a=b", "\x00Bearer a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{"Authorization": []string{v}}
		tok, err := auth.BearerToken(h)
		if err != nil {
			if tok != "" || !errors.Is(err, auth.ErrMalformedHeader) {
				t.Fatalf("BearerToken(%q) = %q, %v", v, tok, err)
			}
			return
		}
		if tok == "" || strings.ContainsAny(tok, " \t\r\n,\"") || !strings.HasSuffix(strings.TrimSpace(v), tok) {
			t.Fatalf("BearerToken(%q) = %q: not a token68 taken from the header", v, tok)
		}
		if !strings.EqualFold(strings.TrimSpace(v)[:6], "bearer") {
			t.Fatalf("BearerToken(%q) accepted another scheme", v)
		}
	})
}

func FuzzLookup(f *testing.F) {
	f.Add(`{"org_id":"a","organization":{"id":"b"},"a.b":1}`, "organization.id")
	f.Add(`{"custom:tenant_id":"t"}`, "custom:tenant_id")
	f.Add(`{"a":{"b":{"c":[1,2]}}}`, "a.b.c")
	f.Add(`{"a":null}`, "a..")
	f.Fuzz(func(t *testing.T, doc, name string) {
		var claims map[string]any
		if json.Unmarshal([]byte(doc), &claims) != nil {
			return
		}
		var m auth.ClaimMap
		got, ok := m.Lookup(claims, name)
		if lit, has := claims[name]; has && name != "" {
			if !ok || !cmp.Equal(got, lit) {
				t.Fatalf("Lookup(%q) = %v, %v; the literal claim is %v", name, got, ok, lit)
			}
		}
		if !ok && got != nil {
			t.Fatalf("Lookup(%q) returned %v with ok=false", name, got)
		}
		if ok && !strings.Contains(name, ".") {
			if _, has := claims[name]; !has {
				t.Fatalf("Lookup(%q) found a value that is not a top-level claim", name)
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	idp := idptest.New(f)
	cm, _ := auth.Preset("auth0")
	v, err := auth.NewVerifier(f.Context(), &auth.Options{
		Issuer: idp.Issuer(), Audience: resource, JWKS: idp.JWKS(), Claims: cm,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(v.Close)
	c := idp.Auth0Claims(resource, "org_1", "Org", "user", "docs:read")
	for _, s := range []string{
		idp.Sign(c), idp.SignES256(c), idp.NoneToken(c), idp.HS256WithPublicKey(c),
		idp.ForgedKid("x", c), idp.TamperedSignature(c), "", "a.b.c", "..", "e30.e30.", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA",
		// JOSE header typ and crit (RFC 7515 §4.1.9, §4.1.11), ID tokens.
		idp.SignWithHeader(c, map[string]any{"typ": "at+jwt"}), idp.SignWithHeader(c, map[string]any{"typ": "id_token"}),
		idp.SignWithHeader(c, map[string]any{"typ": nil}), idp.SignWithHeader(c, map[string]any{"typ": 1}),
		idp.SignWithHeader(c, map[string]any{"crit": []any{"b64"}, "b64": false}), idp.SignWithHeader(c, map[string]any{"crit": []any{}}),
		idp.SignWithHeader(c, map[string]any{"crit": "exp"}), idp.Sign(idp.Auth0IDClaims("client", "org_1", "user")),
		idp.Sign(idp.CognitoIDClaims(resource, "org_1", "Org", "user")),
		// The refusals server.TestRefusals and tenantmcp verify send, and
		// tenant claims of the wrong shape (spoofing attempts).
		idp.Sign(with(c, map[string]any{"iss": "https://evil.example/"})), idp.Sign(with(c, map[string]any{"aud": "https://other.example/mcp"})),
		idp.Sign(with(c, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})), idp.Sign(with(c, map[string]any{"exp": nil})),
		idp.Sign(with(c, map[string]any{"nbf": time.Now().Add(time.Hour).Unix()})), idp.Sign(with(c, map[string]any{"org_id": nil})),
		idp.Sign(with(c, map[string]any{"org_id": ""})), idp.Sign(with(c, map[string]any{"org_id": []any{"org_1", "org_2"}})),
		idp.Sign(with(c, map[string]any{"org_id": map[string]any{"id": "org_2"}})), idp.Sign(with(c, map[string]any{"org_id": 7})),
		idp.Sign(with(c, map[string]any{"org_id": "../org_2"})), idp.Sign(with(c, map[string]any{"sub": ""})),
		idp.Sign(with(c, map[string]any{"aud": []any{}})),
		idp.SignWithoutKid(c),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := v.Verify(t.Context(), tok)
		if (id == nil) == (err == nil) {
			t.Fatalf("Verify(%q) = %v, %v: want exactly one of identity and error", tok, id, err)
		}
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidToken) && !errors.Is(err, auth.ErrMissingTenantClaim) && !errors.Is(err, auth.ErrKeysUnavailable) {
				t.Fatalf("Verify(%q): unclassified error %v", tok, err)
			}
			if len(tok) >= 16 && strings.Contains(err.Error(), tok) {
				t.Fatalf("error text %q contains the token", err)
			}
			return
		}
		if id.TenantID == "" || id.UserID == "" {
			t.Fatalf("Verify(%q) accepted a token without tenant or user: %+v", tok, id)
		}
	})
}

// TestBearerTokenCharacters: every byte is tried inside a token and as
// its padding; exactly RFC 7235's token68 characters are accepted, and
// "=" only as trailing padding.
func TestBearerTokenCharacters(t *testing.T) {
	const token68 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
	for c := range 256 {
		ch := string(rune(c))
		if c >= 0x80 {
			ch = string([]byte{byte(c)})
		}
		_, err := auth.BearerToken(http.Header{"Authorization": []string{"Bearer a" + ch + "b"}})
		if want := strings.Contains(token68, ch) && c < 0x80; (err == nil) != want {
			t.Errorf("byte %#02x inside a token: err = %v, want accepted %v", c, err, want)
		}
	}
	for _, tc := range []struct {
		tok string
		ok  bool
	}{{"a==", true}, {"a=", true}, {"=", false}, {"a=b", false}, {"a=\x80", false}} {
		if _, err := auth.BearerToken(http.Header{"Authorization": []string{"Bearer " + tc.tok}}); (err == nil) != tc.ok {
			t.Errorf("token %q: err = %v, want accepted %v", tc.tok, err, tc.ok)
		}
	}
}
