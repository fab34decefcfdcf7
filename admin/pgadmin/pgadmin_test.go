package pgadmin_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/admin/admintest"
	"github.com/tenantmcp/tenantmcp/admin/pgadmin"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/store/postgres"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newPool connects to dsn (a testenv URL, which has a query) for the
// test, with up to 8 connections.
func newPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), dsn+"&pool_max_conns=8")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// open opens a Store for the test. Close leaves the pool open, so the
// test need not close it.
func open(t testing.TB, pool *pgxpool.Pool, o *pgadmin.Options) *pgadmin.Store {
	t.Helper()
	s, err := pgadmin.Open(context.Background(), pool, o)
	if err != nil {
		t.Fatalf("Open %+v: %v", o, err)
	}
	return s
}

// TestContract runs the suite with one database and a fresh schema per
// subtest, migrated by the superuser that owns the tables. The database
// sorts linguistically, so the suite's exact comparisons and byte order
// rest on the columns' own collation.
func TestContract(t *testing.T) {
	t.Parallel()
	pool := newPool(t, linguisticDatabase(t))
	admintest.Run(t, func(t *testing.T) admin.Store {
		return open(t, pool, &pgadmin.Options{Schema: "adm_" + testenv.Suffix()})
	})
}

// linguisticDatabase creates a database whose default collation is ICU's
// en-US (in which "a" < "B" and "ä" < "b"), drops it when the test ends,
// and returns a superuser DSN for it.
func linguisticDatabase(t *testing.T) string {
	t.Helper()
	testenv.RequirePostgres(t)
	ctx := context.Background()
	name := "tmcp_test_" + testenv.Suffix()
	super := newPool(t, testenv.PostgresAdminDSN())
	if _, err := super.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE template0 LOCALE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`); err != nil {
		t.Fatalf("create a database with ICU collation en-US: %v", err)
	}
	t.Cleanup(func() {
		if _, err := super.Exec(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return testenv.WithDatabase(t, testenv.PostgresAdminDSN(), name)
}

// deployment is a database set up as `db setup` does: an owner role and
// an application role, and pools of the superuser and the application
// role.
type deployment struct {
	dsn, owner, app string
	super, appPool  *pgxpool.Pool
}

func setup(t *testing.T) *deployment {
	t.Helper()
	dsn, owner, app := testenv.PostgresWithRoles(t)
	if err := postgres.Setup(context.Background(), dsn, &postgres.SetupOptions{OwnerRole: owner, AppRole: app}); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return &deployment{dsn: dsn, owner: owner, app: app, super: newPool(t, dsn), appPool: newPool(t, testenv.WithUser(t, dsn, app, ""))}
}

// migrate migrates schema as db migrate does: as the owner, granting the
// application role.
func (d *deployment) migrate(t *testing.T, schema string) {
	t.Helper()
	open(t, d.super, &pgadmin.Options{Schema: schema, OwnerRole: d.owner, GrantTo: d.app})
}

// The whole contract holds for a store used by the application role, on
// tables the owner role owns: the role has every privilege the service
// needs.
func TestContractAsAppRole(t *testing.T) {
	t.Parallel()
	d := setup(t)
	admintest.Run(t, func(t *testing.T) admin.Store {
		schema := "adm_" + testenv.Suffix()
		d.migrate(t, schema)
		return open(t, d.appPool, &pgadmin.Options{Schema: schema, SkipMigrate: true})
	})
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// The application role can do what the service needs and no more: it
// cannot drop or alter the tables, delete grants, or change a grant but
// for ending it.
func TestAppRolePrivileges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := setup(t)
	d.migrate(t, "public")
	st := open(t, d.appPool, &pgadmin.Options{SkipMigrate: true})
	g := admintest.Grant(tenant.NewID(), "admin-1")
	if err := st.CreateImpersonation(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.ClaimIdempotencyKey(ctx, "k", admin.RequestHash{1}, time.Now()); err != nil {
		t.Fatal(err)
	}

	var owners []string
	rows, err := d.super.Query(ctx, `SELECT tablename || ':' || tableowner FROM pg_tables WHERE tablename LIKE 'tenantmcp_admin_%' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	if owners, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	want := []string{pgadmin.IdempotencyTable + ":" + d.owner, pgadmin.ImpersonationsTable + ":" + d.owner, pgadmin.VersionTable + ":" + d.owner}
	if strings.Join(owners, " ") != strings.Join(want, " ") {
		t.Errorf("table owners = %v, want %v", owners, want)
	}

	imp, idem := pgadmin.ImpersonationsTable, pgadmin.IdempotencyTable
	refused := []string{
		`DROP TABLE ` + imp,
		`DROP TABLE ` + idem,
		`DROP TABLE ` + pgadmin.VersionTable,
		`ALTER TABLE ` + imp + ` ADD COLUMN x int`,
		`ALTER TABLE ` + idem + ` DROP CONSTRAINT tenantmcp_admin_idempotency_pkey`,
		`TRUNCATE ` + imp,
		`TRUNCATE ` + idem,
		`DELETE FROM ` + imp,
		`UPDATE ` + imp + ` SET expires_at = expires_at + interval '1 day'`,
		`UPDATE ` + imp + ` SET scopes = '{admin:global}'`,
		`UPDATE ` + imp + ` SET reason = 'rewritten', tenant = 'x'`,
		`UPDATE ` + imp + ` SET token_hash = sha256('other')`,
		`INSERT INTO ` + pgadmin.VersionTable + ` (version, name) VALUES (99, 'x')`,
		`DROP INDEX tenantmcp_admin_impersonations_newest`,
		`CREATE TABLE tenantmcp_admin_extra (x int)`,
	}
	for _, stmt := range refused {
		_, err := d.appPool.Exec(ctx, stmt)
		if code := pgCode(err); code != "42501" { // insufficient_privilege
			t.Errorf("as the application role, %s: err = %v, want insufficient privilege (42501)", stmt, err)
		}
	}
	// What it may do.
	for _, stmt := range []string{
		`UPDATE ` + imp + ` SET ended_at = now(), ended_by = 'x' WHERE false`,
		`DELETE FROM ` + idem + ` WHERE key = 'nothing'`,
		`UPDATE ` + idem + ` SET request = request, created_at = created_at WHERE key = 'nothing'`,
	} {
		if _, err := d.appPool.Exec(ctx, stmt); err != nil {
			t.Errorf("as the application role, %s: %v", stmt, err)
		}
	}
	got, err := st.Impersonation(ctx, g.ID)
	if err != nil || !got.ExpiresAt.Equal(g.ExpiresAt) || !slices.Equal(got.Scopes, g.Scopes) {
		t.Errorf("after the refused statements the grant is %+v, %v", got, err)
	}
	// On a current schema the application role's Migrate has nothing to
	// do and succeeds; on a new one it cannot create anything.
	if err := st.Migrate(ctx); err != nil {
		t.Errorf("Migrate of a current schema as the application role: %v", err)
	}
	_, err = pgadmin.Open(ctx, d.appPool, &pgadmin.Options{Schema: "other"})
	if err == nil || pgCode(err) != "42501" {
		t.Errorf("Open of a new schema as the application role: err = %v, want insufficient privilege", err)
	}
}

// Migrate converges on the privileges it grants: whatever else the
// application role was given on the tables is taken away again.
func TestMigrateRevokesExtraPrivileges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := setup(t)
	d.migrate(t, "public")
	for _, g := range []string{
		`GRANT DELETE, TRUNCATE ON tenantmcp_admin_impersonations TO ` + d.app,
		`GRANT UPDATE ON tenantmcp_admin_impersonations TO ` + d.app,
		`GRANT SELECT ON tenantmcp_admin_idempotency TO PUBLIC`,
	} {
		if _, err := d.super.Exec(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	d.migrate(t, "public")
	var privs []string
	rows, err := d.super.Query(ctx, `SELECT t || ':' || p FROM unnest($1::text[]) t, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
		WHERE has_table_privilege($2, t, p) ORDER BY 1`,
		[]string{pgadmin.ImpersonationsTable, pgadmin.IdempotencyTable, pgadmin.VersionTable}, d.app)
	if err != nil {
		t.Fatal(err)
	}
	if privs, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	want := "tenantmcp_admin_idempotency:DELETE tenantmcp_admin_idempotency:INSERT tenantmcp_admin_idempotency:SELECT tenantmcp_admin_idempotency:UPDATE " +
		"tenantmcp_admin_impersonations:INSERT tenantmcp_admin_impersonations:SELECT tenantmcp_admin_version:SELECT"
	if got := strings.Join(privs, " "); got != want {
		t.Errorf("application role's table privileges after Migrate:\n got %s\nwant %s", got, want)
	}
	var cols []string
	rows, err = d.super.Query(ctx, `SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0
		AND has_column_privilege($2, attrelid, attnum, 'UPDATE') ORDER BY 1`, pgadmin.ImpersonationsTable, d.app)
	if err != nil {
		t.Fatal(err)
	}
	if cols, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cols, " "); got != "ended_at ended_by" {
		t.Errorf("columns of the grants the application role may update: %s, want ended_at ended_by", got)
	}
	var public bool
	if err := d.super.QueryRow(ctx, `SELECT has_table_privilege('public', $1, 'SELECT')`, pgadmin.IdempotencyTable).Scan(&public); err != nil {
		t.Fatal(err)
	}
	if public {
		t.Error("PUBLIC keeps SELECT on the idempotency keys after Migrate")
	}
}

// Replicas and CLIs migrating a fresh schema together all succeed, and
// each migration is applied once; migrating again changes nothing.
func TestConcurrentMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := setup(t)
	schema := `odd "schema"; DROP TABLE x; --`
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() {
			// Its own pool: another process's sessions.
			p, err := pgxpool.New(ctx, d.dsn)
			if err != nil {
				errs[i] = err
				return
			}
			defer p.Close()
			_, errs[i] = pgadmin.Open(ctx, p, &pgadmin.Options{Schema: schema, OwnerRole: d.owner, GrantTo: d.app})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	versions := pgx.Identifier{schema, pgadmin.VersionTable}.Sanitize()
	var n, max int
	if err := d.super.QueryRow(ctx, `SELECT count(*), max(version) FROM `+versions).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != max || n == 0 {
		t.Errorf("%d version rows up to version %d, want each version once", n, max)
	}
	d.migrate(t, schema)
	if err := d.super.QueryRow(ctx, `SELECT count(*) FROM `+versions).Scan(&n); err != nil || n != max {
		t.Errorf("after migrating again: %d version rows, %v; want %d", n, err, max)
	}
	st := open(t, d.appPool, &pgadmin.Options{Schema: schema, SkipMigrate: true})
	if err := st.CreateImpersonation(ctx, admintest.Grant(tenant.NewID(), "admin-1")); err != nil {
		t.Errorf("Create in the odd schema as the application role: %v", err)
	}
}

func TestSkipMigrateChecksVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := newPool(t, testenv.Postgres(t))
	for _, schema := range []string{"public", "missing"} {
		_, err := pgadmin.Open(ctx, pool, &pgadmin.Options{Schema: schema, SkipMigrate: true})
		if !errors.Is(err, pgadmin.ErrNotMigrated) {
			t.Errorf("Open of schema %q without tables: err = %v, want ErrNotMigrated", schema, err)
		}
	}
	open(t, pool, nil)
	open(t, pool, &pgadmin.Options{SkipMigrate: true})
	// A version table without the migrations (a crash cannot leave one,
	// the transaction is one; a hand-made table can) is not migrated.
	if _, err := pool.Exec(ctx, `CREATE SCHEMA half; CREATE TABLE half.tenantmcp_admin_version (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	if _, err := pgadmin.Open(ctx, pool, &pgadmin.Options{Schema: "half", SkipMigrate: true}); !errors.Is(err, pgadmin.ErrNotMigrated) {
		t.Errorf("Open of a schema at version 0: err = %v, want ErrNotMigrated", err)
	}
	// A schema a newer release migrated is refused, with or without
	// migrating.
	if _, err := pool.Exec(ctx, `INSERT INTO public.tenantmcp_admin_version (version, name) VALUES (99, 'from the future')`); err != nil {
		t.Fatal(err)
	}
	for _, skip := range []bool{true, false} {
		_, err := pgadmin.Open(ctx, pool, &pgadmin.Options{SkipMigrate: skip})
		if err == nil || errors.Is(err, pgadmin.ErrNotMigrated) || !strings.Contains(err.Error(), "upgrade") {
			t.Errorf("Open (SkipMigrate %v) of a schema at version 99: err = %v, want an upgrade error", skip, err)
		}
	}
}

func TestOpenInvalid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := pgadmin.Open(ctx, nil, nil); !errors.Is(err, pgadmin.ErrInvalidOptions) {
		t.Errorf("Open(nil pool): err = %v, want ErrInvalidOptions", err)
	}
	pool := newPool(t, testenv.Postgres(t))
	if _, err := pgadmin.Open(ctx, pool, &pgadmin.Options{OwnerRole: "same", GrantTo: "same"}); !errors.Is(err, pgadmin.ErrInvalidOptions) {
		t.Errorf("Open with OwnerRole = GrantTo: err = %v, want ErrInvalidOptions", err)
	}
	// A missing owner role is reported as such.
	_, err := pgadmin.Open(ctx, pool, &pgadmin.Options{Schema: "adm_" + testenv.Suffix(), OwnerRole: "no_such_role_" + testenv.Suffix()})
	if err == nil || !strings.Contains(err.Error(), "act as owner role") {
		t.Errorf("Open with a missing owner role: err = %v", err)
	}
}
