package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// What BenchmarkGet compares: one document of one tenant (100 bytes) by
// key, out of the same 1,000,000 rows as BenchmarkRead, as each way of
// isolating tenants sends it, each over a pool of one connection (warmed
// up for every tenant before it is timed). "|" separates round trips.
//
//	bare              SELECT content FROM bench_plain WHERE tenant_id = $1 AND key = $2, on the pool, no transaction (no isolation: the reference)
//	rls               RLS.Get: set_config('app.tenant_id', $1, true), the SELECT, Sync (one implicit transaction)
//	rls-begin-commit  BEGIN, set_config, the SELECT, COMMIT, Sync: the same with an explicit transaction
//	rls-3rt           BEGIN; SET LOCAL app.tenant_id = '<id>' | the SELECT | COMMIT: RLS.Get before the pipeline
//	schema            Schemas.Get: set_config('role'), set_config('search_path'), the SELECT (prepared, unqualified), Sync
//	schema-3rt        BEGIN; SET LOCAL ROLE; SET LOCAL search_path | the SELECT | COMMIT: Schemas.Get before the pipeline
//	schema-unnamed    as schema, nothing prepared (pgx's exec mode): parsed and planned at every read
//	schema-generic    as schema, with plan_cache_mode = force_generic_plan
//	schema-qualified  set_config('role') only, then SELECT … FROM "t_<id>".tenantmcp_documents: a statement per tenant, prepared once per connection and tenant (in the tenant's role: parsing a qualified name needs USAGE on the schema)
//	schema-qualified-generic  the same with plan_cache_mode = force_generic_plan (a prepared statement is otherwise planned for its values at its first 5 executions)
type getVariant struct {
	name string
	pool *pgxpool.Pool // whose backends' CPU time BenchmarkGet reports
	get  func(ctx context.Context, id tenant.ID, key string) ([]byte, error)
}

const qBare = "SELECT content FROM public.bench_plain WHERE tenant_id = $1 AND key = $2"

func getVariants(f *benchData) []getVariant {
	scan := func(row pgx.Row) ([]byte, error) {
		var v []byte
		err := row.Scan(&v)
		return v, err
	}
	batch := func(pool *pgxpool.Pool, queue func(*pgx.Batch)) ([]byte, error) {
		c, err := pool.Acquire(context.Background())
		if err != nil {
			return nil, err
		}
		defer c.Release()
		b := &pgx.Batch{}
		queue(b)
		br := c.SendBatch(context.Background(), b)
		defer br.Close()
		var v []byte
		for i, q := range b.QueuedQueries {
			if strings.HasPrefix(q.SQL, "SELECT content") {
				if err := br.QueryRow().Scan(&v); err != nil {
					return nil, err
				}
				continue
			} else if _, err := br.Exec(); err != nil {
				return nil, fmt.Errorf("statement %d: %w", i, err)
			}
		}
		return v, br.Close()
	}
	threeTrips := func(ctx context.Context, begin, query string, args ...any) ([]byte, error) {
		var v []byte
		err := runTx(ctx, f.getPool, logger(nil), begin, func(tx pgx.Tx) error { return tx.QueryRow(ctx, query, args...).Scan(&v) })
		return v, err
	}
	return []getVariant{
		{"bare", f.getPool, func(ctx context.Context, id tenant.ID, key string) ([]byte, error) {
			return scan(f.getPool.QueryRow(ctx, qBare, string(id), key))
		}},
		{"rls", f.getPool, f.getRLS.Get},
		{"rls-begin-commit", f.getPool, func(ctx context.Context, id tenant.ID, key string) ([]byte, error) {
			return batch(f.getPool, func(b *pgx.Batch) {
				b.Queue("BEGIN")
				b.Queue(rlsEnter, string(id))
				b.Queue(rlsGet, string(id), key)
				b.Queue("COMMIT")
			})
		}},
		{"rls-3rt", f.getPool, func(ctx context.Context, id tenant.ID, key string) ([]byte, error) {
			return threeTrips(ctx, beginSetLocal(id), rlsGet, string(id), key)
		}},
		{"schema", f.getPool, f.getSchemas.Get},
		{"schema-3rt", f.getPool, func(ctx context.Context, id tenant.ID, key string) ([]byte, error) {
			return threeTrips(ctx, f.schemas.begin(id), schemaGet, key)
		}},
		{"schema-unnamed", f.execPool, func(ctx context.Context, id tenant.ID, key string) ([]byte, error) {
			enter := f.schemas.enter(id)
			return batch(f.execPool, func(b *pgx.Batch) {
				b.Queue(enter.sql, enter.args()...)
				b.Queue(schemaGet, key)
			})
		}},
		{"schema-generic", f.genericPool, f.schemasGen.Get},
		{"schema-qualified", f.bigCache, qualified(f, f.bigCache)},
		{"schema-qualified-generic", f.bigGeneric, qualified(f, f.bigGeneric)},
	}
}

// qualified is the schema-qualified variant over pool: set_config('role')
// only, then the tenant's own statement, prepared on first use per
// connection and tenant in the tenant's role (parsing a qualified name
// needs USAGE on the schema).
func qualified(f *benchData, pool *pgxpool.Pool) func(ctx context.Context, id tenant.ID, key string) ([]byte, error) {
	return func(ctx context.Context, id tenant.ID, key string) ([]byte, error) {
		q := "SELECT content FROM " + ident(SchemaName(id)) + ".tenantmcp_documents WHERE key = $1"
		c, err := pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		defer c.Release()
		if data := c.Conn().PgConn().CustomData(); data[q] == nil {
			err := txOn(ctx, c.Conn(), logger(nil), f.schemas.begin(id), func(pgx.Tx) error {
				_, err := c.Conn().Prepare(ctx, q, q)
				return err
			})
			if err != nil {
				return nil, err
			}
			data[q] = true
		}
		b := &pgx.Batch{}
		b.Queue("SELECT set_config('role', $1, true)", SchemaName(id))
		b.Queue(q, key)
		br := c.SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
		var v []byte
		err = br.QueryRow().Scan(&v)
		return v, err
	}
}

// benchKey is the key BenchmarkGet reads in its i-th read.
func benchKey(i int) string { return fmt.Sprintf("doc/%04d", (i*37)%benchRowsPerTenant) }

// warmGet reads every tenant once through v: statements get prepared on
// every connection they meet, pages read into shared buffers.
func warmGet(b *testing.B, f *benchData, v getVariant) {
	ctx := context.Background()
	for i, id := range f.tenants {
		if _, err := v.get(ctx, id, benchKey(i)); err != nil {
			b.Fatalf("%s: %v", v.name, err)
		}
	}
}

// backendCPU is the CPU time of the PostgreSQL backends of pool's
// connections so far (testenv.ProcessCPU: PostgreSQL on this machine,
// 10 ms ticks). ok is false where /proc cannot tell.
func backendCPU(pool *pgxpool.Pool) (d time.Duration, ok bool) {
	conns := pool.AcquireAllIdle(context.Background())
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for _, c := range conns {
		cpu, ok := testenv.ProcessCPU(int(c.Conn().PgConn().PID()), "postgres")
		if !ok {
			return 0, false
		}
		d += cpu
	}
	return d, true
}

// BenchmarkGet reads one document per operation through each of
// getVariants, alone (tenants in turn, every 7th, one goroutine), and
// reports the round trips per read (the client's network writes) and the
// CPU time of the PostgreSQL backends per read (pg-µs/op; coarse: /proc
// counts 10 ms ticks). Compare variants with BenchmarkGetInterleaved on
// a busy machine.
func BenchmarkGet(b *testing.B) {
	f := benchEnv(b)
	for _, v := range getVariants(f) {
		b.Run(v.name, func(b *testing.B) {
			warmGet(b, f, v)
			ctx := context.Background()
			writes := f.writes.Load()
			cpu, cpuOK := backendCPU(v.pool)
			i := 0
			for b.Loop() {
				id := f.tenants[(i*7)%len(f.tenants)]
				if _, err := v.get(ctx, id, benchKey(i)); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(f.writes.Load()-writes)/float64(i), "round-trips/op")
			if after, ok := backendCPU(v.pool); ok && cpuOK {
				b.ReportMetric(float64(after-cpu)/float64(time.Microsecond)/float64(i), "pg-µs/op")
			}
		})
	}
}

// BenchmarkGetInterleaved runs every variant of getVariants once per
// iteration, for the same tenant and key, in a new random order, and
// reports each variant's median time per read (<variant>-µs) and ratios
// of the medians: what isolation costs over the bare query (rls/bare,
// schema/bare), what the pipeline saved (rls-3rt/rls) and what schemas
// cost over RLS (schema/rls, schema-qualified/rls).
func BenchmarkGetInterleaved(b *testing.B) {
	f := benchEnv(b)
	vs := getVariants(f)
	for _, v := range vs {
		warmGet(b, f, v)
	}
	ctx := context.Background()
	names := make([]string, len(vs))
	for k, v := range vs {
		names[k] = v.name
	}
	med := interleave(b, names, 3, func(i, k int) error {
		_, err := vs[k].get(ctx, f.tenants[(i*7)%len(f.tenants)], benchKey(i))
		return err
	})
	for _, r := range [][2]string{{"rls", "bare"}, {"schema", "bare"}, {"rls-3rt", "rls"}, {"schema", "rls"}, {"schema-qualified", "rls"}, {"schema-qualified-generic", "rls"}} {
		b.ReportMetric(med[r[0]]/med[r[1]], r[0]+"/"+r[1])
	}
}
