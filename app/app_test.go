package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenanttest"
)

// deployment is an assembled app served over HTTP with a dev issuer.
type deployment struct {
	url string
	iss *auth.DevIssuer
	app *app.App
}

// deploy assembles cfgTOML (a [server] section with public_url and
// data_dir is added) and serves it, with opts.Dev as its issuer if set
// (replicas share one) or a new development issuer.
func deploy(t *testing.T, cfgTOML string, opts *app.Options) *deployment {
	t.Helper()
	ctx := context.Background()
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	if opts == nil {
		opts = &app.Options{}
	}
	iss := opts.Dev
	if iss == nil {
		key, err := auth.GenerateDevKey()
		if err != nil {
			t.Fatal(err)
		}
		if iss, err = auth.NewDevIssuer(base+"/dev", key); err != nil {
			t.Fatal(err)
		}
	}
	full := fmt.Sprintf("[server]\nlisten = %q\ndata_dir = %q\n[auth]\nprovider = \"generic\"\nissuer = %q\n", ts.Listener.Addr().String(), t.TempDir(), iss.Issuer()) + cfgTOML
	cfg, err := config.Parse([]byte(full), nil)
	if err != nil {
		t.Fatalf("config:\n%s\n%v", full, err)
	}
	opts.Dev = iss
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
	return &deployment{url: base + "/mcp", iss: iss, app: a}
}

func (d *deployment) client(t *testing.T, tenantID, user string) *tenanttest.Client {
	t.Helper()
	if _, err := d.app.EnsureTenant(context.Background(), d.iss.Issuer(), tenantID, tenantID); err != nil {
		t.Fatalf("tenant %s: %v", tenantID, err)
	}
	tok, err := d.iss.Mint(auth.TokenRequest{Audience: d.url, TenantID: tenantID, UserID: user})
	if err != nil {
		t.Fatal(err)
	}
	return tenanttest.Dial(t, d.url, tok, "")
}

func call(t *testing.T, c *tenanttest.Client, name string, args map[string]any) (string, bool) {
	t.Helper()
	res := c.Call(t, name, args)
	return res.Text, res.IsError
}

// documentsIsolation is the end-to-end isolation check every strategy
// must pass through the server with the unchanged example tools.
func documentsIsolation(t *testing.T, d *deployment) {
	t.Helper()
	acme, globex := d.client(t, "acme", "alice"), d.client(t, "globex", "bob")
	if out, isErr := call(t, acme, "put_document", map[string]any{"key": "plans/q3.md", "content": "acme secret"}); isErr {
		t.Fatalf("acme put: %s", out)
	}
	if out, _ := call(t, acme, "get_document", map[string]any{"key": "plans/q3.md"}); !strings.Contains(out, "acme secret") {
		t.Fatalf("acme get: %s", out)
	}
	if out, isErr := call(t, globex, "get_document", map[string]any{"key": "plans/q3.md"}); !isErr || strings.Contains(out, "acme secret") {
		t.Fatalf("globex get: %s", out)
	}
	if out, _ := call(t, globex, "list_documents", nil); !strings.Contains(out, `"keys":[]`) {
		t.Fatalf("globex list: %s", out)
	}
	if out, isErr := call(t, globex, "delete_document", map[string]any{"key": "plans/q3.md"}); !isErr {
		t.Fatalf("globex delete: %s", out)
	}
	if out, isErr := call(t, globex, "put_document", map[string]any{"key": "plans/q3.md", "content": "globex plan"}); isErr {
		t.Fatalf("globex put: %s", out)
	}
	if out, _ := call(t, acme, "get_document", map[string]any{"key": "plans/q3.md"}); !strings.Contains(out, "acme secret") {
		t.Fatalf("acme's document changed after globex wrote the same key: %s", out)
	}
	if out, _ := call(t, acme, "list_documents", map[string]any{"prefix": "plans/"}); !strings.Contains(out, `"keys":["plans/q3.md"]`) {
		t.Fatalf("acme list: %s", out)
	}
	if out, isErr := call(t, acme, "delete_document", map[string]any{"key": "plans/q3.md"}); isErr {
		t.Fatalf("acme delete: %s", out)
	}
	if out, _ := call(t, globex, "get_document", map[string]any{"key": "plans/q3.md"}); !strings.Contains(out, "globex plan") {
		t.Fatalf("globex's document gone after acme's delete: %s", out)
	}
}

// TestStrategies runs the example tools through the server on every
// isolation strategy.
func TestStrategies(t *testing.T) {
	t.Run("database_per_tenant", func(t *testing.T) {
		t.Parallel()
		documentsIsolation(t, deploy(t, "[auth.multi_tenant]\ntenant_claim = \"org_id\"\nisolation = \"database_per_tenant\"\n", nil))
	})
	t.Run("prefix_fs", func(t *testing.T) {
		t.Parallel()
		documentsIsolation(t, deploy(t, "[auth.multi_tenant]\ntenant_claim = \"org_id\"\nisolation = \"prefix\"\n", nil))
	})
	t.Run("prefix_s3", func(t *testing.T) {
		t.Parallel()
		backend := s3mem.New()
		if err := backend.CreateBucket("tenant-objects"); err != nil {
			t.Fatal(err)
		}
		s3 := httptest.NewServer(gofakes3.New(backend).Server())
		t.Cleanup(s3.Close)
		cfg := fmt.Sprintf("[auth.multi_tenant]\ntenant_claim = \"org_id\"\nisolation = \"prefix\"\n[storage]\nblob = \"s3\"\ns3_bucket = \"tenant-objects\"\ns3_endpoint = %q\ns3_path_style = true\n", s3.URL)
		documentsIsolation(t, deploy(t, cfg, &app.Options{S3AccessKey: "test", S3SecretKey: "test"}))
	})
	for _, iso := range []string{"row_level_security", "schema_per_tenant"} {
		t.Run(iso, func(t *testing.T) {
			t.Parallel()
			admin, owner, appRole := testenv.PostgresWithRoles(t)
			password := app.RandomPassword()
			appDSN, err := app.AppDSN(admin, appRole, password)
			if err != nil {
				t.Fatal(err)
			}
			cfgTOML := fmt.Sprintf("[auth.multi_tenant]\ntenant_claim = \"org_id\"\nisolation = %q\n[database]\ndsn = %q\nadmin_dsn = %q\nowner_role = %q\napp_role = %q\n",
				iso, appDSN, admin, owner, appRole)
			cfg, err := config.Parse([]byte("[auth]\nprovider = \"generic\"\nissuer = \"http://127.0.0.1/dev\"\n"+cfgTOML), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := app.SetupDatabase(context.Background(), cfg, admin, &app.SetupOptions{AppPassword: password}); err != nil {
				t.Fatalf("setup: %v", err)
			}
			documentsIsolation(t, deploy(t, cfgTOML, nil))
			// Provisioning acme and globex used admin_dsn; afterwards only
			// the application role's pool is connected.
			testenv.OnlySessionsAs(t, admin, appRole)
		})
	}
}

// TestUnsafeDatabaseRoleRefused: the server will not serve RLS as a role
// that could bypass it (here the superuser).
func TestUnsafeDatabaseRoleRefused(t *testing.T) {
	admin, owner, appRole := testenv.PostgresWithRoles(t)
	cfgTOML := fmt.Sprintf("[auth]\nprovider = \"generic\"\nissuer = \"http://127.0.0.1/dev\"\n[auth.multi_tenant]\ntenant_claim = \"org_id\"\n[database]\ndsn = %q\nowner_role = %q\napp_role = %q\n", admin, owner, appRole)
	cfg, err := config.Parse([]byte(cfgTOML), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.SetupDatabase(context.Background(), cfg, admin, nil); err != nil {
		t.Fatal(err)
	}
	cfg.Server.DataDir = t.TempDir()
	_, err = app.Open(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "application role") {
		t.Fatalf("opening RLS as the superuser: %v", err)
	}
	_ = http.StatusOK
}

// TestMigrateProvisionsRegisteredTenants: a tenant registered without its
// schema (written by another tool) gets an internal error, and "db migrate"
// provisions it.
func TestMigrateProvisionsRegisteredTenants(t *testing.T) {
	ctx := context.Background()
	admin, owner, appRole := testenv.PostgresWithRoles(t)
	password := app.RandomPassword()
	appDSN, _ := app.AppDSN(admin, appRole, password)
	cfgTOML := fmt.Sprintf("[auth.multi_tenant]\ntenant_claim = \"org_id\"\nisolation = \"schema_per_tenant\"\n[database]\ndsn = %q\nowner_role = %q\napp_role = %q\n", appDSN, owner, appRole)
	cfg, err := config.Parse([]byte("[auth]\nprovider = \"generic\"\nissuer = \"http://127.0.0.1/dev\"\n"+cfgTOML), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.SetupDatabase(ctx, cfg, admin, &app.SetupOptions{AppPassword: password}); err != nil {
		t.Fatal(err)
	}
	d := deploy(t, cfgTOML, nil) // no admin_dsn: the server cannot provision
	if _, err := d.app.Registry.Add(ctx, registry.Tenant{Issuer: d.iss.Issuer(), ExternalID: "orphan"}); err != nil {
		t.Fatal(err)
	}
	c := d.client(t, "orphan", "u")
	// The tenant is told only that the server failed (the operator's log
	// names the missing schema); nothing about the database reaches it.
	if out, isErr := call(t, c, "list_documents", nil); !isErr || !strings.HasPrefix(out, "internal error (request id ") {
		t.Fatalf("unprovisioned tenant: %s", out)
	}
	var progress strings.Builder
	if err := app.MigrateDatabase(ctx, d.app.Config, admin, &progress); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "registered tenants provisioned: 1/1") {
		t.Fatalf("progress:\n%s", progress.String())
	}
	if out, isErr := call(t, c, "list_documents", nil); isErr {
		t.Fatalf("after db migrate: %s", out)
	}
}

// TestDatabaseRoles: role names default to ones derived from the
// deployment's database; explicit names win.
func TestDatabaseRoles(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		dsn, owner, app         string
		wantOwner, wantApp, err string
	}{
		{dsn: "postgres://tmcp@db:5432/acme?sslmode=require", wantOwner: "acme_owner", wantApp: "acme_app"},
		{dsn: "postgresql://db/?dbname=globex", wantOwner: "globex_owner", wantApp: "globex_app"},
		{dsn: "postgres://db/acme", app: "svc", wantOwner: "acme_owner", wantApp: "svc"},
		{dsn: "postgres://db/acme", owner: "o", app: "a", wantOwner: "o", wantApp: "a"},
		{dsn: "postgres://db", owner: "o", app: "a", wantOwner: "o", wantApp: "a"},
		{dsn: "postgres://u:secret@db", err: "names no database"},
		{dsn: "postgres://db/acme", app: "acme_owner", err: "must differ"},
	} {
		cfg := &config.Config{Database: config.DatabaseConfig{DSN: c.dsn, OwnerRole: c.owner, AppRole: c.app}}
		owner, appRole, err := app.DatabaseRoles(cfg)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "secret") {
				t.Errorf("%s %q %q: err = %v, want one saying %q (and no password)", c.dsn, c.owner, c.app, err, c.err)
			}
		case err != nil || owner != c.wantOwner || appRole != c.wantApp:
			t.Errorf("%s %q %q: %q, %q, %v; want %q, %q", c.dsn, c.owner, c.app, owner, appRole, err, c.wantOwner, c.wantApp)
		}
	}
}
