package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// dropRolesAtCleanup drops, when the test ends, the given roles and every
// tenant role granted to the first of them. Call it before
// testenv.Postgres: cleanups run last-registered first, so the database,
// and with it everything the roles own or were granted there, is gone by
// then and a plain DROP ROLE suffices. Roles are cluster-wide: none may be
// left behind.
func dropRolesAtCleanup(t testing.TB, app string, others ...string) {
	t.Cleanup(func() {
		if err := dropRoles(testenv.PostgresAdminDSN(), app, others...); err != nil {
			t.Errorf("drop test roles: %v", err)
		}
	})
}

// dropRoles drops app, the tenant roles granted to it, and others,
// connected to dsn. The roles must own nothing in any remaining database.
func dropRoles(dsn, app string, others ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, `SELECT r.rolname FROM pg_auth_members m
		JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles a ON a.oid = m.member
		WHERE a.rolname = $1 AND r.rolname ~ '^t_t[a-z2-7]{20}$'`, app)
	if err != nil {
		return err
	}
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	roles = append(roles, app)
	roles = append(roles, others...)
	var errs []error
	for _, r := range roles {
		if _, err := c.Exec(ctx, "DROP ROLE IF EXISTS "+ident(r)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r, err))
		}
	}
	return errors.Join(errs...)
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
