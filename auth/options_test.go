package auth_test

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/internal/idptest"
)

type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestNewVerifierRejectsBadOptions(t *testing.T) {
	t.Parallel()
	jwks := []byte(`{"keys":[]}`)
	base := func() auth.Options {
		return auth.Options{Issuer: "https://idp.example.com/", Audience: resource, JWKS: jwks}
	}
	tests := []struct {
		name string
		edit func(o *auth.Options)
		want string
	}{
		{"no issuer", func(o *auth.Options) { o.Issuer = "" }, "Issuer is required"},
		{"no audience", func(o *auth.Options) { o.Audience = "" }, "Audience is required"},
		{"alg none", func(o *auth.Options) { o.Algorithms = []string{"RS256", "none"} }, `"none" is never accepted`},
		{"HS256", func(o *auth.Options) { o.Algorithms = []string{"HS256"} }, `"HS256" is never accepted`},
		{"hs512 lower case", func(o *auth.Options) { o.Algorithms = []string{"hs512"} }, `"hs512" is never accepted`},
		{"unknown alg", func(o *auth.Options) { o.Algorithms = []string{"RS1"} }, `"RS1" is not one of`},
		{"empty alg list", func(o *auth.Options) { o.Algorithms = []string{} }, "Algorithms is empty"},
		{"template without claim", func(o *auth.Options) { o.Issuer = "https://login.microsoftonline.com/{tenantid}/v2.0" }, "IssuerTenantClaim"},
		{"template without JWKS", func(o *auth.Options) {
			o.Issuer = "https://login.microsoftonline.com/{tenantid}/v2.0"
			o.Claims.IssuerTenantClaim = "tid"
			o.JWKS = nil
		}, "set JWKSURL"},
		{"template twice", func(o *auth.Options) {
			o.Issuer = "https://{tenantid}.example/{tenantid}"
			o.Claims.IssuerTenantClaim = "tid"
		}, "more than once"},
		{"ID token type", func(o *auth.Options) { o.TokenType = "id_token" }, `TokenType "id_token" is the type of ID tokens`},
		{"ID token type with prefix", func(o *auth.Options) { o.TokenType = "application/ID+JWT" }, `TokenType "application/ID+JWT" is the type of ID tokens`},
		{"token type with a space", func(o *auth.Options) { o.TokenType = "at jwt" }, `TokenType "at jwt" is not a media type`},
		{"required claim without name", func(o *auth.Options) { o.Claims.RequiredClaims = map[string]string{"": "x"} }, "RequiredClaims has an empty claim name"},
		{"required claim without value", func(o *auth.Options) { o.Claims.RequiredClaims = map[string]string{"idtyp": ""} }, `RequiredClaims["idtyp"] is empty`},
		{"bad static JWKS", func(o *auth.Options) { o.JWKS = []byte("not json") }, "not a usable JWK Set"},
		{"empty static JWKS", func(o *auth.Options) {}, "holds no usable keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base()
			tt.edit(&o)
			v, err := auth.NewVerifier(t.Context(), &o)
			if err == nil {
				v.Close()
				t.Fatalf("NewVerifier accepted the options")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	t.Run("all problems at once", func(t *testing.T) {
		_, err := auth.NewVerifier(t.Context(), &auth.Options{Algorithms: []string{"none"}})
		for _, want := range []string{"Issuer is required", "Audience is required", `"none"`} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v, want it to contain %q", err, want)
			}
		}
	})
	t.Run("nil options", func(t *testing.T) {
		if _, err := auth.NewVerifier(t.Context(), nil); err == nil {
			t.Error("NewVerifier(nil) succeeded")
		}
	})
}

func TestDerivedJWKSURL(t *testing.T) {
	t.Parallel()
	// No JWKSURL: derived from the issuer. The idptest server serves its
	// JWK Set at issuer + ".well-known/jwks.json".
	b := setup(t, func(_ *idptest.IdP, o *auth.Options) { o.JWKSURL = "" })
	if _, err := b.v.Verify(b.ctx, b.idp.Sign(b.auth0("org_1"))); err != nil {
		t.Fatalf("Verify with the derived JWKS URL: %v", err)
	}
	if b.idp.JWKSFetches() == 0 {
		t.Error("the derived JWKS URL was never fetched")
	}
}

func TestCustomHTTPClientAndAlgorithms(t *testing.T) {
	t.Parallel()
	var calls countingTransport
	b := setup(t, func(_ *idptest.IdP, o *auth.Options) {
		o.HTTPClient = &http.Client{Transport: &calls}
		o.Algorithms = []string{"ES256"}
	})
	if calls.n.Load() == 0 {
		t.Error("the given HTTPClient was not used")
	}
	if _, err := b.v.Verify(b.ctx, b.idp.SignES256(b.auth0("org_1"))); err != nil {
		t.Errorf("ES256 token: %v", err)
	}
	_, err := b.v.Verify(b.ctx, b.idp.Sign(b.auth0("org_1")))
	if !errors.Is(err, auth.ErrInvalidToken) || err.Error() != `signing algorithm "RS256" is not allowed (allowed: ES256)` {
		t.Errorf("RS256 token with only ES256 allowed: err = %v", err)
	}
}

func TestStaticJWKS(t *testing.T) {
	t.Parallel()
	idp := idptest.New(t)
	cm, _ := auth.Preset("auth0")
	newV := func(jwks []byte) *auth.Verifier {
		v, err := auth.NewVerifier(t.Context(), &auth.Options{Issuer: idp.Issuer(), Audience: resource, JWKS: jwks, Claims: cm})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(v.Close)
		return v
	}
	tok := idp.Sign(idp.Auth0Claims(resource, "org_1", "", "u1"))
	if _, err := newV(idp.JWKS()).Verify(t.Context(), tok); err != nil {
		t.Errorf("static JWKS: %v", err)
	}
	if n := idp.JWKSFetches(); n != 0 {
		t.Errorf("a static-JWKS verifier fetched over HTTP %d times", n)
	}
	// A key published for encryption never verifies a signature.
	enc := []byte(strings.ReplaceAll(string(idp.JWKS()), `"use":"sig"`, `"use":"enc"`))
	_, err := newV(enc).Verify(t.Context(), tok)
	if !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), "cannot verify a RS256 token") {
		t.Errorf("token verified by a \"use\":\"enc\" key: err = %v", err)
	}
}
