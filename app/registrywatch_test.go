package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/registrytest"
)

// post sends a tools/list request with token and returns the status and
// body of the answer.
func post(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSuspensionReachesOtherReplica: two replicas on one PostgreSQL
// database, each caching tenant records for the default 30s. A tenant
// suspended through replica 1's admin API is refused
// by replica 2 at its next request after the notification arrives, and
// served again once resumed; a tenant added through replica 1 is served by
// replica 2 although replica 2 had just cached it as not registered.
func TestSuspensionReachesOtherReplica(t *testing.T) {
	ctx := context.Background()
	admin, owner, appRole := testenv.PostgresWithRoles(t)
	password := app.RandomPassword()
	appDSN, err := app.AppDSN(admin, appRole, password)
	if err != nil {
		t.Fatal(err)
	}
	dbTOML := fmt.Sprintf("[auth.multi_tenant]\ntenant_claim = \"org_id\"\nisolation = \"row_level_security\"\n[database]\ndsn = %q\nowner_role = %q\napp_role = %q\n",
		appDSN, owner, appRole)
	cfg, err := config.Parse([]byte("[auth]\nprovider = \"generic\"\nissuer = \"http://127.0.0.1/dev\"\n"+dbTOML), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.SetupDatabase(ctx, cfg, admin, &app.SetupOptions{AppPassword: password}); err != nil {
		t.Fatalf("setup: %v", err)
	}
	key, err := auth.GenerateDevKey()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := auth.NewDevIssuer("http://127.0.0.1/dev", key)
	if err != nil {
		t.Fatal(err)
	}
	r1, r2 := deploy(t, dbTOML, &app.Options{Dev: iss}), deploy(t, dbTOML, &app.Options{Dev: iss})

	acme, err := r1.app.EnsureTenant(ctx, iss.Issuer(), "acme", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	acmeTok, err := iss.Mint(auth.TokenRequest{Audience: r2.url, TenantID: "acme", UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if st, body := post(t, r2.url, acmeTok); st != 200 { // now cached by replica 2
		t.Fatalf("acme through replica 2: %d %s", st, body)
	}
	// Through replica 1's admin API, as a sign-up or billing system would.
	adminTok, err := iss.Mint(auth.TokenRequest{Audience: r1.url, UserID: "ops", Scopes: []string{"admin:global"}})
	if err != nil {
		t.Fatal(err)
	}
	setStatus := func(verb string) {
		t.Helper()
		url := strings.TrimSuffix(r1.url, "/mcp") + "/admin/v1/tenants/" + string(acme.ID) + "/" + verb
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"reason":"test"}`))
		req.Header.Set("Authorization", "Bearer "+adminTok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s through replica 1's admin API: %d %s", verb, resp.StatusCode, b)
		}
	}
	setStatus("suspend")
	registrytest.Eventually(t, "replica 2 refuses the tenant suspended through replica 1", func() bool {
		st, body := post(t, r2.url, acmeTok)
		return st == 403 && strings.Contains(body, "suspended")
	})
	setStatus("resume")
	registrytest.Eventually(t, "replica 2 serves the tenant resumed through replica 1", func() bool {
		st, _ := post(t, r2.url, acmeTok)
		return st == 200
	})

	// A tenant replica 2 has just been asked about (and remembers as not
	// registered) is added through replica 1.
	tok, err := iss.Mint(auth.TokenRequest{Audience: r2.url, TenantID: "globex", UserID: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := post(t, r2.url, tok); st != 403 {
		t.Fatalf("globex before it is added: status %d, want 403", st)
	}
	if _, err := r1.app.AddTenant(ctx, registry.Tenant{Issuer: iss.Issuer(), ExternalID: "globex"}); err != nil {
		t.Fatal(err)
	}
	registrytest.Eventually(t, "replica 2 serves the tenant added through replica 1", func() bool {
		st, _ := post(t, r2.url, tok)
		return st == 200
	})
}
