package app

import (
	"testing"

	"github.com/tenantmcp/tenantmcp/config"
)

// TestConsoleOptionsServe: in serve the console signs in at the admin
// issuer with the configured client, asks for the admin tokens' audience,
// and is off unless console.enabled.
func TestConsoleOptionsServe(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.Domain = "tenants.example.auth0.com"
	cfg.Server.PublicURL = "https://mcp.example.com"
	cfg.Admin.Issuer = "https://ops.example.com/"
	cfg.Console.ClientID = "console-client"
	cfg.Console.ClientSecret = "shh"
	a := &App{Config: cfg}
	if a.consoleEnabled() {
		t.Error("the console is on without console.enabled")
	}
	cfg.Console.Enabled = true
	if !a.consoleEnabled() {
		t.Error("the console is off with console.enabled")
	}
	o, err := a.consoleOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Issuer != "https://ops.example.com/" || o.ClientID != "console-client" || o.ClientSecret != "shh" ||
		o.RedirectURL != "https://mcp.example.com/console/callback" || o.Resource != "https://mcp.example.com/mcp" ||
		o.Scope != cfg.Admin.Scope || o.SessionTTL != cfg.Console.SessionTTL {
		t.Errorf("console options %+v", o)
	}
	cfg.Admin.Audience = "https://ops-api.example.com"
	if o, _ := a.consoleOptions(nil); o.Resource != "https://ops-api.example.com" {
		t.Errorf("resource %q, want admin.audience", o.Resource)
	}
	cfg.Admin.Enabled = false
	if a.consoleEnabled() {
		t.Error("the console is on without admins")
	}
}
