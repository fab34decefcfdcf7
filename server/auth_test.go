package server_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/internal/idptest"
	"github.com/tenantmcp/tenantmcp/registry"
)

// TestRefusals checks every way a request can be refused before it reaches
// a tool: the status, the WWW-Authenticate challenge and the message.
func TestRefusals(t *testing.T) {
	f := setup(t, setupOptions{claims: auth.ClaimMap{Tenant: "org_id", Scopes: []string{"scope"}}})
	f.addTenant(t, "org_active", nil)
	f.addTenant(t, "org_suspended", func(r *registry.Tenant) { r.Status = registry.StatusSuspended })
	f.addTenant(t, "org_trial_over", func(r *registry.Tenant) {
		r.Status = registry.StatusTrial
		r.TrialEndsAt = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	})
	f.addTenant(t, "org_trial_on", func(r *registry.Tenant) {
		r.Status = registry.StatusTrial
		r.TrialEndsAt = time.Now().Add(48 * time.Hour)
	})
	idp := f.idp
	good := func(mut func(map[string]any)) map[string]any {
		c := idp.GenericClaims(f.url, "user-1", []string{"read:tools"}, map[string]any{"org_id": "org_active"})
		if mut != nil {
			mut(c)
		}
		return c
	}
	metadata := `resource_metadata="` + f.base + `/.well-known/oauth-protected-resource/mcp"`

	// A token signed before rotation, whose kid is then gone.
	oldKid := idp.Sign(good(nil))

	cases := []struct {
		name      string
		header    string
		status    int
		challenge string // substring of WWW-Authenticate; "" = header absent
		message   string // substring of the JSON-RPC error message
	}{
		// RFC 6750 §3.1: no error information when no token was sent at
		// all; the scopes to ask for are named.
		{"no token", "", 401, `Bearer scope="read:tools execute:tools", resource_metadata=`, "no bearer token"},
		{"basic scheme", "Basic dXNlcjpwYXNz", 400, `error="invalid_request"`, "malformed Authorization header"},
		{"bearer without token", "Bearer ", 400, `error="invalid_request"`, "malformed"},
		{"two tokens", "Bearer a b", 400, `error="invalid_request"`, "malformed"},
		{"bad signature", "Bearer " + idp.TamperedSignature(good(nil)), 401, `error="invalid_token"`, "signature is invalid"},
		{"alg none", "Bearer " + idp.NoneToken(good(nil)), 401, `error="invalid_token"`, `"none" is not allowed`},
		{"HS256 with the RSA public key", "Bearer " + idp.HS256WithPublicKey(good(nil)), 401, `error="invalid_token"`, `"HS256" is not allowed`},
		{"wrong issuer", "Bearer " + idp.Sign(good(func(c map[string]any) { c["iss"] = "https://evil.example/" })), 401, `error="invalid_token"`, "issuer"},
		{"wrong audience", "Bearer " + idp.Sign(good(func(c map[string]any) { c["aud"] = "https://other.example/mcp" })), 401, `error="invalid_token"`, "audience not accepted"},
		{"expired", "Bearer " + idp.Sign(good(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), 401, `error="invalid_token"`, "token expired"},
		{"no exp", "Bearer " + idp.Sign(good(func(c map[string]any) { delete(c, "exp") })), 401, `error="invalid_token"`, "no exp claim"},
		{"not yet valid", "Bearer " + idp.Sign(good(func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() })), 401, `error="invalid_token"`, "not valid before"},
		{"forged kid", "Bearer " + idp.ForgedKid("attacker-kid", good(nil)), 401, `error="invalid_token"`, "unknown signing key"},
		{"missing tenant claim", "Bearer " + idp.Sign(good(func(c map[string]any) { delete(c, "org_id") })), 401, `error="invalid_token"`, "token carries no tenant claim 'org_id'"},
		{"unknown tenant", "Bearer " + f.genericToken("org_nobody", "u"), 403, "", "tenant is not registered"},
		{"suspended tenant", "Bearer " + f.genericToken("org_suspended", "u"), 403, "", "tenant is suspended"},
		{"expired trial", "Bearer " + f.genericToken("org_trial_over", "u"), 403, "", "trial ended on 2026-10-01"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawPost(t, f.url, tc.header, "")
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.status, body)
			}
			wa := resp.Header.Get("WWW-Authenticate")
			if tc.challenge == "" {
				if wa != "" {
					t.Errorf("WWW-Authenticate = %q, want none", wa)
				}
			} else {
				if !strings.Contains(wa, tc.challenge) || !strings.Contains(wa, metadata) {
					t.Errorf("WWW-Authenticate = %q, want %q and %q", wa, tc.challenge, metadata)
				}
			}
			if msg := errorMessage(t, body); !strings.Contains(msg, tc.message) {
				t.Errorf("message = %q, want it to contain %q", msg, tc.message)
			}
			// A refusal never names another tenant.
			for _, other := range []string{"org_active", "org_suspended", "org_trial_on"} {
				if tc.name != "suspended tenant" && strings.Contains(body, other) {
					t.Errorf("refusal body mentions tenant %s: %s", other, body)
				}
			}
		})
	}

	t.Run("active and trial tenants are served", func(t *testing.T) {
		for _, org := range []string{"org_active", "org_trial_on"} {
			c := connect(t, f.url, f.genericToken(org, "u"), "")
			if names := toolNames(t, c); len(names) == 0 {
				t.Fatalf("%s sees no tools", org)
			}
		}
	})

	t.Run("unknown kid after rotation", func(t *testing.T) {
		idp.Rotate()
		// A token signed with the new key has a kid the server has not seen:
		// it refreshes the JWKS (rate-limited) and accepts it.
		c := connect(t, f.url, f.genericToken("org_active", "u"), "")
		toolNames(t, c)
		// The old key is gone from the refreshed set: a token signed with it
		// (never used before, so not cached) is refused.
		resp, body := rawPost(t, f.url, "Bearer "+oldKid, "")
		if resp.StatusCode != 401 || !strings.Contains(errorMessage(t, body), "unknown signing key") {
			t.Fatalf("old kid after rotation: %d %s", resp.StatusCode, body)
		}
	})
}

// TestProviderPresets serves a token shaped as each identity provider
// issues it, through the preset's claim map.
func TestProviderPresets(t *testing.T) {
	preset := func(name string) auth.ClaimMap {
		m, err := auth.Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	t.Run("auth0", func(t *testing.T) {
		f := setup(t, setupOptions{claims: preset("auth0")})
		f.addTenant(t, "org_9fQ2xAcme", nil)
		tok := f.idp.Sign(f.idp.Auth0Claims(f.url, "org_9fQ2xAcme", "Acme", "auth0|alice", "read:documents", "execute:tools"))
		w := whoamiOf(t, connect(t, f.url, tok, ""))
		if w.External != "org_9fQ2xAcme" || w.User != "auth0|alice" || !slices.Contains(w.Scopes, "execute:tools") {
			t.Fatalf("whoami = %+v", w)
		}
		missing := f.idp.Sign(f.idp.Auth0Claims(f.url, "", "", "auth0|nobody"))
		resp, body := rawPost(t, f.url, "Bearer "+missing, "")
		if resp.StatusCode != 401 || errorMessage(t, body) != "token carries no tenant claim 'org_id'" {
			t.Fatalf("auth0 token without org_id: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("cognito", func(t *testing.T) {
		f := setup(t, setupOptions{claims: preset("cognito"), audience: "4fk1clientid"})
		f.addTenant(t, "tenant-7", nil)
		tok := f.idp.Sign(f.idp.CognitoAccessClaims("4fk1clientid", "tenant-7", "Seven", "c0gn1t0-sub", "execute:tools"))
		w := whoamiOf(t, connect(t, f.url, tok, ""))
		if w.External != "tenant-7" || w.User != "c0gn1t0-sub" || !slices.Contains(w.Scopes, "execute:tools") {
			t.Fatalf("whoami = %+v", w)
		}
		other := f.idp.Sign(f.idp.CognitoAccessClaims("another-client", "tenant-7", "Seven", "s"))
		if resp, _ := rawPost(t, f.url, "Bearer "+other, ""); resp.StatusCode != 401 {
			t.Fatalf("token for another app client: status %d, want 401", resp.StatusCode)
		}
	})

	t.Run("entra", func(t *testing.T) {
		f := setup(t, setupOptions{claims: preset("entra"), issuerFromIdP: (*idptest.IdP).EntraIssuerTemplate})
		const tid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
		f.addTenant(t, tid, nil)
		tok := f.idp.Sign(f.idp.EntraClaims(f.url, tid, "oid-123", "Documents.Write"))
		w := whoamiOf(t, connect(t, f.url, tok, ""))
		if w.External != tid || w.User != "oid-123" || !slices.Contains(w.Scopes, "Documents.Write") {
			t.Fatalf("whoami = %+v", w)
		}
		// An iss naming another directory than tid is refused.
		forged := f.idp.EntraClaims(f.url, tid, "oid-123")
		forged["iss"] = f.idp.EntraIssuer("11111111-2222-3333-4444-555555555555")
		if resp, _ := rawPost(t, f.url, "Bearer "+f.idp.Sign(forged), ""); resp.StatusCode != 401 {
			t.Fatalf("Entra token with mismatched iss: status %d, want 401", resp.StatusCode)
		}
	})

	t.Run("generic nested claim", func(t *testing.T) {
		f := setup(t, setupOptions{claims: auth.ClaimMap{Tenant: "organization.id", TenantName: "organization.name", Scopes: []string{"scope"}}})
		f.addTenant(t, "o-42", nil)
		tok := f.idp.Sign(f.idp.GenericClaims(f.url, "u-1", []string{"execute:tools"}, map[string]any{
			"organization": map[string]any{"id": "o-42", "name": "Forty Two"},
		}))
		w := whoamiOf(t, connect(t, f.url, tok, ""))
		if w.External != "o-42" || w.User != "u-1" {
			t.Fatalf("whoami = %+v", w)
		}
	})
}

// whoamiOf calls the whoami test tool.
func whoamiOf(t *testing.T, c *client.Client) whoami {
	t.Helper()
	res, err := call(t, c, "whoami", nil)
	if err != nil || res.IsError {
		t.Fatalf("whoami: %v %s", err, text(res))
	}
	var w whoami
	if err := json.Unmarshal([]byte(text(res)), &w); err != nil {
		t.Fatalf("whoami result %q: %v", text(res), err)
	}
	return w
}
