package auth

import (
	"fmt"
	"strings"
)

// ClaimMap says where an identity provider puts the tenant, the user and the
// scopes in its tokens. Use Preset for the known providers.
type ClaimMap struct {
	// Tenant is the claim holding the external tenant id: a top-level claim
	// name ("org_id", "tid", "custom:tenant_id",
	// "https://example.com/org_id") or a dotted path into nested objects
	// ("organization.id"); see Lookup. "" means single-tenant: no tenant
	// claim is read or required and Identity.TenantID is "".
	Tenant string
	// TenantName is the claim holding the tenant's display name; "" = none.
	// A missing or non-string value leaves Identity.TenantName empty.
	TenantName string
	// User is the claim identifying the user; "" = "sub". Tokens without a
	// non-empty string in it are refused.
	User string
	// Scopes lists the claims holding granted scopes, each either a
	// space-separated string or an array of strings. All are merged in
	// order, duplicates dropped; non-string array elements are ignored.
	// nil = no scopes.
	Scopes []string
	// ClientIDAudience accepts a token that has no aud claim when its
	// client_id equals Options.Audience (Amazon Cognito access tokens).
	// false = aud is required.
	ClientIDAudience bool
	// IssuerTenantClaim is the claim substituted for "{tenantid}" in a
	// templated Options.Issuer (Entra ID multi-tenant: "tid"). "" = the
	// issuer must not be a template.
	IssuerTenantClaim string
	// RequiredClaims maps claim names (or dotted paths, see Lookup) to the
	// string value every accepted token must carry in them, so that the
	// other tokens an IdP signs with the same keys (ID tokens above all)
	// are refused: the cognito preset requires token_use = "access";
	// Entra deployments may pin idtyp = "user". Payload claims only: the
	// JOSE header typ is Options.TokenType. nil = none beyond the checks
	// Verify always makes (see Options.TokenType).
	RequiredClaims map[string]string
}

// Providers Preset and ProviderEndpoints know.
const (
	ProviderAuth0   = "auth0"
	ProviderCognito = "cognito"
	ProviderEntra   = "entra"
	ProviderGeneric = "generic"
)

var providers = []string{ProviderAuth0, ProviderCognito, ProviderEntra, ProviderGeneric}

// Preset returns the claim map of a known identity provider:
//
//	auth0    tenant org_id, name org_name, user sub, scopes permissions+scope
//	cognito  tenant custom:tenant_id, name custom:tenant_name, user sub,
//	         scopes scope, client_id accepted as audience, token_use
//	         "access" required (Cognito ID tokens say "id")
//	entra    tenant tid, user oid, scopes roles+scp, issuer template on tid
//	generic  user sub, scopes scope; set Tenant yourself (or leave it ""
//	         for a single-tenant deployment)
//
// The provider name is matched case-insensitively; an unknown name is an
// error listing the valid ones.
func Preset(provider string) (ClaimMap, error) {
	switch strings.ToLower(strings.TrimSpace(provider)) {
	case ProviderAuth0:
		return ClaimMap{Tenant: "org_id", TenantName: "org_name", User: "sub", Scopes: []string{"permissions", "scope"}}, nil
	case ProviderCognito:
		return ClaimMap{Tenant: "custom:tenant_id", TenantName: "custom:tenant_name", User: "sub", Scopes: []string{"scope"}, ClientIDAudience: true,
			RequiredClaims: map[string]string{"token_use": "access"}}, nil
	case ProviderEntra:
		return ClaimMap{Tenant: "tid", User: "oid", Scopes: []string{"roles", "scp"}, IssuerTenantClaim: "tid"}, nil
	case ProviderGeneric:
		return ClaimMap{User: "sub", Scopes: []string{"scope"}}, nil
	}
	return ClaimMap{}, fmt.Errorf("auth: unknown identity provider %q: use one of %s", provider, strings.Join(providers, ", "))
}

// DevClaimMap is the claim map of tokens minted by DevIssuer: tenant org_id,
// name org_name, user sub, scopes scope.
func DevClaimMap() ClaimMap {
	return ClaimMap{Tenant: "org_id", TenantName: "org_name", User: "sub", Scopes: []string{"scope"}}
}

// entraHost is where Entra ID issues tokens.
const entraHost = "https://login.microsoftonline.com"

// ProviderEndpoints derives the issuer and JWK Set URL of a provider from
// its domain (accepted with or without "https://", trailing "/" ignored):
//
//	auth0    "tenant.eu.auth0.com" → "https://tenant.eu.auth0.com/",
//	         "https://tenant.eu.auth0.com/.well-known/jwks.json"
//	cognito  "cognito-idp.{region}.amazonaws.com/{userPoolId}" →
//	         "https://cognito-idp.{region}.amazonaws.com/{userPoolId}",
//	         issuer + "/.well-known/jwks.json"
//	entra    a directory (tenant) id → "https://login.microsoftonline.com/{id}/v2.0"
//	         and ".../{id}/discovery/v2.0/keys"; "organizations" or "common"
//	         (multi-tenant apps) → the issuer template
//	         "https://login.microsoftonline.com/{tenantid}/v2.0" (use with
//	         the entra Preset, whose IssuerTenantClaim fills it) and
//	         ".../common/discovery/v2.0/keys"
//	generic  "idp.example.com" → "https://idp.example.com/",
//	         "https://idp.example.com/.well-known/jwks.json"
//
// Entra support is for v2.0 access tokens (accessTokenAcceptedVersion 2);
// v1.0 tokens carry a different issuer and are refused.
func ProviderEndpoints(provider, domain string) (issuer, jwksURL string, err error) {
	issuer, jwksURL, _, err = providerEndpoints(provider, domain)
	return issuer, jwksURL, err
}

// ProviderAuthorizationServer is the authorization server to advertise in
// the protected-resource metadata for a provider and domain: the issuer,
// except for Entra's "organizations" and "common", whose issuer is a
// per-tenant template: there it is
// "https://login.microsoftonline.com/{organizations|common}/v2.0".
func ProviderAuthorizationServer(provider, domain string) (string, error) {
	issuer, _, server, err := providerEndpoints(provider, domain)
	if server == "" {
		server = issuer
	}
	return server, err
}

// IsMultiDirectory reports whether an Entra domain accepts every work or
// school directory ("organizations", "common"): the issuer then depends on
// the token's tid.
func IsMultiDirectory(provider, domain string) bool {
	_, _, server, err := providerEndpoints(provider, domain)
	return err == nil && server != ""
}

func providerEndpoints(provider, domain string) (issuer, jwksURL, multiServer string, err error) {
	d := strings.TrimSpace(domain)
	if strings.HasPrefix(strings.ToLower(d), "https://") {
		d = d[len("https://"):]
	} else if strings.Contains(d, "://") {
		return "", "", "", fmt.Errorf("auth: domain %q: only https identity providers are supported; give the host name without a scheme", domain)
	}
	d = strings.TrimRight(d, "/")
	if d == "" {
		return "", "", "", fmt.Errorf("auth: no domain given for identity provider %q: set the provider's domain", provider)
	}
	if strings.ContainsAny(d, " \t\r\n?#@") {
		return "", "", "", fmt.Errorf("auth: domain %q contains characters a host name cannot have", domain)
	}
	p := strings.ToLower(strings.TrimSpace(provider))
	switch p {
	case ProviderAuth0, ProviderGeneric:
		if strings.Contains(d, "/") {
			return "", "", "", fmt.Errorf("auth: %s domain %q must be a host name without a path", p, domain)
		}
		return "https://" + d + "/", "https://" + d + "/.well-known/jwks.json", "", nil
	case ProviderCognito:
		host, pool, ok := strings.Cut(d, "/")
		if !ok || host == "" || !strings.Contains(pool, "_") || strings.Contains(pool, "/") { // pool ids are REGION_ID
			return "", "", "", fmt.Errorf("auth: cognito domain %q must be \"cognito-idp.{region}.amazonaws.com/{userPoolId}\"", domain)
		}
		iss := "https://" + d
		return iss, iss + "/.well-known/jwks.json", "", nil
	case ProviderEntra:
		if strings.Contains(d, "/") {
			return "", "", "", fmt.Errorf("auth: entra domain %q must be a directory (tenant) id, \"organizations\" or \"common\"", domain)
		}
		switch ld := strings.ToLower(d); ld {
		case "organizations", "common":
			return entraHost + "/" + tenantVar + "/v2.0", entraHost + "/common/discovery/v2.0/keys", entraHost + "/" + ld + "/v2.0", nil
		}
		return entraHost + "/" + d + "/v2.0", entraHost + "/" + d + "/discovery/v2.0/keys", "", nil
	}
	return "", "", "", fmt.Errorf("auth: unknown identity provider %q: use one of %s", provider, strings.Join(providers, ", "))
}

// Lookup finds the claim called name: first name as a literal top-level
// claim (so "custom:tenant_id" and namespaced claims such as
// "https://example.com/org_id" work), otherwise name as a dotted path
// through nested JSON objects ("organization.id"). It never falls back to
// any other claim.
func (m ClaimMap) Lookup(claims map[string]any, name string) (any, bool) {
	if name == "" || claims == nil {
		return nil, false
	}
	if v, ok := claims[name]; ok {
		return v, true
	}
	if !strings.Contains(name, ".") {
		return nil, false
	}
	cur := claims
	rest := name
	for {
		seg, tail, more := strings.Cut(rest, ".")
		if seg == "" {
			return nil, false
		}
		v, ok := cur[seg]
		if !ok {
			return nil, false
		}
		if !more {
			return v, true
		}
		next, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, rest = next, tail
	}
}

// lookupString returns the claim as a string; ok is false when it is
// missing or not a string.
func (m ClaimMap) lookupString(claims map[string]any, name string) (s string, present, ok bool) {
	v, present := m.Lookup(claims, name)
	if !present {
		return "", false, false
	}
	s, ok = v.(string)
	return s, true, ok
}

// scopes merges the configured scope claims.
func (m ClaimMap) scopes(claims map[string]any) []string {
	var out []string
	var seen map[string]struct{}
	add := func(s string) {
		if s == "" {
			return
		}
		if seen == nil {
			seen = make(map[string]struct{})
		}
		if _, dup := seen[s]; dup {
			return
		}
		seen[s] = struct{}{}
		out = append(out, s)
	}
	for _, name := range m.Scopes {
		v, ok := m.Lookup(claims, name)
		if !ok {
			continue
		}
		switch v := v.(type) {
		case string:
			for _, s := range strings.Fields(v) {
				add(s)
			}
		case []any:
			for _, e := range v {
				if s, ok := e.(string); ok {
					add(strings.TrimSpace(s))
				}
			}
		case []string:
			for _, s := range v {
				add(strings.TrimSpace(s))
			}
		}
	}
	return out
}
