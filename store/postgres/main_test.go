package postgres

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func TestMain(m *testing.M) {
	code := m.Run()
	benchCleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// env is a fresh database with its own owner and application roles.
type env struct {
	dsn        string        // superuser DSN of the test database
	owner, app string        // role names, unique to the test
	admin      *pgxpool.Pool // superuser
	appPool    *pgxpool.Pool // application role, 4 connections
}

// setup creates a database, runs Setup and Migrate for strategy, and opens
// an administrator pool and an application pool. Everything, roles
// included, is removed when the test ends.
func setup(t testing.TB, strategy Strategy, migrations ...Migration) *env {
	t.Helper()
	ctx := context.Background()
	sfx := testenv.Suffix()
	e := &env{owner: "tmcp_owner_" + sfx, app: "tmcp_app_" + sfx}
	dropRolesAtCleanup(t, e.app, e.owner) // before the database: runs after it is dropped
	e.dsn = testenv.Postgres(t)
	if err := Setup(ctx, e.dsn, &SetupOptions{OwnerRole: e.owner, AppRole: e.app}); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	e.admin = newPool(t, e.dsn, 4)
	if err := Migrate(ctx, e.admin, strategy, &MigrateOptions{OwnerRole: e.owner, AppRole: e.app, Migrations: migrations}); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	e.appPool = e.pool(t, 4)
	return e
}

// pool opens another application-role pool with at most n connections.
func (e *env) pool(t testing.TB, n int32) *pgxpool.Pool {
	return newPool(t, testenv.WithUser(t, e.dsn, e.app, ""), n)
}

func (e *env) provisioner(t testing.TB, migrations ...Migration) *Provisioner {
	t.Helper()
	p, err := NewProvisioner(e.admin, &ProvisionerOptions{OwnerRole: e.owner, AppRole: e.app, Migrations: migrations})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newPool(t testing.TB, dsn string, n int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = n
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func dropRolesAtCleanup(t testing.TB, app string, others ...string) {
	t.Helper()
	testenv.DropRolesAtCleanup(t, app, others...)
}

func dropRoles(dsn, app string, others ...string) error {
	return testenv.DropRoles(dsn, app, others...)
}

// superExec runs sql on the test database as the superuser.
func (e *env) superExec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := e.admin.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func wantCode(t testing.TB, err error, code, what string) {
	t.Helper()
	if got := pgCode(err); got != code {
		t.Fatalf("%s: err = %v (SQLSTATE %q), want SQLSTATE %s", what, err, got, code)
	}
}

func ids(n int) []tenant.ID {
	out := make([]tenant.ID, n)
	for i := range out {
		out[i] = tenant.NewID()
	}
	return out
}
