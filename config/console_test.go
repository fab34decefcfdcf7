package config

import (
	"slices"
	"strings"
	"testing"
)

func TestValidateConsole(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Auth.Domain = "example.auth0.com"
	if err := c.Validate(); err != nil {
		t.Fatalf("the console is off by default and needs nothing: %v", err)
	}
	if got, want := c.EffectiveConsoleRedirectURL(), c.PublicBaseURL()+"/console/callback"; got != want {
		t.Errorf("redirect URL %q, want %q", got, want)
	}

	c.Console.Enabled = true
	c.Admin.Enabled = false
	c.Console.SessionTTL = 0
	c.Console.RedirectURL = "http://mcp.example.com/console/back"
	es := errorsOf(t, c.Validate())
	for _, want := range []string{"console.enabled", "console.client_id", "console.session_ttl", "console.redirect_url"} {
		if !slices.Contains(keysOf(es), want) {
			t.Errorf("no problem with %s in:\n%v", want, es)
		}
	}
	if msg := es.Error(); !strings.Contains(msg, "admin.enabled") || !strings.Contains(msg, "/console/callback") {
		t.Errorf("messages do not say what to do:\n%s", msg)
	}

	c.Admin.Enabled = true
	c.Console.ClientID = "console"
	c.Console.SessionTTL = DefaultConsoleSessionTTL
	c.Console.RedirectURL = "http://mcp.example.com/console/callback"
	es = errorsOf(t, c.Validate())
	if got := keysOf(es); !slices.Equal(got, []string{"console.redirect_url"}) || !strings.Contains(es.Error(), "https") {
		t.Errorf("plain http on a public host: %v", es)
	}
	c.Console.RedirectURL = "http://127.0.0.1:8080/console/callback"
	if err := c.Validate(); err != nil {
		t.Errorf("loopback http: %v", err)
	}
	c.Auth.Enabled = false
	if es := errorsOf(t, c.Validate()); !slices.Contains(keysOf(es), "console.enabled") || !strings.Contains(es.Error(), "auth.enabled") {
		t.Errorf("console without authentication: %v", es)
	}
}

func TestConsoleClientSecretRedacted(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Console.ClientSecret = "s3cr3t-value"
	out := string(c.Encode(true))
	if strings.Contains(out, "s3cr3t-value") || !strings.Contains(out, `client_secret = "REDACTED"`) {
		t.Errorf("redacted encoding shows the console's client secret:\n%s", out)
	}
}
