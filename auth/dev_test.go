package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantmcp/tenantmcp/auth"
)

func devIssuer(t *testing.T, iss string) (*auth.DevIssuer, []byte) {
	t.Helper()
	key, err := auth.GenerateDevKey()
	if err != nil {
		t.Fatal(err)
	}
	d, err := auth.NewDevIssuer(iss, key)
	if err != nil {
		t.Fatal(err)
	}
	return d, key
}

func TestDevIssuerMintAndVerify(t *testing.T) {
	t.Parallel()
	d, _ := devIssuer(t, "http://localhost:8080/")
	v, err := auth.NewVerifier(t.Context(), &auth.Options{
		Issuer: d.Issuer(), Audience: resource, JWKS: d.JWKS(), Claims: auth.DevClaimMap(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	tok, err := d.Mint(auth.TokenRequest{
		Audience: resource, TenantID: "acme", TenantName: "Acme Corp", UserID: "alice",
		Scopes: []string{"docs:read", "docs:write"}, Extra: map[string]any{"email": "alice@acme.test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := &auth.Identity{Issuer: d.Issuer(), TenantID: "acme", TenantName: "Acme Corp", UserID: "alice", Scopes: []string{"docs:read", "docs:write"}}
	if diff := cmp.Diff(want, id, ignoreClaims); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	for _, c := range []string{"iat", "nbf", "exp", "jti", "email"} {
		if _, ok := id.Claims[c]; !ok {
			t.Errorf("minted token lacks %s", c)
		}
	}
	if ttl := time.Until(id.ExpiresAt); ttl < 59*time.Minute || ttl > time.Hour {
		t.Errorf("default TTL gives exp in %v, want 1h", ttl)
	}

	expired, err := d.Mint(auth.TokenRequest{Audience: resource, TenantID: "acme", UserID: "alice", TTL: -time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), expired); !errors.Is(err, auth.ErrInvalidToken) || !strings.HasPrefix(err.Error(), "token expired at ") {
		t.Errorf("negative TTL token: err = %v, want expired", err)
	}
	other, _ := devIssuer(t, "http://localhost:8080/")
	forged, err := other.Mint(auth.TokenRequest{Audience: resource, TenantID: "acme", UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), forged); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("token of another dev key: err = %v, want ErrInvalidToken", err)
	}
}

func TestDevIssuerOverHTTP(t *testing.T) {
	t.Parallel()
	d, _ := devIssuer(t, "http://dev.local/")
	srv := httptest.NewServer(d)
	defer srv.Close()
	v, err := auth.NewVerifier(t.Context(), &auth.Options{
		Issuer: d.Issuer(), Audience: resource, JWKSURL: srv.URL + "/.well-known/jwks.json", Claims: auth.DevClaimMap(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	tok, err := d.Mint(auth.TokenRequest{Audience: resource, TenantID: "t1", UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	resp, err := http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST to the JWKS: status %d, want 405", resp.StatusCode)
	}
}

func TestDevIssuerKeyIsStable(t *testing.T) {
	t.Parallel()
	d1, key := devIssuer(t, "http://localhost/")
	d2, err := auth.NewDevIssuer("http://localhost/", key)
	if err != nil {
		t.Fatal(err)
	}
	if string(d1.JWKS()) != string(d2.JWKS()) {
		t.Errorf("the same key gave different JWK Sets:\n%s\n%s", d1.JWKS(), d2.JWKS())
	}
	// kid is the RFC 7638 thumbprint, computed here independently.
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(d1.JWKS(), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS = %s (%v), want one key", d1.JWKS(), err)
	}
	k := set.Keys[0]
	canon, _ := json.Marshal(map[string]string{"kty": k["kty"], "crv": k["crv"], "x": k["x"], "y": k["y"]}) // maps marshal sorted
	sum := sha256.Sum256(canon)
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); k["kid"] != want {
		t.Errorf("kid = %q, want RFC 7638 thumbprint %q", k["kid"], want)
	}
	if _, ok := k["d"]; ok {
		t.Error("JWKS publishes the private key")
	}
}

func TestNewDevIssuerKeys(t *testing.T) {
	t.Parallel()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384der, _ := x509.MarshalPKCS8PrivateKey(p384)
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsader, _ := x509.MarshalPKCS8PrivateKey(rk)
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	tests := []struct {
		name string
		key  []byte
		want string // "" = accepted
	}{
		{"SEC 1 P-256", pemOf("EC PRIVATE KEY", sec1), ""},
		{"P-384", pemOf("PRIVATE KEY", p384der), "want P-256"},
		{"RSA", pemOf("PRIVATE KEY", rsader), "want a P-256 ECDSA key"},
		{"not PEM", []byte("hello"), "not PEM"},
		{"certificate", pemOf("CERTIFICATE", []byte{1}), "not a private key"},
	}
	for _, tt := range tests {
		_, err := auth.NewDevIssuer("http://localhost/", tt.key)
		if tt.want == "" && err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: err = %v, want containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := auth.NewDevIssuer("", pemOf("EC PRIVATE KEY", sec1)); err == nil {
		t.Error("NewDevIssuer accepted an empty issuer")
	}
}

func TestMintRejects(t *testing.T) {
	t.Parallel()
	d, _ := devIssuer(t, "http://localhost/")
	tests := []struct {
		name string
		req  auth.TokenRequest
		want string
	}{
		{"no audience", auth.TokenRequest{UserID: "u"}, "Audience is required"},
		{"no user", auth.TokenRequest{Audience: resource}, "UserID is required"},
		{"extra overrides iss", auth.TokenRequest{Audience: resource, UserID: "u", Extra: map[string]any{"iss": "x"}}, `may not set "iss"`},
		{"extra overrides org_id", auth.TokenRequest{Audience: resource, UserID: "u", Extra: map[string]any{"org_id": "x"}}, `may not set "org_id"`},
		{"scope with space", auth.TokenRequest{Audience: resource, UserID: "u", Scopes: []string{"a b"}}, "whitespace"},
	}
	for _, tt := range tests {
		if _, err := d.Mint(tt.req); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want containing %q", tt.name, err, tt.want)
		}
	}
}

func TestResourceMetadata(t *testing.T) {
	t.Parallel()
	m := auth.ResourceMetadata{
		Resource:             resource,
		AuthorizationServers: []string{"https://acme.eu.auth0.com/"},
		ScopesSupported:      []string{"docs:read"},
		ResourceName:         "Docs MCP",
	}
	srv := httptest.NewServer(m)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("GET: status %d, headers %v", resp.StatusCode, resp.Header)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"resource":                 resource,
		"authorization_servers":    []any{"https://acme.eu.auth0.com/"},
		"scopes_supported":         []any{"docs:read"},
		"bearer_methods_supported": []any{"header"},
		"resource_name":            "Docs MCP",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("document (-want +got):\n%s", diff)
	}

	empty := httptest.NewServer(auth.ResourceMetadata{Resource: resource})
	defer empty.Close()
	resp, err = http.Get(empty.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if s := string(body); s != `{"resource":"https://mcp.example.com/mcp","authorization_servers":[],"bearer_methods_supported":["header"]}` {
		t.Errorf("minimal document = %s", s)
	}

	for method, status := range map[string]int{http.MethodHead: 200, http.MethodOptions: 204, http.MethodPost: 405, http.MethodDelete: 405} {
		req, _ := http.NewRequest(method, srv.URL, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Errorf("%s: status %d, want %d", method, resp.StatusCode, status)
		}
		if method == http.MethodHead && len(b) != 0 {
			t.Errorf("HEAD returned a body")
		}
	}
}

func TestMetadataURL(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"https://mcp.example.com/mcp":        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
		"https://mcp.example.com/mcp/":       "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
		"https://mcp.example.com":            "https://mcp.example.com/.well-known/oauth-protected-resource",
		"https://mcp.example.com/":           "https://mcp.example.com/.well-known/oauth-protected-resource",
		"https://h:8443/a/b":                 "https://h:8443/.well-known/oauth-protected-resource/a/b",
		"http://localhost:8080/mcp?v=1#frag": "http://localhost:8080/.well-known/oauth-protected-resource/mcp?v=1",
		"https://h/a%20b":                    "https://h/.well-known/oauth-protected-resource/a%20b",
		"/mcp":                               "",
		"":                                   "",
		"::":                                 "",
	}
	for in, want := range tests {
		if got := auth.MetadataURL(in); got != want {
			t.Errorf("MetadataURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChallenge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code, desc, scope, meta string
		want                    string
	}{
		{"", "", "", "", "Bearer"},
		{"", "", "", "https://h/.well-known/oauth-protected-resource/mcp", `Bearer resource_metadata="https://h/.well-known/oauth-protected-resource/mcp"`},
		{"invalid_token", "token expired at 2026-01-01T00:00:00Z", "", "https://m", `Bearer error="invalid_token", error_description="token expired at 2026-01-01T00:00:00Z", resource_metadata="https://m"`},
		{"insufficient_scope", "", "docs:read docs:write", "", `Bearer error="insufficient_scope", scope="docs:read docs:write"`},
		{"invalid_token", `issuer "a\b" is not accepted`, "", "", `Bearer error="invalid_token", error_description="issuer \"a\\b\" is not accepted"`},
		{"invalid_token", "line1\r\nSet-Cookie: x=1", "", "", `Bearer error="invalid_token", error_description="line1Set-Cookie: x=1"`},
	}
	for _, tt := range tests {
		if got := auth.Challenge(tt.code, tt.desc, tt.scope, tt.meta); got != tt.want {
			t.Errorf("Challenge(%q, %q, %q, %q)\n got %s\nwant %s", tt.code, tt.desc, tt.scope, tt.meta, got, tt.want)
		}
	}
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []string // nil = no header
		want   string
		err    error
	}{
		{"missing", nil, "", auth.ErrMissingToken},
		{"bearer", []string{"Bearer abc.def.ghi"}, "abc.def.ghi", nil},
		{"lower-case scheme", []string{"bearer abc"}, "abc", nil},
		{"upper-case scheme", []string{"BEARER abc"}, "abc", nil},
		{"token68 characters and padding", []string{"Bearer aZ09-._~+/=="}, "aZ09-._~+/==", nil},
		{"extra spaces", []string{"Bearer   abc"}, "abc", nil},
		{"surrounding whitespace", []string{"  Bearer abc  "}, "abc", nil},
		{"empty header", []string{""}, "", auth.ErrMalformedHeader},
		{"scheme only", []string{"Bearer"}, "", auth.ErrMalformedHeader},
		{"scheme and space", []string{"Bearer "}, "", auth.ErrMalformedHeader},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, "", auth.ErrMalformedHeader},
		{"two tokens", []string{"Bearer abc def"}, "", auth.ErrMalformedHeader},
		{"two headers", []string{"Bearer abc", "Bearer def"}, "", auth.ErrMalformedHeader},
		{"comma list", []string{"Bearer abc, Bearer def"}, "", auth.ErrMalformedHeader},
		{"junk characters", []string{"Bearer ab\"c"}, "", auth.ErrMalformedHeader},
		{"padding in the middle", []string{"Bearer ab=c"}, "", auth.ErrMalformedHeader},
		{"only padding", []string{"Bearer =="}, "", auth.ErrMalformedHeader},
		{"tab separator", []string{"Bearer\tabc"}, "", auth.ErrMalformedHeader},
		{"no space", []string{"Bearerabc"}, "", auth.ErrMalformedHeader},
	}
	for _, tt := range tests {
		h := http.Header{}
		for _, v := range tt.values {
			h.Add("Authorization", v)
		}
		got, err := auth.BearerToken(h)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
			t.Errorf("%s: BearerToken = %q, %v; want %q, %v", tt.name, got, err, tt.want, tt.err)
		}
	}
	// Tokens elsewhere are never looked at.
	r := httptest.NewRequest(http.MethodPost, "/mcp?access_token=abc", strings.NewReader("access_token=abc"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, err := auth.BearerToken(r.Header); !errors.Is(err, auth.ErrMissingToken) {
		t.Errorf("token in query/body: err = %v, want ErrMissingToken", err)
	}
}
