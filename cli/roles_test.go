package cli_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantmcp/tenantmcp/cli"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/store/postgres"
)

// pgDeployment is a database of its own on the test cluster, with the
// role names tenantmcp derives from it. The database is dropped, then the
// roles, when the test ends.
type pgDeployment struct{ db, dsn, owner, app string }

func newPGDeployment(t *testing.T) pgDeployment {
	t.Helper()
	d := pgDeployment{db: "tmcp_test_" + testenv.Suffix()}
	d.owner, d.app = postgres.RoleNames(d.db)
	testenv.DropRolesAtCleanup(t, d.app, d.owner) // before the database: runs after it is dropped
	d.dsn = testenv.PostgresNamed(t, d.db)
	return d
}

// config is a deployment file whose database.dsn names the database and
// nothing else about roles.
func (d pgDeployment) config(t *testing.T) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf(`
[server]
data_dir = %q
[auth]
provider = "generic"
issuer = "https://idp.example/"
[auth.multi_tenant]
tenant_claim = "org_id"
[database]
dsn = %q
`, t.TempDir(), testenv.WithUser(t, d.dsn, d.app, "")))
}

// rolpassword is the stored password verifier of role ("" for none), as
// the superuser sees it.
func rolpassword(t *testing.T, role string) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, testenv.PostgresAdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var pw *string
	if err := c.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role).Scan(&pw); err != nil {
		t.Fatalf("password of %s: %v", role, err)
	}
	if pw == nil {
		return ""
	}
	return *pw
}

// runDevUntilExit runs dev expecting it to fail before serving; it gives up
// (and the test fails) if dev is still running after a minute.
func runDevUntilExit(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb syncBuffer
	code := cli.Run(ctx, append([]string{"dev"}, args...), &out, &errb, env)
	return code, errb.String()
}

// TestDeploymentsKeepTheirRoles: two deployments (two databases) on one
// PostgreSQL cluster get role names of their own by default, and neither
// "db setup" nor "dev --database" for one changes the password of the
// other's role — nor of an existing role at all, unless told to.
func TestDeploymentsKeepTheirRoles(t *testing.T) {
	one, two := newPGDeployment(t), newPGDeployment(t)
	if one.owner != one.db+"_owner" || one.app != one.db+"_app" {
		t.Fatalf("roles of database %s: %s, %s; want %[1]s_owner, %[1]s_app", one.db, one.owner, one.app)
	}
	if one.app == two.app || one.owner == two.owner {
		t.Fatalf("two databases share roles: %+v %+v", one, two)
	}

	// Deployment one: db setup creates its roles, with the given password.
	cfgOne := one.config(t)
	code, _, errOut := run(t, nil, "db", "setup", "--config", cfgOne, "--admin-dsn", one.dsn, "--app-password", "first secret")
	if code != 0 || !strings.Contains(errOut, "roles ready: owner "+one.owner+", application "+one.app) {
		t.Fatalf("db setup one: exit %d\n%s", code, errOut)
	}
	pwOne := rolpassword(t, one.app)
	if !strings.HasPrefix(pwOne, "SCRAM-SHA-256$") {
		t.Fatalf("db setup set no password on %s: %q", one.app, pwOne)
	}
	// Again with another password: refused, the password stays.
	code, _, errOut = run(t, nil, "db", "setup", "--config", cfgOne, "--admin-dsn", one.dsn, "--app-password", "second secret")
	if code != 1 || !strings.Contains(errOut, one.app+" already exists") || !strings.Contains(errOut, "--reset-password") {
		t.Fatalf("db setup with a new password for an existing role: exit %d\n%s", code, errOut)
	}
	if got := rolpassword(t, one.app); got != pwOne {
		t.Fatalf("refused db setup changed the password of %s", one.app)
	}
	// Without a password it is idempotent and leaves the password alone.
	if code, _, errOut := run(t, nil, "db", "setup", "--config", cfgOne, "--admin-dsn", one.dsn); code != 0 {
		t.Fatalf("db setup without password: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := run(t, nil, "db", "setup", "--config", cfgOne, "--admin-dsn", one.dsn, "--reset-password"); code != 2 || !strings.Contains(errOut, "--app-password") {
		t.Fatalf("--reset-password without a password: exit %d\n%s", code, errOut)
	}
	if got := rolpassword(t, one.app); got != pwOne {
		t.Fatalf("db setup without a password changed the password of %s", one.app)
	}

	// Deployment two: dev --database creates two's roles, not one's.
	data, addr := t.TempDir(), freeAddr(t)
	srv := start(t, nil, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data, "--database", two.dsn)
	if !strings.Contains(srv.err.String(), "roles ready: owner "+two.owner+", application "+two.app) {
		t.Fatalf("dev --database for %s:\n%s", two.db, srv.err)
	}
	srv.stop(t)
	pwTwo := rolpassword(t, two.app)
	if pwTwo == "" {
		t.Fatalf("dev created %s without a password", two.app)
	}
	if got := rolpassword(t, one.app); got != pwOne {
		t.Fatalf("dev for deployment two changed the password of deployment one's %s", one.app)
	}
	// A second run reuses the role and the password it recorded.
	srv = start(t, nil, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data, "--database", two.dsn)
	srv.stop(t)
	if got := rolpassword(t, two.app); got != pwTwo {
		t.Fatalf("restarting dev changed the password of %s", two.app)
	}

	// Even told to use one's roles, dev for another database leaves one's
	// password as it is.
	three := testenv.Postgres(t) // dropped before one's roles are
	env := []string{"TENANTMCP_DATABASE_OWNER_ROLE=" + one.owner, "TENANTMCP_DATABASE_APP_ROLE=" + one.app}
	srv = start(t, env, "Stop with Ctrl-C", "dev", "--addr", freeAddr(t), "--data", t.TempDir(), "--database", three)
	srv.stop(t)
	if got := rolpassword(t, one.app); got != pwOne {
		t.Fatalf("dev with deployment one's role names changed the password of %s", one.app)
	}

	// An existing role dev cannot log in as: dev says what to do, and
	// changes nothing.
	ctx := context.Background()
	c, err := pgx.Connect(ctx, testenv.PostgresAdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "ALTER ROLE "+pgx.Identifier{two.app}.Sanitize()+" CONNECTION LIMIT 0"); err != nil {
		t.Fatal(err)
	}
	code, errOut = runDevUntilExit(t, nil, "--addr", freeAddr(t), "--data", t.TempDir(), "--database", two.dsn)
	if code != 1 || !strings.Contains(errOut, two.app+" already exists and dev cannot log in as it") ||
		!strings.Contains(errOut, "TENANTMCP_DATABASE_APP_ROLE") || !strings.Contains(errOut, "TENANTMCP_APP_PASSWORD") {
		t.Fatalf("dev with an existing role it cannot log in as: exit %d\n%s", code, errOut)
	}
	if got := rolpassword(t, two.app); got != pwTwo {
		t.Fatalf("failed dev changed the password of %s", two.app)
	}

	// Asked explicitly, db setup replaces one's password.
	if code, _, errOut := run(t, nil, "db", "setup", "--config", cfgOne, "--admin-dsn", one.dsn, "--app-password", "second secret", "--reset-password"); code != 0 {
		t.Fatalf("db setup --reset-password: exit %d\n%s", code, errOut)
	}
	if got := rolpassword(t, one.app); got == pwOne || !strings.HasPrefix(got, "SCRAM-SHA-256$") {
		t.Fatalf("db setup --reset-password left the password of %s: %q", one.app, got)
	}
}
