// Package idptest is a fake OpenID identity provider for tests.
//
// New starts an httptest.Server that serves a JWK Set and an OpenID
// configuration, holds one RSA-2048 key (RS256) and one P-256 key (ES256),
// signs tokens with them, and forges the tokens attackers send (alg "none",
// HS256 keyed with the RSA public key, unknown kids, tampered signatures).
// The claim helpers shape tokens the way Auth0, Cognito and Entra ID issue
// them, access tokens and the ID tokens a resource server must refuse
// (Auth0IDClaims, ...), so verification code is tested against realistic
// input; SignWithHeader adds JOSE header fields (typ, crit).
//
//	idp := idptest.New(t)
//	tok := idp.Sign(idp.Auth0Claims("https://mcp.example.com/mcp", "org_1", "Acme", "auth0|u1", "docs:read"))
//	// verify tok against idp.Issuer() and idp.JWKSURL()
//
// Methods are safe for concurrent use. Failures (which only a broken
// environment can cause) end the test with t.Fatal.
package idptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Option configures New.
type Option func(*IdP)

// WithIssuer sets the issuer the IdP announces (and the claim helpers put in
// "iss") instead of URL+"/". Use it for issuers without a trailing slash
// (Cognito style). The string may contain "{url}", replaced by the server URL.
func WithIssuer(issuer string) Option {
	return func(i *IdP) { i.issuerTmpl = issuer }
}

// IdP is a running fake identity provider.
type IdP struct {
	// URL is the base URL of the server, without a trailing slash.
	URL string

	t   testing.TB
	srv *httptest.Server

	mu          sync.Mutex
	issuerTmpl  string
	rsaKey      *rsa.PrivateKey
	rsaKid      string
	ecKey       *ecdsa.PrivateKey
	ecKid       string
	forgedKey   *rsa.PrivateKey
	generation  int
	unavailable bool

	fetches atomic.Int64
}

// New starts a fake IdP with fresh keys; it is closed when the test ends.
func New(t testing.TB, opts ...Option) *IdP {
	t.Helper()
	i := &IdP{t: t}
	for _, o := range opts {
		o(i)
	}
	i.rotate()
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/jwks.json", i.serveJWKS)
	mux.HandleFunc("/.well-known/openid-configuration", i.serveConfig)
	i.srv = httptest.NewServer(mux)
	i.URL = i.srv.URL
	t.Cleanup(i.srv.Close)
	return i
}

// Issuer returns the issuer the IdP announces: URL+"/" unless changed with
// WithIssuer or SetIssuer.
func (i *IdP) Issuer() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.issuerTmpl == "" {
		return i.URL + "/"
	}
	return strings.ReplaceAll(i.issuerTmpl, "{url}", i.URL)
}

// SetIssuer changes the issuer (see WithIssuer).
func (i *IdP) SetIssuer(issuer string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.issuerTmpl = issuer
}

// JWKSURL returns the URL of the served JWK Set.
func (i *IdP) JWKSURL() string { return i.URL + "/.well-known/jwks.json" }

// JWKSFetches reports how many times the JWK Set has been requested with GET.
func (i *IdP) JWKSFetches() int { return int(i.fetches.Load()) }

// SetUnavailable makes the JWK Set endpoint answer 503 (true) or serve keys
// again (false), to simulate an IdP outage.
func (i *IdP) SetUnavailable(down bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.unavailable = down
}

// Rotate replaces both signing keys with new keys under new kids; the old
// keys disappear from the served JWK Set.
func (i *IdP) Rotate() { i.rotate() }

// RSAKid and ECKid return the kids of the current keys.
func (i *IdP) RSAKid() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.rsaKid
}

// ECKid returns the kid of the current P-256 key.
func (i *IdP) ECKid() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.ecKid
}

// PublicKeyPEM returns the current RSA public key as a PKIX PEM block.
func (i *IdP) PublicKeyPEM() []byte {
	i.mu.Lock()
	defer i.mu.Unlock()
	der, err := x509.MarshalPKIXPublicKey(&i.rsaKey.PublicKey)
	if err != nil {
		i.t.Fatalf("idptest: marshal public key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// JWKS returns the JSON JWK Set the server currently serves.
func (i *IdP) JWKS() []byte {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.jwksLocked()
}

func (i *IdP) rotate() {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		i.t.Fatalf("idptest: generate RSA key: %v", err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		i.t.Fatalf("idptest: generate EC key: %v", err)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.generation++
	i.rsaKey, i.ecKey = rk, ek
	i.rsaKid = fmt.Sprintf("rsa-%d-%s", i.generation, randID())
	i.ecKid = fmt.Sprintf("ec-%d-%s", i.generation, randID())
}

func randID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (i *IdP) jwksLocked() []byte {
	pub := i.ecKey.PublicKey
	pt, err := pub.Bytes() // 0x04 || X || Y, 32 bytes each
	if err != nil {
		i.t.Fatalf("idptest: encode EC key: %v", err)
	}
	set := map[string]any{"keys": []map[string]any{
		{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": i.rsaKid,
			"n": b64(i.rsaKey.N.Bytes()),
			"e": b64(big.NewInt(int64(i.rsaKey.E)).Bytes()),
		},
		{
			"kty": "EC", "use": "sig", "alg": "ES256", "kid": i.ecKid, "crv": "P-256",
			"x": b64(pt[1:33]), "y": b64(pt[33:65]),
		},
	}}
	b, err := json.Marshal(set)
	if err != nil {
		i.t.Fatalf("idptest: marshal JWKS: %v", err)
	}
	return b
}

func (i *IdP) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		i.fetches.Add(1)
	}
	i.mu.Lock()
	down := i.unavailable
	body := i.jwksLocked()
	i.mu.Unlock()
	if down {
		http.Error(w, "identity provider unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (i *IdP) serveConfig(w http.ResponseWriter, _ *http.Request) {
	cfg := map[string]any{
		"issuer":                                i.Issuer(),
		"jwks_uri":                              i.JWKSURL(),
		"authorization_endpoint":                i.URL + "/authorize",
		"token_endpoint":                        i.URL + "/oauth/token",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		"code_challenge_methods_supported":      []string{"S256"},
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(cfg)
}

func (i *IdP) sign(method jwt.SigningMethod, kid string, key any, claims map[string]any) string {
	tok := jwt.NewWithClaims(method, jwt.MapClaims(claims))
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		i.t.Fatalf("idptest: sign %s token: %v", method.Alg(), err)
	}
	return s
}

// Sign returns an RS256 token signed with the current RSA key, with its kid.
func (i *IdP) Sign(claims map[string]any) string {
	i.mu.Lock()
	key, kid := i.rsaKey, i.rsaKid
	i.mu.Unlock()
	return i.sign(jwt.SigningMethodRS256, kid, key, claims)
}

// SignES256 returns an ES256 token signed with the current P-256 key.
func (i *IdP) SignES256(claims map[string]any) string {
	i.mu.Lock()
	key, kid := i.ecKey, i.ecKid
	i.mu.Unlock()
	return i.sign(jwt.SigningMethodES256, kid, key, claims)
}

// SignWithoutKid returns an RS256 token signed with the current RSA key but
// with no kid header.
func (i *IdP) SignWithoutKid(claims map[string]any) string {
	i.mu.Lock()
	key := i.rsaKey
	i.mu.Unlock()
	return i.sign(jwt.SigningMethodRS256, "", key, claims)
}

// NoneToken returns an unsigned token with alg "none" (and the current RSA
// kid, as an attacker would send it).
func (i *IdP) NoneToken(claims map[string]any) string {
	return i.sign(jwt.SigningMethodNone, i.RSAKid(), jwt.UnsafeAllowNoneSignatureType, claims)
}

// HS256WithPublicKey returns a token MACed with HS256 using the RSA public
// key's PEM as the secret: the classic key-confusion attack against
// verifiers that pick the algorithm from the token header.
func (i *IdP) HS256WithPublicKey(claims map[string]any) string {
	return i.sign(jwt.SigningMethodHS256, i.RSAKid(), i.PublicKeyPEM(), claims)
}

// ForgedKid returns an RS256 token carrying kid but signed with a key that
// is not in the JWK Set.
func (i *IdP) ForgedKid(kid string, claims map[string]any) string {
	i.mu.Lock()
	if i.forgedKey == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			i.mu.Unlock()
			i.t.Fatalf("idptest: generate forged key: %v", err)
		}
		i.forgedKey = k
	}
	key := i.forgedKey
	i.mu.Unlock()
	return i.sign(jwt.SigningMethodRS256, kid, key, claims)
}

// TamperedSignature returns an RS256 token with valid header and claims whose
// signature has been altered.
func (i *IdP) TamperedSignature(claims map[string]any) string {
	tok := i.Sign(claims)
	dot := strings.LastIndexByte(tok, '.')
	sig := []byte(tok[dot+1:])
	// Change a character in the middle: every bit of it is significant.
	mid := len(sig) / 2
	if sig[mid] == 'A' {
		sig[mid] = 'B'
	} else {
		sig[mid] = 'A'
	}
	return tok[:dot+1] + string(sig)
}

// SignWithHeader returns an RS256 token signed with the current RSA key, with
// its kid, whose JOSE header also has the entries of header: "typ" to
// change the token type ("id_token", "at+jwt"), "crit" to name critical
// extensions, ... A nil value removes the entry ("typ": nil sends no typ).
func (i *IdP) SignWithHeader(claims, header map[string]any) string {
	i.mu.Lock()
	key, kid := i.rsaKey, i.rsaKid
	i.mu.Unlock()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims(claims))
	tok.Header["kid"] = kid
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		i.t.Fatalf("idptest: sign RS256 token: %v", err)
	}
	return s
}

// SignWith signs claims with the given method and key and puts kid in the
// header (omitted when empty): an escape hatch for unusual tests.
func (i *IdP) SignWith(method jwt.SigningMethod, kid string, key any, claims map[string]any) string {
	return i.sign(method, kid, key, claims)
}

// RSAPrivateKey returns the current RSA signing key.
func (i *IdP) RSAPrivateKey() crypto.Signer {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.rsaKey
}

func times() (iat, exp int64) {
	now := time.Now()
	return now.Unix(), now.Add(time.Hour).Unix()
}

func strs(s []string) []any {
	out := make([]any, len(s))
	for k, v := range s {
		out[k] = v
	}
	return out
}

// Auth0Claims returns claims shaped like an Auth0 access token issued for an
// organization member with RBAC enabled: aud is an array of the API
// identifier and the userinfo endpoint, permissions is an array, scope a
// space-separated string. exp is one hour from now.
func (i *IdP) Auth0Claims(aud, orgID, orgName, sub string, permissions ...string) map[string]any {
	iat, exp := times()
	host := strings.TrimPrefix(i.URL, "http://")
	c := map[string]any{
		"iss":         i.Issuer(),
		"sub":         sub,
		"aud":         []any{aud, "https://" + host + "/userinfo"},
		"azp":         "aZ1cl13ntId0000000000000000000",
		"iat":         iat,
		"exp":         exp,
		"scope":       "openid profile email",
		"permissions": strs(permissions),
	}
	if orgID != "" {
		c["org_id"] = orgID
	}
	if orgName != "" {
		c["org_name"] = orgName
	}
	return c
}

// CognitoAccessClaims returns claims shaped like an Amazon Cognito access
// token: no aud, the app client id in client_id, token_use "access", scopes
// space-separated in scope, and tenant attributes as custom:tenant_id and
// custom:tenant_name (as a pre-token-generation trigger adds them).
func (i *IdP) CognitoAccessClaims(clientID, tenantID, tenantName, sub string, scopes ...string) map[string]any {
	iat, exp := times()
	c := map[string]any{
		"iss":       i.Issuer(),
		"sub":       sub,
		"client_id": clientID,
		"token_use": "access",
		"scope":     strings.Join(scopes, " "),
		"auth_time": iat,
		"iat":       iat,
		"exp":       exp,
		"jti":       randID(),
		"username":  "user-" + sub,
		"version":   2,
	}
	if tenantID != "" {
		c["custom:tenant_id"] = tenantID
	}
	if tenantName != "" {
		c["custom:tenant_name"] = tenantName
	}
	return c
}

// CognitoIDClaims returns claims shaped like an Amazon Cognito ID token of
// the same user pool: aud is the app client id, token_use "id", user
// attributes (email, custom:tenant_id, ...) at top level, no scope. It is
// signed with the same keys as the access tokens; a resource server must
// refuse it.
func (i *IdP) CognitoIDClaims(clientID, tenantID, tenantName, sub string) map[string]any {
	iat, exp := times()
	c := map[string]any{
		"iss":              i.Issuer(),
		"sub":              sub,
		"aud":              clientID,
		"token_use":        "id",
		"auth_time":        iat,
		"iat":              iat,
		"exp":              exp,
		"jti":              randID(),
		"origin_jti":       randID(),
		"cognito:username": "user-" + sub,
		"email":            sub + "@example.com",
		"email_verified":   true,
	}
	if tenantID != "" {
		c["custom:tenant_id"] = tenantID
	}
	if tenantName != "" {
		c["custom:tenant_name"] = tenantName
	}
	return c
}

// Auth0IDClaims returns claims shaped like an Auth0 ID token for an
// organization member: aud is the application's client id (a string, no
// API identifier), nonce, profile claims, org_id, no scope or permissions.
func (i *IdP) Auth0IDClaims(clientID, orgID, sub string) map[string]any {
	iat, exp := times()
	c := map[string]any{
		"iss":      i.Issuer(),
		"sub":      sub,
		"aud":      clientID,
		"iat":      iat,
		"exp":      exp,
		"nonce":    randID(),
		"sid":      randID(),
		"name":     "Test User",
		"nickname": "test",
		"email":    "user@example.com",
	}
	if orgID != "" {
		c["org_id"] = orgID
	}
	return c
}

// EntraIDClaims returns claims shaped like an Entra ID v2.0 ID token: aud is
// the application (client) id, as in v2.0 access tokens for an API of the
// same app registration, ver "2.0", tid, oid, nonce; no scp, roles or
// idtyp.
func (i *IdP) EntraIDClaims(clientID, tid, oid string) map[string]any {
	iat, exp := times()
	return map[string]any{
		"iss":                i.EntraIssuer(tid),
		"aud":                clientID,
		"sub":                "pairwise-" + oid,
		"oid":                oid,
		"tid":                tid,
		"ver":                "2.0",
		"nonce":              randID(),
		"name":               "Test User",
		"preferred_username": "user@example.com",
		"iat":                iat,
		"nbf":                iat,
		"exp":                exp,
	}
}

// EntraIssuer returns the per-tenant v2.0 issuer Entra ID would put in a
// token of directory tid, with this server as host:
// URL+"/"+tid+"/v2.0".
func (i *IdP) EntraIssuer(tid string) string { return i.URL + "/" + tid + "/v2.0" }

// EntraIssuerTemplate returns EntraIssuer with "{tenantid}" in place of the
// directory id, as a multi-tenant verifier is configured.
func (i *IdP) EntraIssuerTemplate() string { return i.EntraIssuer("{tenantid}") }

// EntraClaims returns claims shaped like an Entra ID v2.0 access token:
// iss is EntraIssuer(tid), ver "2.0", tid, oid, app roles in roles and
// delegated scopes in scp.
func (i *IdP) EntraClaims(aud, tid, oid string, roles ...string) map[string]any {
	iat, exp := times()
	return map[string]any{
		"iss":                i.EntraIssuer(tid),
		"aud":                aud,
		"sub":                "pairwise-" + oid,
		"oid":                oid,
		"tid":                tid,
		"ver":                "2.0",
		"azp":                "00000000-0000-0000-0000-00000000c1d0",
		"name":               "Test User",
		"preferred_username": "user@example.com",
		"roles":              strs(roles),
		"scp":                "access_as_user",
		"iat":                iat,
		"nbf":                iat,
		"exp":                exp,
	}
}

// GenericClaims returns a minimal OAuth access token: iss, aud (a string),
// sub, a space-separated scope, iat and exp, plus extra (which may override
// any of them).
func (i *IdP) GenericClaims(aud, sub string, scopes []string, extra map[string]any) map[string]any {
	iat, exp := times()
	c := map[string]any{
		"iss":   i.Issuer(),
		"aud":   aud,
		"sub":   sub,
		"scope": strings.Join(scopes, " "),
		"iat":   iat,
		"exp":   exp,
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}
