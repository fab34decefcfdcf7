package devauth_test

import (
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/auth/devauth"
)

// FuzzRedirectURI: whatever a registration sends, an accepted redirect
// URI is an absolute http(s) URL with a host, no fragment and no user
// information, and http only on a loopback host.
func FuzzRedirectURI(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:3000/cb", "https://app.example/cb?x=1", "http://localhost/cb", "http://[::1]/",
		"http://127.0.0.1.evil/cb", "https://a@b/", "javascript:alert(1)", "http://evil#@127.0.0.1/", "HTTP://LOCALHOST/cb", "http://127.1/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if devauth.CheckRedirectURI(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || u.User != nil || strings.Contains(raw, "#") {
			t.Fatalf("accepted %q (host %q, user %v)", raw, u.Host, u.User)
		}
		switch u.Scheme {
		case "https":
		case "http":
			h := u.Hostname()
			if ip := net.ParseIP(h); !strings.EqualFold(h, "localhost") && (ip == nil || !ip.IsLoopback()) {
				t.Fatalf("accepted http on %q: %q", h, raw)
			}
		default:
			t.Fatalf("accepted scheme %q: %q", u.Scheme, raw)
		}
	})
}
