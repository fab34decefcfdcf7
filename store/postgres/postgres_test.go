package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/storetest"
	"github.com/tenantmcp/tenantmcp/tenant"
)

var strategies = []Strategy{RowLevelSecurity, SchemaPerTenant}

// backend is what both strategies implement.
type backend interface {
	store.Backend
	store.SQLBackend
}

// newBackend returns a backend of strategy s over pool; with schemas it
// provisions tenants on demand.
func (e *env) newBackend(t testing.TB, s Strategy, pool *pgxpool.Pool) backend {
	t.Helper()
	return e.limitedBackend(t, s, pool, limits{})
}

func TestContract(t *testing.T) {
	for _, s := range strategies {
		t.Run(string(s), func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) store.Backend {
				e := setup(t, s)
				return e.newBackend(t, s, e.appPool) // connected as the application role
			})
		})
	}
}

// putDocs stores n documents for id through b.
func putDocs(t testing.TB, b store.Backend, id tenant.ID, n int) {
	t.Helper()
	for i := range n {
		if err := b.Put(context.Background(), id, fmt.Sprintf("%s/doc%03d", id, i), []byte(id)); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
}

// TestSharedConnection runs two tenants alternately, from two goroutines,
// over a pool of one connection: neither ever sees the other's rows, and
// failed transactions in between change nothing.
func TestSharedConnection(t *testing.T) {
	for _, s := range strategies {
		t.Run(string(s), func(t *testing.T) {
			t.Parallel()
			e := setup(t, s)
			pool := e.pool(t, 1)
			b := e.newBackend(t, s, pool)
			ctx := context.Background()
			tenants := ids(2)
			for _, id := range tenants {
				putDocs(t, b, id, 3)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			for _, id := range tenants {
				wg.Go(func() {
					for i := range 150 {
						if err := checkOwnRows(ctx, b, id, i); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if n := pool.Stat().TotalConns(); n != 1 {
				t.Errorf("pool has %d connections, want 1", n)
			}
		})
	}
}

// checkOwnRows reads id's rows in several ways and fails on any row that is
// not id's. Every third iteration first runs a transaction that fails.
func checkOwnRows(ctx context.Context, b backend, id tenant.ID, i int) error {
	if i%3 == 0 {
		err := b.InTx(ctx, id, func(tx store.Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO tenantmcp_documents (key, content) VALUES ('junk', 'x')"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "SELECT 1/0")
			return err
		})
		if err == nil {
			return errors.New("failing transaction succeeded")
		}
	}
	keys, err := b.List(ctx, id, "")
	if err != nil {
		return err
	}
	if len(keys) != 3 {
		return fmt.Errorf("tenant %s lists %d keys, want 3: %q", id, len(keys), keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, string(id)+"/") {
			return fmt.Errorf("tenant %s sees key %q", id, k)
		}
	}
	// Raw SQL with no tenant filter: only the policy or the schema applies.
	return b.InTx(ctx, id, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, "SELECT key, content FROM tenantmcp_documents")
		if err != nil {
			return err
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var k string
			var c []byte
			if err := rows.Scan(&k, &c); err != nil {
				return err
			}
			if string(c) != string(id) {
				return fmt.Errorf("tenant %s sees a row of another tenant (key %q)", id, k)
			}
			n++
		}
		if n != 3 {
			return fmt.Errorf("tenant %s sees %d rows, want 3", id, n)
		}
		return rows.Err()
	})
}

// connState is what a pooled connection carries between transactions.
type connState struct {
	PID        uint32
	Tenant     string // current_setting('app.tenant_id', true), NULL as ""
	User       string
	SearchPath string
}

func stateOf(t testing.TB, pool *pgxpool.Pool) connState {
	t.Helper()
	var s connState
	err := pool.QueryRow(context.Background(), `SELECT pg_backend_pid(), coalesce(current_setting('app.tenant_id', true), ''),
		current_user, current_setting('search_path')`).Scan(&s.PID, &s.Tenant, &s.User, &s.SearchPath)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFailedTxLeavesNothing checks that a transaction that fails in any way
// leaves no tenant setting, role or search_path on its connection, and no
// row.
func TestFailedTxLeavesNothing(t *testing.T) {
	errBoom := errors.New("boom")
	cases := []struct {
		name string
		fn   func(ctx context.Context, tx store.Tx) error
		want error // nil: any error
	}{
		{"fn returns error", func(ctx context.Context, tx store.Tx) error { return errBoom }, errBoom},
		{"statement fails", func(ctx context.Context, tx store.Tx) error {
			_, err := tx.Exec(ctx, "SELECT 1/0")
			return err
		}, nil},
		{"error swallowed", func(ctx context.Context, tx store.Tx) error {
			tx.Exec(ctx, "SELECT 1/0")
			return nil // commit must fail: the transaction is aborted
		}, nil},
		{"panic", func(ctx context.Context, tx store.Tx) error { panic(errBoom) }, errBoom},
	}
	for _, s := range strategies {
		t.Run(string(s), func(t *testing.T) {
			t.Parallel()
			e := setup(t, s)
			pool := e.pool(t, 1)
			b := e.newBackend(t, s, pool)
			ctx := context.Background()
			id := tenant.NewID()
			putDocs(t, b, id, 1) // provisions the schema
			before := stateOf(t, pool)
			if before.User != e.app || before.Tenant != "" {
				t.Fatalf("connection state before: %+v", before)
			}
			for _, c := range cases {
				err := func() (err error) {
					defer func() {
						if r := recover(); r != nil {
							err = r.(error)
						}
					}()
					return b.InTx(ctx, id, func(tx store.Tx) error {
						if _, err := tx.Exec(ctx, "INSERT INTO tenantmcp_documents (key, content) VALUES ('failed', 'x')"); err != nil {
							t.Fatalf("insert: %v", err)
						}
						return c.fn(ctx, tx)
					})
				}()
				if err == nil || c.want != nil && !errors.Is(err, c.want) {
					t.Fatalf("%s: err = %v, want %v", c.name, err, c.want)
				}
				after := stateOf(t, pool)
				if diff := cmp.Diff(before, after); diff != "" {
					t.Errorf("%s: connection state changed (-before +after):\n%s", c.name, diff)
				}
				if _, err := b.Get(ctx, id, "failed"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s: row of failed transaction: err = %v, want ErrNotFound", c.name, err)
				}
			}
		})
	}
}

func TestUnprovisionedTenant(t *testing.T) {
	t.Parallel()
	e := setup(t, SchemaPerTenant)
	pool := e.pool(t, 1)
	b, err := NewSchemas(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := tenant.NewID()
	before := stateOf(t, pool)
	_, getErr := b.Get(ctx, id, "k")
	_, listErr := b.List(ctx, id, "")
	txErr := b.InTx(ctx, id, func(store.Tx) error { return nil })
	for what, err := range map[string]error{"Get": getErr, "Put": b.Put(ctx, id, "k", nil), "Delete": b.Delete(ctx, id, "k"), "List": listErr, "InTx": txErr} {
		if !errors.Is(err, ErrNotProvisioned) {
			t.Errorf("%s: err = %v, want ErrNotProvisioned", what, err)
		}
	}
	// The failed SET ROLE was rolled back on the same connection, which
	// went back to the pool clean.
	if diff := cmp.Diff(before, stateOf(t, pool)); diff != "" {
		t.Errorf("connection state changed (-before +after):\n%s", diff)
	}
	if err := e.provisioner(t).Provision(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, id, "k", []byte("v")); err != nil {
		t.Fatalf("Put after Provision: %v", err)
	}
	if err := b.InTx(ctx, "not-an-id", func(store.Tx) error { return nil }); !errors.Is(err, tenant.ErrInvalidID) {
		t.Errorf("InTx with malformed id: err = %v, want tenant.ErrInvalidID", err)
	}
}

// TestUserRLSTable adds an application table with EnableRLS and uses it
// through InTx.
func TestUserRLSTable(t *testing.T) {
	t.Parallel()
	e := setup(t, RowLevelSecurity, Migration{Version: 1, Name: "notes", SQL: `
CREATE TABLE notes (id bigserial PRIMARY KEY, tenant_id text NOT NULL, body text NOT NULL)`})
	ctx := context.Background()
	for range 2 { // idempotent
		if err := EnableRLS(ctx, e.admin, "notes", &MigrateOptions{OwnerRole: e.owner, AppRole: e.app}); err != nil {
			t.Fatal(err)
		}
	}
	b := e.newBackend(t, RowLevelSecurity, e.appPool)
	a, other := tenant.NewID(), tenant.NewID()
	err := b.InTx(ctx, a, func(tx store.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO notes (body) VALUES ($1), ($2)", "one", "two"); err != nil {
			return err
		}
		var n int
		var tid string
		if err := tx.QueryRow(ctx, "SELECT count(*), min(tenant_id) FROM notes").Scan(&n, &tid); err != nil {
			return err
		}
		if n != 2 || tid != string(a) {
			return fmt.Errorf("tenant sees %d notes of %q, want 2 of its own", n, tid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = b.InTx(ctx, other, func(tx store.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM notes").Scan(&n); err != nil {
			return err
		}
		if n != 0 {
			t.Errorf("other tenant sees %d notes, want 0", n)
		}
		if m, err := tx.Exec(ctx, "UPDATE notes SET body = 'x'"); err != nil || m != 0 {
			t.Errorf("other tenant UPDATE: %d rows, %v; want 0 rows", m, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Writing a row for another tenant violates the policy's WITH CHECK.
	err = b.InTx(ctx, other, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO notes (tenant_id, body) VALUES ($1, 'planted')", string(a))
		return err
	})
	wantCode(t, err, "42501", "insert for another tenant")

	// The planner uses the tenant_id index for the policy.
	plan, err := explain(ctx, b, a, "SET LOCAL enable_seqscan = off", "EXPLAIN SELECT * FROM notes")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "Index") || !strings.Contains(plan, "tenant_id") {
		t.Errorf("plan does not use a tenant_id index: %s", plan)
	}

	if err := EnableRLS(ctx, e.admin, "missing_table", &MigrateOptions{OwnerRole: e.owner, AppRole: e.app}); err == nil {
		t.Error("EnableRLS on a missing table succeeded")
	}
	e.superExec(t, "CREATE TABLE public.no_tenant (id int); ALTER TABLE public.no_tenant OWNER TO "+ident(e.owner))
	if err := EnableRLS(ctx, e.admin, "no_tenant", &MigrateOptions{OwnerRole: e.owner, AppRole: e.app}); err == nil || !strings.Contains(err.Error(), "no tenant_id column") {
		t.Errorf("EnableRLS on a table without tenant_id: err = %v", err)
	}
}

func TestMigrateAll(t *testing.T) {
	t.Parallel()
	e := setup(t, SchemaPerTenant)
	ctx := context.Background()
	tenants := ids(50)
	p := e.provisioner(t)
	for _, id := range tenants {
		if err := p.Provision(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(tenants)
	// A new release adds a table to every tenant schema.
	p2 := e.provisioner(t, Migration{Version: 1, Name: "notes", SQL: "CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL)"})
	var seen []tenant.ID
	progress := func(done, total int, id tenant.ID) {
		if total != len(tenants) || done != len(seen)+1 {
			t.Errorf("progress(%d, %d, %s) after %d calls", done, total, id, len(seen))
		}
		seen = append(seen, id)
	}
	if err := p2.MigrateAll(ctx, progress); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tenants, seen); diff != "" {
		t.Fatalf("progress ids (-want +got):\n%s", diff)
	}
	applied := func() (rows int, last string) {
		for _, id := range tenants {
			var n int
			var ts string
			if err := e.admin.QueryRow(ctx, "SELECT count(*), max(applied_at)::text FROM "+ident(SchemaName(id))+".tenantmcp_migrations").Scan(&n, &ts); err != nil {
				t.Fatal(err)
			}
			rows += n
			last = max(last, ts)
		}
		return rows, last
	}
	rows, last := applied()
	if rows != 2*len(tenants) {
		t.Fatalf("%d migration rows, want %d", rows, 2*len(tenants))
	}
	// The tenant role may use the new table (default privileges).
	b, err := NewSchemas(e.appPool, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.InTx(ctx, tenants[7], func(tx store.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO notes (body) VALUES ('hello')")
		return err
	})
	if err != nil {
		t.Fatalf("insert into migrated table: %v", err)
	}
	// The second run applies nothing.
	seen = nil
	if err := p2.MigrateAll(ctx, progress); err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(tenants) {
		t.Errorf("second run reported %d schemas, want %d", len(seen), len(tenants))
	}
	if rows2, last2 := applied(); rows2 != rows || last2 != last {
		t.Errorf("second run changed migrations: %d rows (last %s), before %d (last %s)", rows2, last2, rows, last)
	}
	// A binary without application migrations (the generic CLI) leaves
	// them alone.
	if err := p.Provision(ctx, tenants[0]); err != nil {
		t.Errorf("provisioner without application migrations: %v", err)
	}
	// A newer release adds v2 to one schema; the previous release then
	// refuses that schema rather than run against tables it does not know.
	p3 := e.provisioner(t,
		Migration{Version: 1, Name: "notes", SQL: "CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL)"},
		Migration{Version: 2, Name: "tags", SQL: "ALTER TABLE notes ADD COLUMN tags text[]"})
	if err := p3.Provision(ctx, tenants[0]); err != nil {
		t.Fatal(err)
	}
	if err := p2.Provision(ctx, tenants[0]); err == nil || !strings.Contains(err.Error(), "upgrade tenantmcp") {
		t.Errorf("older release: err = %v, want a refusal saying to upgrade", err)
	}
}

func TestConcurrentMigrateAndProvision(t *testing.T) {
	t.Parallel()
	e := setup(t, SchemaPerTenant)
	ctx := context.Background()
	id := tenant.NewID()
	p := e.provisioner(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			errs <- Migrate(ctx, e.admin, SchemaPerTenant, &MigrateOptions{OwnerRole: e.owner, AppRole: e.app})
		})
		wg.Go(func() { errs <- p.Provision(ctx, id) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var n int
	if err := e.admin.QueryRow(ctx, "SELECT count(*) FROM public.tenantmcp_migrations").Scan(&n); err != nil || n != 1 {
		t.Errorf("shared migrations: %d rows, %v; want 1", n, err)
	}
	if err := e.admin.QueryRow(ctx, "SELECT count(*) FROM "+ident(SchemaName(id))+".tenantmcp_migrations").Scan(&n); err != nil || n != 1 {
		t.Errorf("tenant migrations: %d rows, %v; want 1", n, err)
	}
}

// TestRLSPolicyUsesIndex: the documents policy is an index condition on
// the primary key, so RLS reads cost what an explicit WHERE costs.
func TestRLSPolicyUsesIndex(t *testing.T) {
	t.Parallel()
	e := setup(t, RowLevelSecurity)
	b := e.newBackend(t, RowLevelSecurity, e.appPool)
	ctx := context.Background()
	id := tenant.NewID()
	putDocs(t, b, id, 3)
	// A 3-row table would be scanned whole; ask for the plan that matters
	// at scale.
	text, err := explain(ctx, b, id, "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off",
		"EXPLAIN SELECT key, content FROM tenantmcp_documents ORDER BY key LIMIT 50")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Index Scan using tenantmcp_documents_pkey", "Index Cond: (tenant_id = current_setting('app.tenant_id'::text, true))"} {
		if !strings.Contains(text, want) {
			t.Errorf("plan lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Sort") {
		t.Errorf("plan sorts instead of reading the index in key order:\n%s", text)
	}
}

// explain runs settings, then the EXPLAIN statement query, in a
// transaction of tenant id, and returns the plan.
func explain(ctx context.Context, b store.SQLBackend, id tenant.ID, settings, query string) (string, error) {
	lines, err := textColumn(ctx, b, id, settings, query)
	return strings.Join(lines, "\n"), err
}

// textColumn runs settings (unless ""), then query, in a transaction of
// tenant id, and returns the first column of query's rows.
func textColumn(ctx context.Context, b store.SQLBackend, id tenant.ID, settings, query string, args ...any) ([]string, error) {
	var out []string
	err := b.InTx(ctx, id, func(tx store.Tx) error {
		if settings != "" {
			if _, err := tx.Exec(ctx, settings); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				return err
			}
			out = append(out, v)
		}
		return rows.Err()
	})
	return out, err
}
