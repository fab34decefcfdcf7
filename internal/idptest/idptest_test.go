package idptest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/internal/idptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func fetchJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// keyfuncFor returns a jwt.Keyfunc over the JWK Set the IdP serves now.
func keyfuncFor(t *testing.T, idp *idptest.IdP) jwt.Keyfunc {
	t.Helper()
	var set jwkset.JWKSMarshal
	fetchJSON(t, idp.JWKSURL(), &set)
	store, err := set.ToStorage()
	if err != nil {
		t.Fatalf("served JWK Set does not parse: %v", err)
	}
	return func(tok *jwt.Token) (any, error) {
		k, err := store.KeyRead(context.Background(), tok.Header["kid"].(string))
		if err != nil {
			return nil, err
		}
		return k.Key(), nil
	}
}

func parse(tok string, kf jwt.Keyfunc, algs ...string) error {
	_, err := jwt.NewParser(jwt.WithValidMethods(algs)).Parse(tok, kf)
	return err
}

func TestSignedTokensVerifyAgainstServedJWKS(t *testing.T) {
	t.Parallel()
	idp := idptest.New(t)
	kf := keyfuncFor(t, idp)
	c := idp.GenericClaims("aud", "sub", nil, nil)
	if err := parse(idp.Sign(c), kf, "RS256"); err != nil {
		t.Errorf("RS256: %v", err)
	}
	if err := parse(idp.SignES256(c), kf, "ES256"); err != nil {
		t.Errorf("ES256: %v", err)
	}
	if err := parse(idp.TamperedSignature(c), kf, "RS256"); err == nil {
		t.Error("tampered signature verified")
	}
	if err := parse(idp.ForgedKid(idp.RSAKid(), c), kf, "RS256"); err == nil {
		t.Error("token of the forged key verified")
	}
	// The attack tokens are what they claim to be.
	hs := idp.HS256WithPublicKey(c)
	if _, err := jwt.Parse(hs, func(*jwt.Token) (any, error) { return idp.PublicKeyPEM(), nil }, jwt.WithValidMethods([]string{"HS256"})); err != nil {
		t.Errorf("HS256 token is not MACed with the public key PEM: %v", err)
	}
	none := idp.NoneToken(c)
	if _, err := jwt.Parse(none, func(*jwt.Token) (any, error) { return jwt.UnsafeAllowNoneSignatureType, nil }); err != nil {
		t.Errorf("none token: %v", err)
	}
	if !strings.HasSuffix(none, ".") {
		t.Errorf("none token has a signature: %s", none)
	}
}

func TestRotateAndFetchCount(t *testing.T) {
	t.Parallel()
	idp := idptest.New(t)
	oldRSA, oldEC := idp.RSAKid(), idp.ECKid()
	old := idp.Sign(idp.GenericClaims("aud", "sub", nil, nil))
	if n := idp.JWKSFetches(); n != 0 {
		t.Fatalf("fetches before any GET = %d", n)
	}
	idp.Rotate()
	if idp.RSAKid() == oldRSA || idp.ECKid() == oldEC {
		t.Fatal("Rotate kept a kid")
	}
	kf := keyfuncFor(t, idp)
	if err := parse(old, kf, "RS256"); err == nil {
		t.Error("token of the retired key verified against the rotated JWK Set")
	}
	if err := parse(idp.Sign(idp.GenericClaims("aud", "sub", nil, nil)), kf, "RS256"); err != nil {
		t.Errorf("token of the new key: %v", err)
	}
	if n := idp.JWKSFetches(); n != 1 {
		t.Errorf("JWKSFetches = %d, want 1", n)
	}
	idp.SetUnavailable(true)
	resp, err := http.Get(idp.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("unavailable JWKS answered %d", resp.StatusCode)
	}
}

func TestOpenIDConfigurationAndIssuer(t *testing.T) {
	t.Parallel()
	idp := idptest.New(t)
	var cfg map[string]any
	fetchJSON(t, idp.URL+"/.well-known/openid-configuration", &cfg)
	if cfg["issuer"] != idp.URL+"/" || cfg["jwks_uri"] != idp.JWKSURL() {
		t.Errorf("configuration = %v", cfg)
	}
	idp.SetIssuer("{url}/pool_1")
	if got := idp.Issuer(); got != idp.URL+"/pool_1" {
		t.Errorf("Issuer after SetIssuer = %q", got)
	}
	c := idp.CognitoAccessClaims("client", "t1", "T", "s")
	if c["iss"] != idp.URL+"/pool_1" {
		t.Errorf("claims iss = %v", c["iss"])
	}
}

func TestClaimShapes(t *testing.T) {
	t.Parallel()
	idp := idptest.New(t)
	a := idp.Auth0Claims("https://api", "org_1", "Org", "auth0|u", "p1")
	if aud, ok := a["aud"].([]any); !ok || len(aud) != 2 || aud[0] != "https://api" || !strings.HasSuffix(aud[1].(string), "/userinfo") {
		t.Errorf("Auth0 aud = %v", a["aud"])
	}
	c := idp.CognitoAccessClaims("client", "t1", "T", "s", "a", "b")
	if _, ok := c["aud"]; ok || c["token_use"] != "access" || c["scope"] != "a b" || c["custom:tenant_id"] != "t1" {
		t.Errorf("Cognito claims = %v", c)
	}
	e := idp.EntraClaims("api://x", "tid-1", "oid-1", "R")
	if e["iss"] != idp.URL+"/tid-1/v2.0" || e["ver"] != "2.0" || e["tid"] != "tid-1" {
		t.Errorf("Entra claims = %v", e)
	}
	if idp.EntraIssuerTemplate() != idp.URL+"/{tenantid}/v2.0" {
		t.Errorf("EntraIssuerTemplate = %q", idp.EntraIssuerTemplate())
	}
	g := idp.GenericClaims("aud", "sub", []string{"x"}, map[string]any{"sub": "override"})
	if g["sub"] != "override" || g["scope"] != "x" {
		t.Errorf("Generic claims = %v", g)
	}
}

func TestIDTokenShapes(t *testing.T) {
	t.Parallel()
	idp := idptest.New(t)
	c := idp.CognitoIDClaims("client", "t1", "T", "s")
	if c["aud"] != "client" || c["token_use"] != "id" || c["custom:tenant_id"] != "t1" || c["scope"] != nil {
		t.Errorf("Cognito ID claims = %v", c)
	}
	a := idp.Auth0IDClaims("client", "org_1", "auth0|u")
	if a["aud"] != "client" || a["org_id"] != "org_1" || a["nonce"] == nil || a["scope"] != nil || a["permissions"] != nil {
		t.Errorf("Auth0 ID claims = %v", a)
	}
	e := idp.EntraIDClaims("client", "tid-1", "oid-1")
	if e["aud"] != "client" || e["iss"] != idp.URL+"/tid-1/v2.0" || e["ver"] != "2.0" || e["scp"] != nil || e["idtyp"] != nil {
		t.Errorf("Entra ID claims = %v", e)
	}
}

func TestSignWithHeader(t *testing.T) {
	t.Parallel()
	idp := idptest.New(t)
	kf := keyfuncFor(t, idp)
	c := idp.GenericClaims("aud", "sub", nil, nil)
	tok := idp.SignWithHeader(c, map[string]any{"typ": "at+jwt", "crit": []any{"exp"}})
	parsed, err := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"})).Parse(tok, kf)
	if err != nil {
		t.Fatalf("token signed with extra header fields: %v", err)
	}
	h := parsed.Header
	if h["typ"] != "at+jwt" || h["kid"] != idp.RSAKid() || len(h["crit"].([]any)) != 1 {
		t.Errorf("header = %v", h)
	}
	parsed, err = jwt.NewParser(jwt.WithValidMethods([]string{"RS256"})).Parse(idp.SignWithHeader(c, map[string]any{"typ": nil}), kf)
	if err != nil {
		t.Fatal(err)
	}
	if _, has := parsed.Header["typ"]; has {
		t.Errorf("typ nil did not remove typ: %v", parsed.Header)
	}
}
