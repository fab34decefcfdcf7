// Package auth verifies the bearer tokens MCP clients send (the MCP
// authorization spec: OAuth 2.1 resource server, RFC 6750, RFC 9728) and
// reads the tenant, user and scopes from them.
//
// A Verifier checks a JWT's signature against the identity provider's JWK
// Set (fetched, refreshed in the background and re-fetched, rate-limited,
// when a token names an unknown key), its algorithm against an allow-list,
// and its iss, aud, exp, nbf and iat. It refuses ID tokens (a JOSE typ such
// as "id_token", Cognito's token_use "id"), any crit header, and tokens
// lacking what Options.TokenType and ClaimMap.RequiredClaims pin. It then
// reads the tenant claim where the provider puts it (Preset: auth0,
// cognito, entra, generic). Verified
// tokens are cached by hash, so a repeated token costs a SHA-256 and a map
// lookup.
//
//	cm, _ := auth.Preset("auth0")
//	iss, jwks, _ := auth.ProviderEndpoints("auth0", "acme.eu.auth0.com")
//	v, err := auth.NewVerifier(ctx, &auth.Options{
//		Issuer: iss, JWKSURL: jwks, Audience: "https://mcp.example.com/mcp", Claims: cm,
//	})
//	...
//	tok, err := auth.BearerToken(r.Header)
//	id, err := v.Verify(r.Context(), tok)
//	if err != nil {
//		w.Header().Set("WWW-Authenticate", auth.Challenge("invalid_token", err.Error(), "",
//			auth.MetadataURL("https://mcp.example.com/mcp")))
//		...
//	}
//	// id.Issuer + id.TenantID name the tenant; id.UserID, id.Scopes.
//
// Every error's text is safe to show the client: it says which check failed
// and never contains the token. Classify errors with errors.Is against
// ErrMissingToken, ErrMalformedHeader, ErrInvalidToken,
// ErrMissingTenantClaim and ErrKeysUnavailable.
//
// DevIssuer mints tokens for local development (tenantmcp dev/token);
// ResourceMetadata serves the RFC 9728 document clients discover the
// authorization server from.
//
// The package does not depend on any MCP library.
package auth
