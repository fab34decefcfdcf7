// Package devauth is the OAuth 2.1 authorization server of "tenantmcp
// dev": with it, a stock MCP client that follows the MCP authorization spec
// (the TypeScript SDK's auth helper, the MCP Inspector) connects to the dev
// server by itself, given only its URL. "tenantmcp serve" never mounts it.
//
// It serves, under the dev issuer's URL (http://ADDR/dev):
//
//   - authorization-server metadata (RFC 8414) at
//     /.well-known/oauth-authorization-server/dev, and the OpenID discovery
//     shape at /.well-known/openid-configuration/dev and
//     /dev/.well-known/openid-configuration;
//   - dynamic client registration (RFC 7591) at /dev/register: public
//     clients only (token_endpoint_auth_method "none"), redirect URIs https
//     or http on a loopback host, no fragments. Registrations are kept in
//     memory (at most Options.MaxClients, the oldest forgotten first), so a
//     restart forgets them and clients register again. Client ID Metadata
//     Documents are not supported;
//   - /dev/authorize: the authorization code flow with PKCE (S256 only),
//     state required, RFC 8707 resource checked, and a server-rendered
//     sign-in page (no script) to pick a tenant listed by Tenants and a
//     user, or the administrator when Options.AdminScope is set. Problems
//     before the client's redirect URI is verified are shown on a page,
//     never redirected. The form carries a one-time token naming the
//     authorization request, valid only in the browser that opened it (a
//     SameSite cookie);
//   - /dev/token: codes live Options.CodeTTL (60 s), are bound to the
//     client, redirect URI, challenge, tenant, user, scopes and resource,
//     and are spent by the first attempt to redeem them. Access tokens are
//     minted by the DevIssuer for the MCP resource (aud), with the chosen
//     tenant as org_id; a request with scope "openid" also gets an ID token
//     (aud = client_id, with its nonce). There are no refresh tokens: a
//     client signs in again when its token (Options.TokenTTL, 1 h) expires;
//   - /dev/jwks.json, the issuer's keys.
//
// Metadata, registration and token endpoints answer any origin (CORS), for
// browser-based clients; the authorization endpoint does not.
//
// The web console's sign-in needs no registration: ConsoleClientID
// ("tenantmcp-console") is registered from the start, as a public client
// whose redirect URI is http://ADDR/console/callback (Options.ConsoleRedirectURI).
//
//	das, err := devauth.New(iss, "http://127.0.0.1:8080/mcp", tenants, &devauth.Options{
//		Scopes: []string{"read:tools", "execute:tools"}, AdminScope: "tenantmcp:admin",
//	})
//	...
//	opts.Routes = das.Routes() // server.Options
//
// Everything lives in memory and nothing is authenticated but the choice
// on the page: it is for development on your own machine only.
package devauth
