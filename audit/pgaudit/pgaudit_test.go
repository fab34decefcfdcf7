package pgaudit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/audit/audittest"
	"github.com/tenantmcp/tenantmcp/audit/pgaudit"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/store/postgres"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var _ audittest.Tamperer = (*pgaudit.Tamperer)(nil)

// env is a test database with its own owner and application roles.
type env struct {
	dsn        string        // superuser DSN of the test database
	owner, app string        // role names, unique to the test
	admin      *pgxpool.Pool // superuser
	appPool    *pgxpool.Pool // application role
}

func setup(t testing.TB) *env {
	t.Helper()
	e := &env{}
	e.dsn, e.owner, e.app = testenv.PostgresWithRoles(t)
	if err := postgres.Setup(context.Background(), e.dsn, &postgres.SetupOptions{OwnerRole: e.owner, AppRole: e.app}); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	e.admin = newPool(t, e.dsn, 4)
	e.appPool = newPool(t, testenv.WithUser(t, e.dsn, e.app, ""), 8)
	return e
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

// migrate creates the audit tables in schema ("" = public).
func (e *env) migrate(t testing.TB, schema string) {
	t.Helper()
	if err := pgaudit.Migrate(context.Background(), e.admin, e.owner, e.app, &pgaudit.MigrateOptions{Schema: schema}); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
}

// appStore is a Store as the server has it: the application role, with
// DeleteBefore run as the owner (the retention job: the administrator's
// pool, acting as the owner role).
type appStore struct {
	*pgaudit.Store
	retention *pgaudit.Store
}

func (s appStore) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	return s.retention.DeleteBefore(ctx, t)
}

func (e *env) store(schema string) appStore {
	return appStore{
		Store:     pgaudit.New(e.appPool, &pgaudit.Options{Schema: schema}),
		retention: pgaudit.New(e.admin, &pgaudit.Options{Schema: schema, RetentionRole: e.owner}),
	}
}

// TestContract runs the suite as the application role, one schema per
// subtest.
func TestContract(t *testing.T) {
	e := setup(t)
	audittest.Run(t, func(t *testing.T) audit.Store {
		schema := "audit_" + testenv.Suffix()
		e.migrate(t, schema)
		return e.store(schema)
	})
}

func TestTamper(t *testing.T) {
	e := setup(t)
	audittest.RunTamper(t, func(t *testing.T) (audit.Store, audittest.Tamperer) {
		schema := "audit_" + testenv.Suffix()
		e.migrate(t, schema)
		return e.store(schema), pgaudit.NewTamperer(e.admin, schema)
	})
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// filled migrates public and stores two events and a checkpoint.
func (e *env) filled(t *testing.T) appStore {
	t.Helper()
	e.migrate(t, "")
	s := e.store("")
	audittest.AppendN(t, s, "a", 0, 2)
	audittest.Checkpoint(t, s, "a", audittest.Base)
	return s
}

var changes = []string{
	`UPDATE tenantmcp_audit_records SET body = '\x00' WHERE seq = 1`,
	`UPDATE tenantmcp_audit_records SET outcome = 'ok'`,
	`DELETE FROM tenantmcp_audit_records WHERE seq = 2`,
	`DELETE FROM tenantmcp_audit_records`,
	`TRUNCATE tenantmcp_audit_records`,
	`UPDATE tenantmcp_audit_checkpoints SET count = 9`,
	`DELETE FROM tenantmcp_audit_checkpoints`,
	`TRUNCATE tenantmcp_audit_checkpoints`,
}

// TestAppRoleCannotChange: the application role may insert and read, and
// nothing else, retention setting or not.
func TestAppRoleCannotChange(t *testing.T) {
	e := setup(t)
	s := e.filled(t)
	ctx := context.Background()
	more := append(changes,
		`INSERT INTO tenantmcp_audit_floors VALUES ('a', 1, '\x`+strings.Repeat("00", 32)+`')`,
		`UPDATE tenantmcp_audit_floors SET seq = 1`,
		`DELETE FROM tenantmcp_audit_floors`,
		`ALTER TABLE tenantmcp_audit_records DISABLE TRIGGER tenantmcp_audit_append_only`,
		`SET session_replication_role = replica`,
	)
	for _, retention := range []bool{false, true} {
		for _, q := range more {
			err := pgx.BeginFunc(ctx, e.appPool, func(tx pgx.Tx) error {
				if retention {
					if _, err := tx.Exec(ctx, "SET LOCAL "+pgaudit.RetentionSetting+" = 'on'"); err != nil {
						return err
					}
				}
				_, err := tx.Exec(ctx, q)
				return err
			})
			if code := pgCode(err); code != "42501" {
				t.Errorf("as the application role (retention setting %v): %s: err = %v, want permission denied (42501)", retention, q, err)
			}
		}
	}
	// Nor through the store.
	if _, err := pgaudit.New(e.appPool, nil).DeleteBefore(ctx, time.Now()); pgCode(err) != "42501" || !strings.Contains(err.Error(), "only the owner") {
		t.Errorf("DeleteBefore as the application role: err = %v, want permission denied naming the owner", err)
	}
	if rs := audittest.ScanAll(t, s, "a", 1); len(rs) != 2 {
		t.Errorf("%d records left, want 2", len(rs))
	}
	var privs []string
	if err := e.admin.QueryRow(ctx, `SELECT array_agg(table_name || ':' || privilege_type ORDER BY table_name, privilege_type)
		FROM information_schema.role_table_grants WHERE grantee = $1`, e.app).Scan(&privs); err != nil {
		t.Fatal(err)
	}
	want := "[tenantmcp_audit_checkpoints:INSERT tenantmcp_audit_checkpoints:SELECT tenantmcp_audit_floors:SELECT tenantmcp_audit_records:INSERT tenantmcp_audit_records:SELECT]"
	if fmt.Sprint(privs) != want {
		t.Errorf("application role's table privileges = %v, want %s", privs, want)
	}
}

// TestOwnerRefusedOutsideRetention: the owner (and even a superuser) is
// stopped by the trigger unless the transaction is the retention job's;
// the retention job may delete, never update or truncate.
func TestOwnerRefusedOutsideRetention(t *testing.T) {
	e := setup(t)
	s := e.filled(t)
	ctx := context.Background()
	for _, role := range []string{e.owner, "postgres"} {
		for _, retention := range []bool{false, true} {
			for _, q := range changes {
				err := pgx.BeginFunc(ctx, e.admin, func(tx pgx.Tx) error {
					if role != "postgres" {
						if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
							return err
						}
					}
					if retention {
						if _, err := tx.Exec(ctx, "SELECT set_config($1, 'on', true)", pgaudit.RetentionSetting); err != nil {
							return err
						}
					}
					if _, err := tx.Exec(ctx, q); err != nil {
						return err
					}
					return errRollback
				})
				allowed := retention && strings.HasPrefix(q, "DELETE")
				switch {
				case allowed && !errors.Is(err, errRollback):
					t.Errorf("as %s in the retention job: %s: err = %v, want it allowed", role, q, err)
				case !allowed && (pgCode(err) != "P0001" || !strings.Contains(err.Error(), "append-only")):
					t.Errorf("as %s (retention setting %v): %s: err = %v, want the append-only refusal", role, retention, q, err)
				}
			}
		}
	}
	if rs := audittest.ScanAll(t, s, "a", 1); len(rs) != 2 {
		t.Errorf("%d records left, want 2", len(rs))
	}
	// The setting is transaction-local: it does not outlive the job on
	// its connection.
	conn, err := e.admin.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "BEGIN; SELECT set_config('"+pgaudit.RetentionSetting+"', 'on', true); COMMIT"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM tenantmcp_audit_records"); pgCode(err) != "P0001" {
		t.Errorf("DELETE after a retention transaction ended: err = %v, want the append-only refusal", err)
	}
}

var errRollback = errors.New("roll back")

// TestDeleteBeforeAsOwner: the retention job, as the owner through the
// administrator's pool, removes old records and checkpoints.
func TestDeleteBeforeAsOwner(t *testing.T) {
	e := setup(t)
	s := e.filled(t)
	ctx := context.Background()
	audittest.AppendN(t, s, "a", 60, 1)
	n, err := pgaudit.New(e.admin, &pgaudit.Options{RetentionRole: e.owner}).DeleteBefore(ctx, audittest.Base.Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("DeleteBefore as the owner = %d, %v; want 2", n, err)
	}
	if rs := audittest.ScanAll(t, s, "a", 1); len(rs) != 1 || rs[0].Seq != 3 {
		t.Errorf("after DeleteBefore: %d records", len(rs))
	}
	// A role that may not act as the owner is refused.
	if _, err := pgaudit.New(e.appPool, &pgaudit.Options{RetentionRole: e.owner}).DeleteBefore(ctx, time.Now()); err == nil {
		t.Error("DeleteBefore as the application role acting as the owner: err = nil")
	}
}

func TestCheckAppRole(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	app := pgaudit.New(e.appPool, nil)
	if err := app.CheckAppRole(ctx); !errors.Is(err, pgaudit.ErrNotMigrated) {
		t.Errorf("before Migrate: err = %v, want ErrNotMigrated", err)
	}
	e.migrate(t, "")
	if err := app.CheckAppRole(ctx); err != nil {
		t.Errorf("application role: %v", err)
	}
	if err := pgaudit.New(e.admin, nil).CheckAppRole(ctx); !errors.Is(err, pgaudit.ErrUnsafeRole) {
		t.Errorf("superuser: err = %v, want ErrUnsafeRole", err)
	}
	for _, tc := range []struct{ breakIt, want string }{
		{"GRANT UPDATE ON tenantmcp_audit_records TO " + e.app, "UPDATE"},
		{"GRANT DELETE ON tenantmcp_audit_checkpoints TO " + e.app, "DELETE"},
		{"GRANT INSERT ON tenantmcp_audit_floors TO " + e.app, "INSERT"},
		{"GRANT TRUNCATE ON tenantmcp_audit_records TO " + e.app, "TRUNCATE"},
		{"ALTER TABLE tenantmcp_audit_records DISABLE TRIGGER tenantmcp_audit_append_only", "disabled"},
		{"ALTER TABLE tenantmcp_audit_checkpoints ENABLE REPLICA TRIGGER tenantmcp_audit_append_only", "disabled"},
		{"GRANT " + e.owner + " TO " + e.app, "owner"},
	} {
		if _, err := e.admin.Exec(ctx, tc.breakIt); err != nil {
			t.Fatal(err)
		}
		if err := app.CheckAppRole(ctx); !errors.Is(err, pgaudit.ErrUnsafeRole) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("after %s: err = %v, want ErrUnsafeRole mentioning %q", tc.breakIt, err, tc.want)
		}
		// Migrate puts grants and triggers right again (membership is
		// not its business).
		if strings.HasPrefix(tc.breakIt, "GRANT "+e.owner) {
			if _, err := e.admin.Exec(ctx, "REVOKE "+e.owner+" FROM "+e.app); err != nil {
				t.Fatal(err)
			}
		}
		if strings.Contains(tc.breakIt, "TRIGGER") {
			if _, err := e.admin.Exec(ctx, strings.NewReplacer("DISABLE", "ENABLE", "ENABLE REPLICA", "ENABLE").Replace(tc.breakIt)); err != nil {
				t.Fatal(err)
			}
		}
		e.migrate(t, "")
		if err := app.CheckAppRole(ctx); err != nil {
			t.Errorf("after %s and Migrate again: %v", tc.breakIt, err)
		}
	}
}

func TestMigrate(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	for name, tc := range map[string]struct{ owner, app string }{
		"no owner":  {"", e.app},
		"no app":    {e.owner, ""},
		"same role": {e.owner, e.owner},
	} {
		if err := pgaudit.Migrate(ctx, e.admin, tc.owner, tc.app, nil); !errors.Is(err, pgaudit.ErrInvalidOptions) {
			t.Errorf("%s: err = %v, want ErrInvalidOptions", name, err)
		}
	}
	// Replicas starting together migrate once.
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() { errs <- pgaudit.Migrate(ctx, e.admin, e.owner, e.app, nil) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate: %v", err)
		}
	}
	var owner, bodyType string
	var versions int
	if err := e.admin.QueryRow(ctx, `SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'tenantmcp_audit_records'`).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != e.owner {
		t.Errorf("records table owned by %q, want %q", owner, e.owner)
	}
	if err := e.admin.QueryRow(ctx, `SELECT data_type FROM information_schema.columns
		WHERE table_name = 'tenantmcp_audit_records' AND column_name = 'body'`).Scan(&bodyType); err != nil || bodyType != "bytea" {
		t.Errorf("body column type = %q, %v; want bytea (bytes kept exactly)", bodyType, err)
	}
	if err := e.admin.QueryRow(ctx, `SELECT count(*) FROM tenantmcp_migrations WHERE component = 'tenantmcp_audit'`).Scan(&versions); err != nil || versions != 1 {
		t.Errorf("recorded migrations = %d, %v; want 1", versions, err)
	}
	// A database migrated by a newer tenantmcp is refused.
	if _, err := e.admin.Exec(ctx, `INSERT INTO tenantmcp_migrations (component, version, name) VALUES ('tenantmcp_audit', 99, 'future')`); err != nil {
		t.Fatal(err)
	}
	if err := pgaudit.Migrate(ctx, e.admin, e.owner, e.app, nil); err == nil || !strings.Contains(err.Error(), "upgrade tenantmcp") {
		t.Errorf("Migrate of a newer schema: err = %v, want upgrade advice", err)
	}
}

func TestOpen(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	appDSN := testenv.WithUser(t, e.dsn, e.app, "")
	if s, err := pgaudit.Open(ctx, appDSN, nil); !errors.Is(err, pgaudit.ErrNotMigrated) {
		if s != nil {
			s.Close()
		}
		t.Errorf("Open before Migrate: err = %v, want ErrNotMigrated", err)
	}
	e.migrate(t, "")
	s, err := pgaudit.Open(ctx, appDSN, &pgaudit.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	audittest.AppendN(t, s, audit.SystemChain, 0, 3)
	if err := s.CheckAppRole(ctx); err != nil {
		t.Error(err)
	}
	if _, err := pgaudit.Open(ctx, "postgres://nobody@127.0.0.1:1/x?connect_timeout=1", nil); err == nil {
		t.Error("Open of an unreachable server: err = nil")
	}
}

// TestReplicasManyChains: replicas append batches that span chains, in
// different chain orders, all at once. Every batch goes in whole or not
// at all, no writer deadlocks, and every chain verifies.
func TestReplicasManyChains(t *testing.T) {
	e := setup(t)
	e.migrate(t, "")
	ctx := context.Background()
	chains := []string{"a", "b", "c"}
	const replicas, batches = 4, 15
	per := [2]int{2, 100} // events per chain and batch: odd replicas' batches go by COPY
	bodies := map[string][][]byte{}
	for _, c := range chains {
		bodies[c] = audittest.Bodies(t, c, 0, per[1])
	}
	var wg sync.WaitGroup
	errs := make(chan error, replicas)
	for w := range replicas {
		s := pgaudit.New(newPool(t, testenv.WithUser(t, e.dsn, e.app, ""), 2), nil)
		wg.Go(func() {
			for i := 0; i < batches; {
				var recs []audit.Record
				for k := range chains {
					c := chains[(w+k)%len(chains)] // each replica its own order
					h, err := s.Head(ctx, c)
					if err != nil {
						errs <- err
						return
					}
					r, _ := audittest.Chain(c, h, bodies[c][:per[w%2]]...)
					recs = append(recs, r...)
				}
				switch err := s.Append(ctx, recs); {
				case errors.Is(err, audit.ErrConflict):
					continue
				case err != nil:
					errs <- fmt.Errorf("replica %d: %w", w, err)
					return
				}
				i++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := pgaudit.New(e.appPool, nil)
	for _, c := range chains {
		rs := audittest.ScanAll(t, s, c, 1)
		if want := (per[0] + per[1]) * replicas / 2 * batches; len(rs) != want {
			t.Errorf("chain %s: %d records, want %d", c, len(rs), want)
		}
		v := audit.NewVerifier(c)
		for _, r := range rs {
			if err := v.Next(&r); err != nil {
				t.Fatalf("chain %s: %v", c, err)
			}
		}
	}
}
