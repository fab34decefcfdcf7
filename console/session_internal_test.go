package console

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/admin"
)

func TestSessionTableBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tab := newSessions(3, clock)
	add := func(id string, admin bool, age, ttl time.Duration) {
		tab.add(&session{id: id, admin: admin, created: now.Add(-age), expires: now.Add(-age + ttl)})
	}
	add("old-admin", true, 3*time.Hour, 8*time.Hour)
	add("expired", true, 9*time.Hour, 8*time.Hour)
	add("no-access", false, time.Minute, 8*time.Hour)
	add("new", true, 0, 8*time.Hour) // full: the expired one goes
	if tab.get("expired") != nil || tab.get("old-admin") == nil || tab.get("no-access") == nil {
		t.Fatal("the expired session should have gone first")
	}
	add("newer", true, 0, 8*time.Hour) // full: the one without admin access goes
	if tab.get("no-access") != nil || tab.get("old-admin") == nil {
		t.Fatal("the session without admin access should have gone next")
	}
	add("newest", true, 0, 8*time.Hour) // full: the oldest goes
	if tab.get("old-admin") != nil || tab.get("new") == nil || tab.get("newest") == nil {
		t.Fatal("the oldest session should have gone")
	}
	if n := tab.len(); n != 3 {
		t.Fatalf("%d sessions, want 3", n)
	}

}

// TestSignInCookieSealed: a sign-in in progress lives only in its sealed
// cookie: the server holds nothing per started sign-in; the cookie does
// not show the nonce or the PKCE verifier, opens only with the key of
// the console that sealed it, unaltered and before it expires.
func TestSignInCookieSealed(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tab := newSessions(3, clock)
	a := &signInAttempt{State: randomID(24), Nonce: randomID(24), Verifier: randomID(48), Next: "/console/audit?tenant=x", Expires: now.Add(SignInTimeout)}
	v := tab.sealSignIn(a)
	for i := range 1000 {
		tab.sealSignIn(&signInAttempt{State: fmt.Sprint("s", i), Expires: now.Add(SignInTimeout)})
	}
	if n, u := tab.len(), len(tab.used); n != 0 || u != 0 {
		t.Fatalf("after 1001 sign-ins started the server holds %d sessions and %d sign-ins", n, u)
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{a.Verifier, a.Nonce, a.State, a.Next} {
		if strings.Contains(v, secret) || bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the sign-in cookie shows %q", secret)
		}
	}
	if len(v) > maxSignInCookie/2 {
		t.Errorf("sign-in cookie of %d bytes", len(v))
	}
	got, err := tab.openSignIn(v)
	if err != nil || *got != *a {
		t.Fatalf("openSignIn = %+v, %v; want %+v", got, err, a)
	}

	other := newSessions(3, clock) // another replica, or after a restart
	if _, err := other.openSignIn(v); !errors.Is(err, errSignInUnreadable) {
		t.Errorf("another console's key opened the cookie: %v", err)
	}
	flipped := slices.Clone(raw)
	flipped[len(flipped)/2] ^= 1
	for name, bad := range map[string]string{
		"altered":     base64.RawURLEncoding.EncodeToString(flipped),
		"truncated":   v[:len(v)-4],
		"not base64":  v + "!",
		"empty":       "",
		"the state":   a.State,
		"too long":    strings.Repeat("A", maxSignInCookie+1),
		"other field": tab.sealSignIn(&signInAttempt{Expires: now.Add(time.Minute)}),
	} {
		if _, err := tab.openSignIn(bad); !errors.Is(err, errSignInUnreadable) {
			t.Errorf("%s cookie: %v, want errSignInUnreadable", name, err)
		}
	}
	now = now.Add(SignInTimeout)
	if _, err := tab.openSignIn(v); !errors.Is(err, errSignInExpired) {
		t.Errorf("a sign-in %v old: %v, want errSignInExpired", SignInTimeout, err)
	}
}

// TestUsedSignInsBounded: a finished sign-in's state is refused from then
// on, until the attempt would have expired anyway; the set is bounded,
// dropping expired states, then those expiring first.
func TestUsedSignInsBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tab := newSessions(3, func() time.Time { return now })
	if tab.signInUsed("s") || !tab.useSignIn("s", now.Add(time.Minute)) {
		t.Fatal("a new state is not free")
	}
	if !tab.signInUsed("s") || tab.useSignIn("s", now.Add(time.Minute)) {
		t.Fatal("a finished sign-in is not refused a second time")
	}
	for i := range maxUsedSignIns - 1 {
		tab.useSignIn(fmt.Sprint("fill", i), now.Add(SignInTimeout+time.Duration(i)*time.Millisecond))
	}
	tab.useSignIn("late", now.Add(2*time.Hour)) // full: the one expiring first ("s") goes
	if len(tab.used) != maxUsedSignIns || tab.signInUsed("s") || !tab.signInUsed("fill0") || !tab.signInUsed("late") {
		t.Fatalf("full set: %d states, s %v, fill0 %v, late %v", len(tab.used), tab.signInUsed("s"), tab.signInUsed("fill0"), tab.signInUsed("late"))
	}
	now = now.Add(time.Hour) // all but "late" expired
	if tab.signInUsed("fill0") || !tab.useSignIn("fill0", now.Add(time.Minute)) {
		t.Error("an expired state is still refused")
	}
	if len(tab.used) != 2 {
		t.Errorf("%d states kept after the others expired, want 2 (late, fill0)", len(tab.used))
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/console/audit?tenant=x": "/console/audit?tenant=x",
		"//evil.example/":         "/console/tenants",
		"https://evil.example/":   "/console/tenants",
		"/mcp":                    "/console/tenants",
		"/console/\\evil":         "/console/tenants",
		"":                        "/console/tenants",
		"/console/audit?q=" + strings.Repeat("x", maxNext): "/console/tenants",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://console.example":          "https://console.example",
		"HTTPS://Console.EXAMPLE":          "https://console.example",
		"https://console.example:443":      "https://console.example",
		"https://console.example:8443":     "https://console.example:8443",
		"http://console.example:80":        "http://console.example",
		"http://console.example:443":       "http://console.example:443",
		"https://console.example:80":       "https://console.example:80",
		"http://[::1]:80":                  "http://[::1]",
		"http://[::1]:8080":                "http://[::1]:8080",
		"https://console.example/":         "https://console.example/", // not an origin: kept, matches nothing
		"https://user@console.example":     "https://user@console.example",
		"https://console.example?x":        "https://console.example?x",
		"null":                             "null",
		"console.example":                  "console.example",
		"https://console.example:443/path": "https://console.example:443/path",
	} {
		if got := normalOrigin(in); got != want {
			t.Errorf("normalOrigin(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOriginNormalised: a console whose RedirectURL has an upper-case host
// or the scheme's default port accepts changes from its pages, whose
// Origin browsers send lower-case and without that port (before the fix
// every change was refused); another scheme, host or port is still
// refused.
func TestOriginNormalised(t *testing.T) {
	for _, tc := range []struct {
		redirect, origin string
		ok               bool
	}{
		{"https://Console.Example/console/callback", "https://console.example", true},
		{"https://console.example:443/console/callback", "https://console.example", true},
		{"HTTPS://CONSOLE.EXAMPLE:443/console/callback", "https://console.example", true},
		{"http://LOCALHOST:80/console/callback", "http://localhost", true},
		{"https://console.example/console/callback", "https://CONSOLE.example:443", true},
		{"https://console.example:8443/console/callback", "https://console.example:8443", true},
		{"https://console.example:443/console/callback", "https://console.example:8443", false},
		{"https://console.example:443/console/callback", "http://console.example", false},
		{"https://Console.Example/console/callback", "https://console.example.evil", false},
		{"https://console.example/console/callback", "https://console.example/x", false},
	} {
		c := signedInConsole(t, &admin.Service{}, tc.redirect) // sign-out reaches no service
		req := httptest.NewRequest(http.MethodPost, "/console/signout", strings.NewReader("csrf=tok"))
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: "sid"})
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", tc.origin)
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		if ok := rec.Code == http.StatusSeeOther; ok != tc.ok {
			t.Errorf("console at %s, Origin %s: %d, want accepted %v\n%s", tc.redirect, tc.origin, rec.Code, tc.ok, rec.Body)
		}
	}
}
