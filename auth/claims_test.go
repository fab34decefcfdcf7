package auth_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/internal/idptest"
)

func preset(t *testing.T, name string) auth.ClaimMap {
	t.Helper()
	cm, err := auth.Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

var ignoreClaims = cmpopts.IgnoreFields(auth.Identity{}, "Claims", "ExpiresAt")

func TestCognitoAccessToken(t *testing.T) {
	t.Parallel()
	const clientID = "4f1c2app0client0id0example"
	b := setup(t, func(idp *idptest.IdP, o *auth.Options) {
		o.Issuer = idp.Issuer()
		o.Audience = clientID // Cognito access tokens name the app client, not the resource
		o.Claims = preset(t, "cognito")
	}, idptest.WithIssuer("{url}/us-east-1_Example"))
	claims := b.idp.CognitoAccessClaims(clientID, "tenant-42", "Globex", "9a7b-user", "docs/read", "docs/write")
	if _, hasAud := claims["aud"]; hasAud {
		t.Fatal("Cognito access claims must not carry aud")
	}
	id, err := b.v.Verify(b.ctx, b.idp.Sign(claims))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := &auth.Identity{
		Issuer: b.idp.Issuer(), TenantID: "tenant-42", TenantName: "Globex",
		UserID: "9a7b-user", Scopes: []string{"docs/read", "docs/write"},
	}
	if diff := cmp.Diff(want, id, ignoreClaims); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}

	other := b.idp.CognitoAccessClaims("another-client", "tenant-42", "Globex", "9a7b-user")
	if _, err := b.v.Verify(b.ctx, b.idp.Sign(other)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("token of another app client: err = %v, want ErrInvalidToken", err)
	}
	// client_id only stands in for a missing aud: a present, wrong aud wins.
	withAud := b.idp.CognitoAccessClaims(clientID, "tenant-42", "Globex", "9a7b-user")
	withAud["aud"] = "someone-else"
	if _, err := b.v.Verify(b.ctx, b.idp.Sign(withAud)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("token with a wrong aud and matching client_id: err = %v, want ErrInvalidToken", err)
	}
	noTenant := b.idp.CognitoAccessClaims(clientID, "", "", "9a7b-user")
	_, err = b.v.Verify(b.ctx, b.idp.Sign(noTenant))
	if !errors.Is(err, auth.ErrMissingTenantClaim) || err.Error() != "token carries no tenant claim 'custom:tenant_id'" {
		t.Errorf("token without custom:tenant_id: err = %v", err)
	}
}

func TestEntraMultiTenant(t *testing.T) {
	t.Parallel()
	const app = "api://7d2c-mcp"
	b := setup(t, func(idp *idptest.IdP, o *auth.Options) {
		o.Issuer = idp.EntraIssuerTemplate()
		o.JWKSURL = idp.JWKSURL()
		o.Audience = app
		o.Claims = preset(t, "entra")
	})
	for _, tid := range []string{"11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"} {
		id, err := b.v.Verify(b.ctx, b.idp.Sign(b.idp.EntraClaims(app, tid, "oid-"+tid[:4], "Docs.Read")))
		if err != nil {
			t.Fatalf("tenant %s: %v", tid, err)
		}
		want := &auth.Identity{
			Issuer: b.idp.EntraIssuerTemplate(), TenantID: tid, UserID: "oid-" + tid[:4],
			Scopes: []string{"Docs.Read", "access_as_user"},
		}
		if diff := cmp.Diff(want, id, ignoreClaims); diff != "" {
			t.Errorf("identity (-want +got):\n%s", diff)
		}
	}

	// iss names directory A, tid claims directory B: refused.
	mixed := b.idp.EntraClaims(app, "22222222-2222-2222-2222-222222222222", "oid-x")
	mixed["iss"] = b.idp.EntraIssuer("11111111-1111-1111-1111-111111111111")
	_, err := b.v.Verify(b.ctx, b.idp.Sign(mixed))
	if !errors.Is(err, auth.ErrInvalidToken) || !strings.HasPrefix(err.Error(), "issuer ") {
		t.Errorf("iss and tid naming different directories: err = %v, want issuer not accepted", err)
	}
	noTid := b.idp.EntraClaims(app, "33333333-3333-3333-3333-333333333333", "oid-x")
	delete(noTid, "tid")
	if _, err := b.v.Verify(b.ctx, b.idp.Sign(noTid)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("Entra token without tid: err = %v, want ErrInvalidToken", err)
	}
	slashTid := b.idp.EntraClaims(app, "a/b", "oid-x")
	if _, err := b.v.Verify(b.ctx, b.idp.Sign(slashTid)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("tid containing '/': err = %v, want ErrInvalidToken", err)
	}
}

func TestGenericNestedAndLiteralDottedClaims(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, claim string
		extra       map[string]any
		wantTenant  string
	}{
		{"nested path", "organization.id", map[string]any{"organization": map[string]any{"id": "org-nested", "name": "N"}}, "org-nested"},
		{"literal dotted name", "organization.id", map[string]any{"organization.id": "org-literal"}, "org-literal"},
		{"literal wins over nested", "organization.id", map[string]any{
			"organization.id": "org-literal", "organization": map[string]any{"id": "org-nested"},
		}, "org-literal"},
		{"namespaced Auth0 claim", "https://example.com/org_id", map[string]any{"https://example.com/org_id": "org-ns"}, "org-ns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(_ *idptest.IdP, o *auth.Options) {
				o.Claims = preset(t, "generic")
				o.Claims.Tenant = tt.claim
			})
			id, err := b.v.Verify(b.ctx, b.idp.SignES256(b.idp.GenericClaims(resource, "user-7", []string{"a", "b"}, tt.extra)))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := &auth.Identity{Issuer: b.idp.Issuer(), TenantID: tt.wantTenant, UserID: "user-7", Scopes: []string{"a", "b"}}
			if diff := cmp.Diff(want, id, ignoreClaims); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSingleTenant(t *testing.T) {
	t.Parallel()
	b := setup(t, func(_ *idptest.IdP, o *auth.Options) { o.Claims = auth.ClaimMap{} })
	id, err := b.v.Verify(b.ctx, b.idp.Sign(b.idp.GenericClaims(resource, "user-1", nil, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if id.TenantID != "" || id.UserID != "user-1" || id.Scopes != nil {
		t.Errorf("identity = %+v, want no tenant, user-1, no scopes", id)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	var claims map[string]any
	if err := json.Unmarshal([]byte(`{
		"sub": "u1",
		"custom:tenant_id": "t1",
		"https://example.com/org_id": "ns",
		"organization": {"id": "nested", "deep": {"x": 1}, "list": ["a"]},
		"a.b": "literal",
		"a": {"b": "path"},
		"org_id": null
	}`), &claims); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want any
		ok   bool
	}{
		{"sub", "u1", true},
		{"custom:tenant_id", "t1", true},
		{"https://example.com/org_id", "ns", true},
		{"organization.id", "nested", true},
		{"organization.deep.x", 1.0, true},
		{"organization.deep", map[string]any{"x": 1.0}, true},
		{"a.b", "literal", true},
		{"org_id", nil, true},
		{"organization.list.0", nil, false},
		{"organization.missing", nil, false},
		{"sub.x", nil, false},
		{"tenant_id", nil, false}, // no fallback to custom:tenant_id
		{"id", nil, false},        // no fallback into nested objects
		{"", nil, false},
		{".", nil, false},
		{"organization.", nil, false},
		{".organization", nil, false},
		{"organization..id", nil, false},
	}
	var m auth.ClaimMap
	for _, tt := range tests {
		got, ok := m.Lookup(claims, tt.name)
		if ok != tt.ok || !cmp.Equal(got, tt.want) {
			t.Errorf("Lookup(%q) = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok := m.Lookup(nil, "sub"); ok {
		t.Errorf("Lookup on nil claims found something")
	}
}

func TestPreset(t *testing.T) {
	t.Parallel()
	tests := map[string]auth.ClaimMap{
		"auth0": {Tenant: "org_id", TenantName: "org_name", User: "sub", Scopes: []string{"permissions", "scope"}},
		"Auth0": {Tenant: "org_id", TenantName: "org_name", User: "sub", Scopes: []string{"permissions", "scope"}},
		"cognito": {Tenant: "custom:tenant_id", TenantName: "custom:tenant_name", User: "sub", Scopes: []string{"scope"}, ClientIDAudience: true,
			RequiredClaims: map[string]string{"token_use": "access"}},
		"entra":   {Tenant: "tid", User: "oid", Scopes: []string{"roles", "scp"}, IssuerTenantClaim: "tid"},
		"generic": {User: "sub", Scopes: []string{"scope"}},
	}
	for name, want := range tests {
		got, err := auth.Preset(name)
		if err != nil {
			t.Errorf("Preset(%q): %v", name, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Preset(%q) (-want +got):\n%s", name, diff)
		}
	}
	_, err := auth.Preset("okta")
	if err == nil || !strings.Contains(err.Error(), "auth0, cognito, entra, generic") {
		t.Errorf("Preset(okta) err = %v, want one naming the valid providers", err)
	}
	if diff := cmp.Diff(auth.ClaimMap{Tenant: "org_id", TenantName: "org_name", User: "sub", Scopes: []string{"scope"}}, auth.DevClaimMap()); diff != "" {
		t.Errorf("DevClaimMap (-want +got):\n%s", diff)
	}
}

func TestProviderEndpoints(t *testing.T) {
	t.Parallel()
	const ms = "https://login.microsoftonline.com"
	tests := []struct {
		provider, domain string
		iss, jwks        string
		err              string
	}{
		{"auth0", "acme.eu.auth0.com", "https://acme.eu.auth0.com/", "https://acme.eu.auth0.com/.well-known/jwks.json", ""},
		{"auth0", "https://acme.eu.auth0.com/", "https://acme.eu.auth0.com/", "https://acme.eu.auth0.com/.well-known/jwks.json", ""},
		{"AUTH0", "HTTPS://acme.auth0.com", "https://acme.auth0.com/", "https://acme.auth0.com/.well-known/jwks.json", ""},
		{"cognito", "cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC", "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC", "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC/.well-known/jwks.json", ""},
		{"cognito", "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_X/", "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_X", "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_X/.well-known/jwks.json", ""},
		{"entra", "72f988bf-86f1-41af-91ab-2d7cd011db47", ms + "/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0", ms + "/72f988bf-86f1-41af-91ab-2d7cd011db47/discovery/v2.0/keys", ""},
		{"entra", "organizations", ms + "/{tenantid}/v2.0", ms + "/common/discovery/v2.0/keys", ""},
		{"entra", "common", ms + "/{tenantid}/v2.0", ms + "/common/discovery/v2.0/keys", ""},
		{"generic", "idp.example.com", "https://idp.example.com/", "https://idp.example.com/.well-known/jwks.json", ""},
		{"generic", "http://idp.example.com", "", "", "only https"},
		{"generic", "", "", "", "no domain"},
		{"auth0", "acme.auth0.com/path", "", "", "without a path"},
		{"cognito", "cognito-idp.us-east-1.amazonaws.com", "", "", "userPoolId"},
		{"entra", "a/b", "", "", "directory"},
		{"okta", "x.okta.com", "", "", "unknown identity provider"},
		{"generic", "idp.example.com?x=1", "", "", "cannot have"},
	}
	for _, tt := range tests {
		iss, jwks, err := auth.ProviderEndpoints(tt.provider, tt.domain)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ProviderEndpoints(%q, %q) err = %v, want containing %q", tt.provider, tt.domain, err, tt.err)
			}
			continue
		}
		if err != nil || iss != tt.iss || jwks != tt.jwks {
			t.Errorf("ProviderEndpoints(%q, %q) = %q, %q, %v; want %q, %q", tt.provider, tt.domain, iss, jwks, err, tt.iss, tt.jwks)
		}
	}
}
