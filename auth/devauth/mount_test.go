package devauth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/auth/devauth"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenanttest"
)

// deployment is an app's server on an httptest server.
type deployment struct {
	base string
	app  *app.App
}

// deployApp assembles cfgTOML (a [server] section is added) with opts and
// serves it.
func deployApp(t *testing.T, ts *httptest.Server, cfgTOML string, opts *app.Options) *deployment {
	t.Helper()
	ctx := context.Background()
	full := fmt.Sprintf("[server]\nlisten = %q\ndata_dir = %q\n", ts.Listener.Addr().String(), t.TempDir()) + cfgTOML
	cfg, err := config.Parse([]byte(full), nil)
	if err != nil {
		t.Fatalf("config:\n%s\n%v", full, err)
	}
	a, err := app.Open(ctx, cfg, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	srv, stop, err := a.Server(ctx)
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	t.Cleanup(stop)
	ts.Config.Handler = srv
	ts.Start()
	t.Cleanup(ts.Close)
	return &deployment{base: "http://" + ts.Listener.Addr().String(), app: a}
}

// devPaths are the paths of every route of a dev authorization server
// for an issuer at base + "/dev".
func devPaths(t *testing.T, base string) []string {
	t.Helper()
	key, _ := auth.GenerateDevKey()
	iss, err := auth.NewDevIssuer(base+"/dev", key)
	if err != nil {
		t.Fatal(err)
	}
	das, err := devauth.New(iss, base+"/mcp", func(context.Context) ([]devauth.Tenant, error) { return nil, nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for pattern := range das.Routes() {
		_, path, _ := strings.Cut(pattern, " ")
		if path == "" {
			path = pattern
		}
		paths = append(paths, path)
	}
	if len(paths) < 7 {
		t.Fatalf("routes %v", paths)
	}
	return paths
}

// TestServeHasNoDevAuthorizationServer: serve (any auth setting) answers
// none of the dev authorization server's routes; dev answers all.
func TestServeHasNoDevAuthorizationServer(t *testing.T) {
	// The identity provider of the serve deployment: a development issuer
	// whose JWK Set is served elsewhere, at the same /dev path.
	key, _ := auth.GenerateDevKey()
	idp := httptest.NewUnstartedServer(nil)
	idpIss, err := auth.NewDevIssuer("http://"+idp.Listener.Addr().String()+"/dev", key)
	if err != nil {
		t.Fatal(err)
	}
	idp.Config.Handler = idpIss
	idp.Start()
	t.Cleanup(idp.Close)

	for name, cfgTOML := range map[string]string{
		"serve with an identity provider": fmt.Sprintf("[auth]\nprovider = \"generic\"\nissuer = %q\njwks_url = %q\n[auth.multi_tenant]\nenabled = true\ntenant_claim = \"org_id\"\n",
			idpIss.Issuer(), idp.URL+"/dev/jwks.json"),
		"serve without authentication": "[auth]\nenabled = false\n",
	} {
		t.Run(name, func(t *testing.T) {
			ts := httptest.NewUnstartedServer(nil)
			d := deployApp(t, ts, cfgTOML, nil)
			for _, path := range devPaths(t, d.base) {
				for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodOptions} {
					req, _ := http.NewRequest(method, d.base+path, nil)
					if res := do(t, nil, req); res.status != http.StatusNotFound {
						t.Errorf("serve answers %s %s with %d:\n%s", method, path, res.status, res.body)
					}
				}
			}
		})
	}
	t.Run("dev", func(t *testing.T) {
		ts := httptest.NewUnstartedServer(nil)
		base := "http://" + ts.Listener.Addr().String()
		iss, err := auth.NewDevIssuer(base+"/dev", key)
		if err != nil {
			t.Fatal(err)
		}
		d := deployApp(t, ts, fmt.Sprintf("[auth]\nprovider = \"generic\"\nissuer = %q\n[auth.multi_tenant]\nenabled = true\ntenant_claim = \"org_id\"\n", iss.Issuer()), &app.Options{Dev: iss})
		for _, path := range devPaths(t, d.base) {
			if res := get(t, nil, d.base+path); res.status == http.StatusNotFound {
				t.Errorf("dev does not serve %s", path)
			}
		}
	})
}

// TestThroughTheDevServer: the whole flow through an app assembled as
// dev assembles it, ending in tool calls as the tenant signed in to; the
// other tenant sees nothing of them. Tenants created while it runs are
// offered, and so is the administrator.
func TestThroughTheDevServer(t *testing.T) {
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	key, _ := auth.GenerateDevKey()
	iss, err := auth.NewDevIssuer(base+"/dev", key)
	if err != nil {
		t.Fatal(err)
	}
	d := deployApp(t, ts, fmt.Sprintf("[auth]\nprovider = \"generic\"\nissuer = %q\n[auth.multi_tenant]\nenabled = true\ntenant_claim = \"org_id\"\n", iss.Issuer()), &app.Options{Dev: iss})
	ctx := context.Background()
	for _, ext := range []string{"acme", "globex"} {
		if _, err := d.app.EnsureTenant(ctx, iss.Issuer(), ext, strings.ToUpper(ext[:1])+ext[1:]); err != nil {
			t.Fatal(err)
		}
	}
	// A tenant of another issuer is not offered.
	if _, err := d.app.EnsureTenant(ctx, "https://other.example/", "hooli", "Hooli"); err != nil {
		t.Fatal(err)
	}
	resource := base + "/mcp"
	b := &bundle{srv: &httptest.Server{URL: base}, iss: iss, resource: resource}
	b.verifier, err = auth.NewVerifier(ctx, &auth.Options{Issuer: iss.Issuer(), Audience: resource, JWKS: iss.JWKS(), Claims: auth.DevClaimMap(), TenantOptional: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.verifier.Close)

	signIn := func(account, user string) (string, *auth.Identity) {
		f := b.newFlow(t, callback)
		f.open(t)
		if !strings.Contains(f.pageBody, "Acme") || !strings.Contains(f.pageBody, "Globex") || strings.Contains(f.pageBody, "Hooli") {
			t.Fatalf("the page does not offer exactly the dev issuer's tenants:\n%s", f.pageBody)
		}
		res := f.submit(t, account, user)
		code := redirected(t, res, callback).Get("code")
		res = f.redeem(t, code)
		if res.status != http.StatusOK {
			t.Fatalf("token: %d %s", res.status, res.body)
		}
		tok := res.json(t)["access_token"].(string)
		id, err := b.verifier.Verify(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		return tok, id
	}
	globexTok, id := signIn("tenant:globex", "bob@globex.example")
	if id.TenantID != "globex" || strings.Join(id.Scopes, " ") != strings.Join(app.DevScopes(d.app.Tools()), " ") {
		t.Fatalf("globex token %+v", id)
	}
	acmeTok, _ := signIn("tenant:acme", "")
	globex, acme := tenanttest.Dial(t, resource, globexTok, ""), tenanttest.Dial(t, resource, acmeTok, "")
	if res := globex.Call(t, "put_document", map[string]any{"key": "signed-in.md", "content": "globex via oauth"}); res.IsError {
		t.Fatalf("globex put_document: %s", res.Text)
	}
	if res := globex.Call(t, "get_document", map[string]any{"key": "signed-in.md"}); !strings.Contains(res.Text, "globex via oauth") {
		t.Fatalf("globex get_document: %s", res.Text)
	}
	if res := acme.Call(t, "get_document", map[string]any{"key": "signed-in.md"}); !res.IsError || strings.Contains(res.Text, "globex via oauth") {
		t.Fatalf("acme reads globex's document: %s", res.Text)
	}

	// The administrator: no tenant, the admin scope.
	_, id = signIn("admin", "ops@example.com")
	if id.TenantID != "" || strings.Join(id.Scopes, " ") != d.app.Config.Admin.Scope {
		t.Fatalf("admin token %+v", id)
	}

	// A tenant created now is offered at once.
	if _, err := d.app.EnsureTenant(ctx, iss.Issuer(), "initech", "Initech"); err != nil {
		t.Fatal(err)
	}
	f := b.newFlow(t, callback)
	f.open(t)
	if !strings.Contains(f.pageBody, "Initech") {
		t.Fatalf("initech not offered:\n%s", f.pageBody)
	}
	// A suspended tenant is not.
	rec, err := d.app.Registry.Lookup(ctx, iss.Issuer(), "initech")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.app.Registry.Update(ctx, rec.ID, func(t *registry.Tenant) error { t.Status = registry.StatusSuspended; return nil }); err != nil {
		t.Fatal(err)
	}
	f = b.newFlow(t, callback)
	f.open(t)
	if strings.Contains(f.pageBody, "Initech") {
		t.Fatalf("suspended initech offered:\n%s", f.pageBody)
	}

	// The protected-resource metadata leads a client to this server.
	res := get(t, nil, base+"/.well-known/oauth-protected-resource/mcp")
	if as := res.json(t)["authorization_servers"]; fmt.Sprint(as) != "["+iss.Issuer()+"]" {
		t.Fatalf("authorization_servers %v", as)
	}
	res = get(t, nil, base+"/.well-known/oauth-authorization-server/dev")
	if res.json(t)["registration_endpoint"] != base+"/dev/register" {
		t.Fatal(res.body)
	}
}
