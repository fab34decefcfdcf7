package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Benchmark dataset: benchTenants tenants with benchRowsPerTenant documents
// each, stored three times: in the RLS table, in a twin table without RLS
// (for the explicit WHERE baseline) and in one schema per tenant.
const (
	benchTenants       = 1000
	benchRowsPerTenant = 1000
	benchReadRows      = 50
	benchContentSize   = 100
)

// benchFixture is built once per process, on first use, and removed by
// benchCleanup from TestMain, so -count=N does not rebuild it.
type benchData struct {
	once       sync.Once
	err        error
	adminDSN   string // server admin DSN (to drop the database)
	db         string
	dsn        string // superuser DSN of the bench database
	owner, app string
	admin      *pgxpool.Pool
	appPool    *pgxpool.Pool
	rls        *RLS
	schemas    *Schemas
	tenants    []tenant.ID

	// For BenchmarkGet: application-role pools of one connection each,
	// so that warming a variant up (every tenant once) leaves its one
	// backend with every tenant's catalog entries and statements; and the
	// network writes (round trips) of all of them.
	writes      atomic.Int64
	getPool     *pgxpool.Pool // the default query mode
	getRLS      *RLS          // over getPool
	getSchemas  *Schemas      // over getPool
	execPool    *pgxpool.Pool // QueryExecModeExec: nothing prepared
	bigCache    *pgxpool.Pool // a statement cache with room for every tenant's statements
	bigGeneric  *pgxpool.Pool // the same with plan_cache_mode = force_generic_plan
	genericPool *pgxpool.Pool // plan_cache_mode = force_generic_plan
	schemasGen  *Schemas      // over genericPool
}

var benchFixture benchData

var errBenchSkip = errors.New("skip")

func benchEnv(b *testing.B) *benchData {
	b.Helper()
	f := &benchFixture
	f.once.Do(func() { f.err = buildBench(b) })
	if errors.Is(f.err, errBenchSkip) {
		b.Skip(f.err)
	}
	if f.err != nil {
		b.Fatalf("build benchmark dataset: %v", f.err)
	}
	return f
}

func buildBench(b *testing.B) error {
	f := &benchFixture
	ctx := context.Background()
	f.adminDSN = testenv.PostgresAdminDSN()
	c, err := pgx.Connect(ctx, f.adminDSN)
	if err != nil {
		if os.Getenv("CI") == "true" {
			return err
		}
		return fmt.Errorf("%w: PostgreSQL not reachable (%v); set TENANTMCP_TEST_POSTGRES to run the benchmarks", errBenchSkip, err)
	}
	defer c.Close(ctx)
	sfx := testenv.Suffix()
	f.db, f.owner, f.app = "tmcp_bench_"+sfx, "tmcp_bench_owner_"+sfx, "tmcp_bench_app_"+sfx
	if _, err := c.Exec(ctx, "CREATE DATABASE "+f.db); err != nil {
		return err
	}
	f.dsn = testenv.WithDatabase(b, f.adminDSN, f.db)
	start := time.Now()
	if err := Setup(ctx, f.dsn, &SetupOptions{OwnerRole: f.owner, AppRole: f.app}); err != nil {
		return err
	}
	if f.admin, err = benchPool(f.dsn, 4); err != nil {
		return err
	}
	mo := &MigrateOptions{OwnerRole: f.owner, AppRole: f.app}
	for _, s := range strategies {
		if err := Migrate(ctx, f.admin, s, mo); err != nil {
			return err
		}
	}
	// The twin table: same columns, key, collation and index, no policy.
	if _, err := f.admin.Exec(ctx, `CREATE TABLE public.bench_plain (LIKE public.tenantmcp_documents INCLUDING ALL);
		ALTER TABLE public.bench_plain OWNER TO `+ident(f.owner)+`;
		GRANT SELECT ON public.bench_plain TO `+ident(f.app)); err != nil {
		return err
	}
	for range benchTenants {
		f.tenants = append(f.tenants, tenant.NewID())
	}
	content := []byte(strings.Repeat("x", benchContentSize))
	now := time.Now()
	for _, table := range []string{"tenantmcp_documents", "bench_plain"} {
		i := 0
		n, err := f.admin.CopyFrom(ctx, pgx.Identifier{"public", table}, []string{"tenant_id", "key", "content", "updated_at"},
			pgx.CopyFromFunc(func() ([]any, error) {
				if i == benchTenants*benchRowsPerTenant {
					return nil, nil
				}
				// Tenant by tenant, as in each tenant's own schema, so every
				// variant reads about the same number of pages per query.
				id, k := f.tenants[i/benchRowsPerTenant], i%benchRowsPerTenant
				i++
				return []any{string(id), fmt.Sprintf("doc/%04d", k), content, now}, nil
			}))
		if err != nil {
			return fmt.Errorf("copy into %s: %w", table, err)
		}
		b.Logf("copied %d rows into %s", n, table)
	}
	p, err := NewProvisioner(f.admin, &ProvisionerOptions{OwnerRole: f.owner, AppRole: f.app})
	if err != nil {
		return err
	}
	for _, id := range f.tenants {
		if err := p.Provision(ctx, id); err != nil {
			return err
		}
		k := 0
		_, err := f.admin.CopyFrom(ctx, pgx.Identifier{SchemaName(id), "tenantmcp_documents"}, []string{"key", "content", "updated_at"},
			pgx.CopyFromFunc(func() ([]any, error) {
				if k == benchRowsPerTenant {
					return nil, nil
				}
				k++
				return []any{fmt.Sprintf("doc/%04d", k-1), content, now}, nil
			}))
		if err != nil {
			return err
		}
	}
	if _, err := f.admin.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return err
	}
	b.Logf("dataset built in %s", time.Since(start).Round(time.Second))
	appDSN := testenv.WithUser(b, f.dsn, f.app, "")
	if f.appPool, err = benchPool(appDSN, benchConns); err != nil {
		return err
	}
	if f.getPool, err = f.countingPool(appDSN, nil); err != nil {
		return err
	}
	if f.getRLS, err = NewRLS(f.getPool, nil); err != nil {
		return err
	}
	if f.getSchemas, err = NewSchemas(f.getPool, nil); err != nil {
		return err
	}
	if f.execPool, err = f.countingPool(appDSN, func(c *pgxpool.Config) { c.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec }); err != nil {
		return err
	}
	if f.bigCache, err = f.countingPool(appDSN, func(c *pgxpool.Config) { c.ConnConfig.StatementCacheCapacity = 4 * benchTenants }); err != nil {
		return err
	}
	generic := func(c *pgxpool.Config) { c.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan" }
	if f.genericPool, err = f.countingPool(appDSN, generic); err != nil {
		return err
	}
	if f.bigGeneric, err = f.countingPool(appDSN, func(c *pgxpool.Config) {
		c.ConnConfig.StatementCacheCapacity = 4 * benchTenants
		generic(c)
	}); err != nil {
		return err
	}
	if f.schemasGen, err = NewSchemas(f.genericPool, nil); err != nil {
		return err
	}
	if err := CheckAppRole(ctx, f.appPool); err != nil {
		return err
	}
	if f.rls, err = NewRLS(f.appPool, nil); err != nil {
		return err
	}
	f.schemas, err = NewSchemas(f.appPool, nil)
	return err
}

// countingPool opens a pool of one connection that counts its network
// writes in f.writes; adjust, if set, changes its configuration.
func (f *benchData) countingPool(dsn string, adjust func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 1
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	var d net.Dialer
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, &f.writes}, nil
	}
	if adjust != nil {
		adjust(cfg)
	}
	return pgxpool.NewWithConfig(context.Background(), cfg)
}

func benchPool(dsn string, n int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = n
	return pgxpool.NewWithConfig(context.Background(), cfg)
}

// benchCleanup drops the benchmark database, then its roles (which then
// own nothing), if they were made.
func benchCleanup() {
	f := &benchFixture
	if f.db == "" {
		return
	}
	for _, p := range []*pgxpool.Pool{f.appPool, f.getPool, f.execPool, f.bigCache, f.bigGeneric, f.genericPool} {
		if p != nil {
			p.Close()
		}
	}
	if f.admin != nil {
		f.admin.Close()
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, f.adminDSN)
	if err != nil {
		fmt.Fprintf(os.Stderr, "drop benchmark database: %v\n", err)
		return
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+f.db+" WITH (FORCE)"); err != nil {
		fmt.Fprintf(os.Stderr, "drop benchmark database: %v\n", err)
		return
	}
	if err := dropRoles(f.adminDSN, f.app, f.owner); err != nil {
		fmt.Fprintf(os.Stderr, "drop benchmark roles: %v\n", err)
	}
}

// readRows runs query in tx and checks it returns benchReadRows rows.
func readRows(ctx context.Context, tx store.Tx, query string, args ...any) error {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	n := 0
	var key string
	var content []byte
	for rows.Next() {
		if err := rows.Scan(&key, &content); err != nil {
			return err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n != benchReadRows {
		return fmt.Errorf("read %d rows, want %d", n, benchReadRows)
	}
	return nil
}

// benchTx opens a transaction with begin(id) as its first round trip
// and, if setParam, runs SELECT set_config('app.tenant_id', $1, true) as
// a round trip of its own before fn. It builds the baselines and the
// alternative ways of entering a tenant.
type benchTx struct {
	pool     *pgxpool.Pool
	begin    func(tenant.ID) string
	setParam bool
	// pipelined enters the tenant as RLS.InTx does, in one batch with the
	// first statement (begin and setParam are then unused).
	pipelined bool
}

func (p benchTx) InTx(ctx context.Context, id tenant.ID, fn func(store.Tx) error) error {
	if p.pipelined {
		c, err := p.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer c.Release()
		return runPipelined(ctx, c.Conn(), logger(nil), beginSetLocal(id), rlsEnter, []any{string(id)}, fn)
	}
	return runTx(ctx, p.pool, logger(nil), p.begin(id), func(tx pgx.Tx) error {
		if p.setParam {
			if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', $1, true)", string(id)); err != nil {
				return err
			}
		}
		return fn(pgTx{tx})
	})
}

func beginPlain(tenant.ID) string { return "BEGIN" }

func beginSetLocal(id tenant.ID) string {
	s, err := rlsBegin(id)
	if err != nil {
		panic(err)
	}
	return s
}

func beginSelectSetConfig(id tenant.ID) string {
	return "BEGIN; SELECT set_config('app.tenant_id', '" + string(id) + "', true)"
}

const (
	qRLS       = "SELECT key, content FROM public.tenantmcp_documents ORDER BY key LIMIT 50"
	qRLSWhere  = "SELECT key, content FROM public.tenantmcp_documents WHERE tenant_id = $1 ORDER BY key LIMIT 50"
	qPlain     = "SELECT key, content FROM public.bench_plain WHERE tenant_id = $1 ORDER BY key LIMIT 50"
	qSchema    = "SELECT key, content FROM tenantmcp_documents ORDER BY key LIMIT 50"
	benchConns = 4
)

// readVariant is one way of reading benchReadRows rows of one tenant.
type readVariant struct {
	name  string
	be    store.SQLBackend
	query string
	arg   bool // pass the tenant id as $1
	alt   bool // an alternative form, measured only by BenchmarkReadInterleaved
}

// readVariants are the compared reads, each one transaction:
//
//	rls             BEGIN, set_config('app.tenant_id', $1, true), SELECT … (no WHERE: the policy filters) | COMMIT (RLS.InTx)
//	where           the same, SELECT … WHERE tenant_id = $1 (twin table, no policy)
//	rls+where       the RLS table with the explicit WHERE as well (what RLS.List does)
//	where-no-config BEGIN | SELECT … WHERE tenant_id = $1 | COMMIT
//	schema          BEGIN; SET LOCAL ROLE; SET LOCAL search_path | SELECT … (no WHERE) | COMMIT (1,000 schemas)
//
// and two alternative ways of entering the tenant with RLS:
//
//	rls-4rt           BEGIN | SELECT set_config('app.tenant_id', $1, true) | SELECT … | COMMIT
//	rls-select-config BEGIN; SELECT set_config('app.tenant_id', '<id>', true) | SELECT … | COMMIT
//
// ("|" separates round trips.)
//
// rls and where differ only in what filters the rows: same pool, role,
// transaction shape, data, layout, index and query text apart from the
// WHERE clause.
func readVariants(f *benchData) []readVariant {
	return []readVariant{
		{"rls", f.rls, qRLS, false, false},
		{"where", benchTx{pool: f.appPool, pipelined: true}, qPlain, true, false},
		{"rls+where", f.rls, qRLSWhere, true, false},
		{"where-no-config", benchTx{pool: f.appPool, begin: beginPlain}, qPlain, true, false},
		{"schema", f.schemas, qSchema, false, false},
		{"rls-4rt", benchTx{pool: f.appPool, begin: beginPlain, setParam: true}, qRLS, false, true},
		{"rls-select-config", benchTx{pool: f.appPool, begin: beginSelectSetConfig}, qRLS, false, true},
	}
}

func (v readVariant) read(ctx context.Context, id tenant.ID) error {
	return v.be.InTx(ctx, id, func(tx store.Tx) error {
		if v.arg {
			return readRows(ctx, tx, v.query, string(id))
		}
		return readRows(ctx, tx, v.query)
	})
}

// warm reads every tenant once through v, so that v starts with its pages
// in shared buffers (the three copies of the data together do not fit in
// the default 128MB).
func (v readVariant) warm(b *testing.B, f *benchData) {
	for _, id := range f.tenants {
		if err := v.read(context.Background(), id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead reads 50 rows of one tenant (tenants in turn) out of
// 1,000,000 rows of 1,000 tenants, one transaction per read, for each of
// readVariants. "/parallel" runs 4 goroutines over a pool of 4
// connections. On a busy machine compare with BenchmarkReadInterleaved.
func BenchmarkRead(b *testing.B) {
	f := benchEnv(b)
	for _, v := range readVariants(f) {
		if v.alt {
			continue
		}
		b.Run(v.name, func(b *testing.B) {
			v.warm(b, f)
			ctx := context.Background()
			i := 0
			for b.Loop() {
				if err := v.read(ctx, f.tenants[i%len(f.tenants)]); err != nil {
					b.Fatal(err)
				}
				i += 7
			}
		})
		b.Run(v.name+"/parallel", func(b *testing.B) {
			v.warm(b, f)
			ctx := context.Background()
			b.SetParallelism(max(1, benchConns/runtime.GOMAXPROCS(0)))
			var mu sync.Mutex
			next := 0
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				i := next
				next += 101
				mu.Unlock()
				for pb.Next() {
					if err := v.read(ctx, f.tenants[i%len(f.tenants)]); err != nil {
						b.Error(err)
						return
					}
					i += 7
				}
			})
		})
	}
}

// BenchmarkReadInterleaved runs every read variant once per iteration, on
// the same tenant, in a random order, and reports each variant's median
// time per read (<variant>-µs) and the ratios of the medians rls/where and
// schema/where. Any load from elsewhere on the machine hits all variants
// alike, so the ratios hold even where absolute times wander. ns/op is the
// time of one whole round.
func BenchmarkReadInterleaved(b *testing.B) {
	f := benchEnv(b)
	vs := readVariants(f)
	for _, v := range vs {
		v.warm(b, f)
	}
	ctx := context.Background()
	names := make([]string, len(vs))
	for k, v := range vs {
		names[k] = v.name
	}
	med := interleave(b, names, 1, func(i, k int) error { return vs[k].read(ctx, f.tenants[(i*7)%len(f.tenants)]) })
	b.ReportMetric(med["rls"]/med["where"], "rls/where")
	b.ReportMetric(med["schema"]/med["where"], "schema/where")
}

// interleave runs variant k of names, run(i, k), once per iteration i of
// b.Loop, the variants in a fresh random order each time (seeded by
// seed), and reports each variant's median time per run as <name>-µs.
// Any load from elsewhere on the machine hits all variants alike, so
// ratios of the medians hold where absolute times wander. It returns the
// medians by name, in µs.
func interleave(b *testing.B, names []string, seed uint64, run func(i, k int) error) map[string]float64 {
	samples := make([][]time.Duration, len(names))
	rng := rand.New(rand.NewPCG(seed, seed+1))
	i := 0
	for b.Loop() {
		for _, k := range rng.Perm(len(names)) {
			start := time.Now()
			if err := run(i, k); err != nil {
				b.Fatalf("%s: %v", names[k], err)
			}
			samples[k] = append(samples[k], time.Since(start))
		}
		i++
	}
	med := map[string]float64{}
	for k, name := range names {
		slices.Sort(samples[k])
		med[name] = float64(samples[k][len(samples[k])/2]) / float64(time.Microsecond)
		b.ReportMetric(med[name], name+"-µs")
	}
	return med
}

// BenchmarkProvision measures provisioning one tenant schema (role,
// schema, grants, default privileges, migrations, catalog row) with 1,000
// schemas already present.
func BenchmarkProvision(b *testing.B) {
	f := benchEnv(b)
	p, err := NewProvisioner(f.admin, &ProvisionerOptions{OwnerRole: f.owner, AppRole: f.app})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if err := p.Provision(ctx, tenant.NewID()); err != nil {
			b.Fatal(err)
		}
	}
}
