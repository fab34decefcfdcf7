package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// GenerateDevKey returns a new P-256 private key as a PEM "PRIVATE KEY"
// (PKCS #8) block, for NewDevIssuer. The caller stores it (the CLI keeps it
// in the dev data directory so tokens survive restarts).
func GenerateDevKey() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generate dev key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("auth: encode dev key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// DevIssuer is a minimal token issuer for development and tests: it mints
// ES256 tokens with one P-256 key and publishes the public key as a JWK
// Set. Verify its tokens with Options{Issuer: d.Issuer(), JWKS: d.JWKS(),
// Claims: DevClaimMap()}. It is not an OAuth authorization server: there is
// no login, consent or revocation.
type DevIssuer struct {
	issuer string
	key    *ecdsa.PrivateKey
	kid    string
	jwks   []byte
	now    func() time.Time
}

// NewDevIssuer returns an issuer named issuerURL (the iss of its tokens)
// signing with keyPEM, a P-256 private key as PKCS #8 ("PRIVATE KEY", as
// GenerateDevKey makes) or SEC 1 ("EC PRIVATE KEY").
func NewDevIssuer(issuerURL string, keyPEM []byte) (*DevIssuer, error) {
	if issuerURL == "" {
		return nil, errors.New("auth: NewDevIssuer: issuer URL is required (e.g. http://localhost:8080/)")
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("auth: NewDevIssuer: key is not PEM; create one with GenerateDevKey")
	}
	var key *ecdsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth: NewDevIssuer: parse PKCS #8 key: %w", err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("auth: NewDevIssuer: key is a %T, want a P-256 ECDSA key; create one with GenerateDevKey", k)
		}
		key = ek
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth: NewDevIssuer: parse EC key: %w", err)
		}
		key = k
	default:
		return nil, fmt.Errorf("auth: NewDevIssuer: PEM block %q is not a private key; create one with GenerateDevKey", block.Type)
	}
	if key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("auth: NewDevIssuer: key is on %s, want P-256 (ES256)", key.Curve.Params().Name)
	}
	pt, err := key.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("auth: NewDevIssuer: encode public key: %w", err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	x, y := b64(pt[1:33]), b64(pt[33:65])
	// RFC 7638 thumbprint: SHA-256 of the required members in
	// lexicographic order, no whitespace.
	thumb := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	d := &DevIssuer{issuer: issuerURL, key: key, kid: b64(thumb[:]), now: time.Now}
	d.jwks, err = json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "x": x, "y": y,
		"kid": d.kid, "use": "sig", "alg": "ES256",
	}}})
	if err != nil {
		return nil, fmt.Errorf("auth: NewDevIssuer: encode JWK Set: %w", err)
	}
	return d, nil
}

// Issuer returns the issuer URL (the iss of minted tokens).
func (d *DevIssuer) Issuer() string { return d.issuer }

// JWKS returns the public JWK Set; the key's kid is its RFC 7638
// thumbprint. The slice is shared: do not modify it.
func (d *DevIssuer) JWKS() []byte { return d.jwks }

// ServeHTTP serves the JWK Set (GET or HEAD), wherever it is mounted
// (conventionally /.well-known/jwks.json under the issuer URL).
func (d *DevIssuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(d.jwks)
}

// TokenRequest describes a token for DevIssuer.Mint.
type TokenRequest struct {
	// Audience is the aud: the server's resource URL. Required.
	Audience string
	// TenantID is org_id; "" = no tenant claim (single-tenant servers).
	TenantID string
	// TenantName is org_name; "" = omitted.
	TenantName string
	// UserID is sub. Required.
	UserID string
	// Scopes become scope, space-separated; nil = no scope claim.
	Scopes []string
	// TTL is the token lifetime. 0 = 1h; negative mints a token that has
	// already expired (for testing refusals).
	TTL time.Duration
	// Extra are additional claims. They may not replace the claims Mint
	// sets (iss, aud, sub, org_id, org_name, scope, iat, nbf, exp, jti).
	Extra map[string]any
}

var mintedClaims = []string{"iss", "aud", "sub", "org_id", "org_name", "scope", "iat", "nbf", "exp", "jti"}

// Mint returns an ES256 token with iss, aud, sub, org_id, org_name, scope
// (space-separated), iat, nbf, exp and a random jti, plus req.Extra.
func (d *DevIssuer) Mint(req TokenRequest) (string, error) {
	if req.Audience == "" {
		return "", errors.New("auth: Mint: Audience is required (the server's resource URL)")
	}
	if req.UserID == "" {
		return "", errors.New("auth: Mint: UserID is required")
	}
	for _, s := range req.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			return "", fmt.Errorf("auth: Mint: scope %q is empty or contains whitespace", s)
		}
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = time.Hour
	}
	now := d.now()
	iat := now
	if ttl < 0 {
		iat = now.Add(ttl - time.Minute) // issued before it expired
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("auth: Mint: %w", err)
	}
	claims := jwt.MapClaims{}
	for k, v := range req.Extra {
		for _, m := range mintedClaims {
			if k == m {
				return "", fmt.Errorf("auth: Mint: Extra may not set %q; use the TokenRequest field", k)
			}
		}
		claims[k] = v
	}
	claims["iss"] = d.issuer
	claims["aud"] = req.Audience
	claims["sub"] = req.UserID
	if req.TenantID != "" {
		claims["org_id"] = req.TenantID
	}
	if req.TenantName != "" {
		claims["org_name"] = req.TenantName
	}
	if len(req.Scopes) > 0 {
		claims["scope"] = strings.Join(req.Scopes, " ")
	}
	claims["iat"] = iat.Unix()
	claims["nbf"] = iat.Unix()
	claims["exp"] = now.Add(ttl).Unix()
	claims["jti"] = base64.RawURLEncoding.EncodeToString(jti)
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = d.kid
	s, err := tok.SignedString(d.key)
	if err != nil {
		return "", fmt.Errorf("auth: Mint: sign: %w", err)
	}
	return s, nil
}
