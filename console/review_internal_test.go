package console

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"
)

// idToken is an unsigned JWT with claims (the console does not check an
// ID token's signature: it comes over the back channel).
func idToken(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"ES256","typ":"JWT"}`)) + "." + enc(b) + "." + enc([]byte("sig"))
}

// TestReviewIDTokenChecks: the ID token of a sign-in must be this
// provider's (iss), for the console (aud), of this sign-in (nonce) and
// not expired (exp, OpenID Connect Core 3.1.3.7 item 9: before the fix
// an expired ID token was accepted).
func TestReviewIDTokenChecks(t *testing.T) {
	now := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	c := &Console{o: Options{ClientID: "console", Now: func() time.Time { return now }}}
	m := &providerMetadata{Issuer: "https://idp.example"}
	good := func() map[string]any {
		return map[string]any{"iss": "https://idp.example", "aud": "console", "nonce": "n1", "exp": now.Add(time.Hour).Unix(), "sub": "alice"}
	}
	if why := c.checkIDToken(idToken(t, good()), m, "n1"); why != "" {
		t.Fatalf("a good ID token is refused: %s", why)
	}
	arr := good()
	arr["aud"] = []string{"other", "console"}
	if why := c.checkIDToken(idToken(t, arr), m, "n1"); why != "" {
		t.Fatalf("an audience list with the console is refused: %s", why)
	}
	// Within the leeway for clock skew.
	skew := good()
	skew["exp"] = now.Add(-30 * time.Second).Unix()
	if why := c.checkIDToken(idToken(t, skew), m, "n1"); why != "" {
		t.Fatalf("an ID token 30 s past exp (clock skew) is refused: %s", why)
	}
	for name, change := range map[string]func(map[string]any){
		"another issuer":   func(c map[string]any) { c["iss"] = "https://evil.example" },
		"another audience": func(c map[string]any) { c["aud"] = "another-client" },
		"no audience":      func(c map[string]any) { delete(c, "aud") },
		"another nonce":    func(c map[string]any) { c["nonce"] = "n2" },
		"no nonce":         func(c map[string]any) { delete(c, "nonce") },
		"expired":          func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() },
		"no exp":           func(c map[string]any) { delete(c, "exp") },
		"exp not a number": func(c map[string]any) { c["exp"] = "tomorrow" },
	} {
		cl := good()
		change(cl)
		if why := c.checkIDToken(idToken(t, cl), m, "n1"); why == "" {
			t.Errorf("%s: the ID token is accepted", name)
		}
	}
	for _, tok := range []string{"", "a.b", "a.!!!.c", "a." + base64.RawURLEncoding.EncodeToString([]byte("[1]")) + ".c"} {
		if why := c.checkIDToken(tok, m, "n1"); why == "" {
			t.Errorf("ID token %q is accepted", tok)
		}
	}
}
