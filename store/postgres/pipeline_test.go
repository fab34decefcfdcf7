package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// countingPool opens an application-role pool of one connection that
// counts the network writes it makes: each is one round trip, since the
// client then waits for the server's answer. The pool never pings a
// connection before handing it out, so only the operations write.
func (e *env) countingPool(t testing.TB) (*pgxpool.Pool, *atomic.Int64) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.WithUser(t, e.dsn, e.app, ""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	writes := new(atomic.Int64)
	var d net.Dialer
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, writes}, nil
	}
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, writes
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestRoundTrips counts the round trips of each operation once its
// statements are prepared on the connection: a documents operation is
// one, entering the tenant included; a one-statement InTx is two with
// RLS (the statement with BEGIN and the setting, then COMMIT) and three
// with schemas (BEGIN with the role and search_path, the statement,
// COMMIT).
func TestRoundTrips(t *testing.T) {
	for _, s := range strategies {
		t.Run(string(s), func(t *testing.T) {
			t.Parallel()
			e := setup(t, s)
			pool, writes := e.countingPool(t)
			b := e.newBackend(t, s, pool)
			ctx := context.Background()
			a, other := tenant.NewID(), tenant.NewID()
			var got []byte
			var keys []string
			inTx := func(id tenant.ID) error {
				return b.InTx(ctx, id, func(tx store.Tx) error {
					var n int
					return tx.QueryRow(ctx, "SELECT count(*) FROM tenantmcp_documents WHERE key <> $1", "x").Scan(&n)
				})
			}
			ops := []struct {
				name string
				want int64
				run  func(tenant.ID) error
			}{
				{"Put", 1, func(id tenant.ID) error { return b.Put(ctx, id, "k", []byte("v")) }},
				{"Get", 1, func(id tenant.ID) (err error) { got, err = b.Get(ctx, id, "k"); return err }},
				{"List", 1, func(id tenant.ID) (err error) { keys, err = b.List(ctx, id, ""); return err }},
				{"Delete", 1, func(id tenant.ID) error { return b.Delete(ctx, id, "k") }},
				{"InTx", map[Strategy]int64{RowLevelSecurity: 2, SchemaPerTenant: 3}[s], inTx},
			}
			// Warm up: tenants provisioned, statements prepared.
			for _, id := range []tenant.ID{a, other} {
				for _, op := range ops {
					if err := op.run(id); err != nil {
						t.Fatalf("%s: %v", op.name, err)
					}
				}
			}
			// Tenants alternate on the one connection, as they do in a pool.
			for _, id := range []tenant.ID{a, other, a} {
				for _, op := range ops {
					before := writes.Load()
					if err := op.run(id); err != nil {
						t.Fatalf("%s: %v", op.name, err)
					}
					if n := writes.Load() - before; n != op.want {
						t.Errorf("%s: %d round trips, want %d", op.name, n, op.want)
					}
				}
			}
			if string(got) != "v" || len(keys) != 1 {
				t.Errorf("Get = %q, List = %q; want \"v\" and one key", got, keys)
			}
		})
	}
}

// TestPreparedOncePerConnection: every statement a request sends is
// prepared once on the connection, whichever tenant runs it: the tenant
// goes in as a parameter, never in the statement text.
func TestPreparedOncePerConnection(t *testing.T) {
	for _, s := range strategies {
		t.Run(string(s), func(t *testing.T) {
			t.Parallel()
			e := setup(t, s)
			pool := e.pool(t, 1)
			b := e.newBackend(t, s, pool)
			ctx := context.Background()
			tenants := ids(20)
			for _, id := range tenants {
				putDocs(t, b, id, 2)
				if _, err := b.Get(ctx, id, string(id)+"/doc000"); err != nil {
					t.Fatal(err)
				}
				if _, err := b.List(ctx, id, ""); err != nil {
					t.Fatal(err)
				}
				if err := b.Delete(ctx, id, string(id)+"/doc001"); err != nil {
					t.Fatal(err)
				}
			}
			stmts, err := textColumn(ctx, b, tenants[0], "", "SELECT statement FROM pg_prepared_statements WHERE statement <> $1", "")
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, q := range stmts {
				seen[q]++
				for _, id := range tenants {
					if strings.Contains(q, string(id)) {
						t.Errorf("a prepared statement names tenant %s: %s", id, q)
					}
				}
			}
			enter, get := rlsEnter, rlsGet
			if s == SchemaPerTenant {
				enter, get = schemaEnter, schemaGet
			}
			for _, q := range []string{enter, get} {
				if seen[q] != 1 {
					t.Errorf("%q prepared %d times on the connection, want 1 (prepared: %q)", q, seen[q], stmts)
				}
			}
			if len(stmts) > 8 {
				t.Errorf("%d statements prepared for 20 tenants, want a few: %q", len(stmts), stmts)
			}
		})
	}
}

// connIdle is stateOf plus what the server says: no backend of the
// application role is left inside a transaction (a connection that was
// discarded rather than rolled back would show here until its backend
// ends).
func (e *env) connIdle(t testing.TB, pool *pgxpool.Pool) connState {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var open int
		err := e.admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND usename = $1 AND (xact_start IS NOT NULL OR state = 'active')`, e.app).Scan(&open)
		if err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backends of %s still in a transaction", open, e.app)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	status := c.Conn().PgConn().TxStatus()
	c.Release()
	if status != 'I' {
		t.Errorf("the pool handed out a connection in transaction status %q", status)
	}
	return stateOf(t, pool)
}

// docsTable is the qualified name of tenant id's documents table.
func docsTable(s Strategy, id tenant.ID) string {
	if s == SchemaPerTenant {
		return ident(SchemaName(id)) + ".tenantmcp_documents"
	}
	return "public.tenantmcp_documents"
}

// TestPipelinedFailureLeavesNothing fails the one-round-trip documents
// operations and the batched first statement of InTx in the middle (after
// the tenant was entered): a statement error, a constraint violation, a
// cancellation while the statement waits for a lock, a panic. After each,
// the only connection of the pool is idle with no tenant setting, role or
// search_path; a statement error keeps the connection (rolled back, not
// discarded), and nothing was written.
func TestPipelinedFailureLeavesNothing(t *testing.T) {
	for _, s := range strategies {
		t.Run(string(s), func(t *testing.T) {
			t.Parallel()
			e := setup(t, s)
			pool := e.pool(t, 1)
			b := e.newBackend(t, s, pool)
			ctx := context.Background()
			id := tenant.NewID()
			if err := b.Put(ctx, id, "k", []byte("old")); err != nil { // provisions the schema
				t.Fatal(err)
			}
			e.superExec(t, "ALTER TABLE "+docsTable(s, id)+" ADD CONSTRAINT small_content CHECK (length(content) < 100)")
			clean := e.connIdle(t, pool)
			if clean.User != e.app || clean.Tenant != "" {
				t.Fatalf("connection state before: %+v", clean)
			}
			unchanged := func(what string) {
				t.Helper()
				if v, err := b.Get(ctx, id, "k"); err != nil || string(v) != "old" {
					t.Errorf("%s: document is %q, %v; want \"old\"", what, v, err)
				}
				if _, err := b.Get(ctx, id, "new"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s: a document of the failed operation: err = %v, want ErrNotFound", what, err)
				}
			}
			check := func(what string, err error, code string, samePID bool) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s: no error", what)
				}
				if code != "" && pgCode(err) != code {
					t.Errorf("%s: err = %v, want SQLSTATE %s", what, err, code)
				}
				after := e.connIdle(t, pool)
				if !samePID { // discarded or not: the connection from here on is the clean one
					clean.PID = after.PID
				}
				if diff := cmp.Diff(clean, after); diff != "" {
					t.Errorf("%s: connection state changed (-before +after):\n%s", what, diff)
				}
				unchanged(what)
			}

			check("Put with an invalid key", b.Put(ctx, id, "new\x00", []byte("x")), "22021", true)
			check("Put violating a constraint", b.Put(ctx, id, "k", bytes.Repeat([]byte("x"), 200)), "23514", true)
			_, err := b.List(ctx, id, "\x00")
			check("List with an invalid prefix", err, "22021", true)

			// Cancelled while the statement waits for a row lock: the
			// server is asked to cancel it, so it does not commit once the
			// lock is free.
			lockRow := func() (unlock func()) {
				tx, err := e.admin.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(ctx, "SELECT 1 FROM "+docsTable(s, id)+" WHERE key = 'k' FOR UPDATE"); err != nil {
					t.Fatal(err)
				}
				return func() { tx.Rollback(ctx) }
			}
			// cancelWhenBlocked cancels ctx once the operation waits for the
			// lock (or gives up when ctx ends otherwise).
			cancelWhenBlocked := func(ctx context.Context, cancel context.CancelFunc) {
				defer cancel()
				for ctx.Err() == nil {
					var n int
					if err := e.admin.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
						WHERE usename = $1 AND wait_event_type = 'Lock'`, e.app).Scan(&n); err != nil {
						t.Error(err)
						return
					}
					if n > 0 {
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			for _, op := range []struct {
				name string
				run  func(context.Context) error
			}{
				{"Put", func(ctx context.Context) error { return b.Put(ctx, id, "k", []byte("cancelled")) }},
				{"Delete", func(ctx context.Context) error { return b.Delete(ctx, id, "k") }},
				{"InTx", func(ctx context.Context) error {
					return b.InTx(ctx, id, func(tx store.Tx) error {
						_, err := tx.Exec(ctx, "UPDATE tenantmcp_documents SET content = $1 WHERE key = 'k'", []byte("cancelled"))
						return err
					})
				}},
			} {
				unlock := lockRow()
				cctx, cancel := context.WithCancel(ctx)
				var wg sync.WaitGroup
				wg.Go(func() { cancelWhenBlocked(cctx, cancel) })
				err := op.run(cctx)
				cancel()
				wg.Wait()
				unlock()
				if !errors.Is(err, context.Canceled) {
					t.Errorf("cancelled %s: err = %v, want context.Canceled", op.name, err)
				}
				check("cancelled "+op.name, err, "", false)
			}

			// The first statement of InTx, with arguments, goes in the batch
			// that enters the tenant.
			writeOther := func(ctx context.Context, tx store.Tx) error {
				_, err := tx.Exec(ctx, "INSERT INTO tenantmcp_documents (key, content) VALUES ($1, $2)", "new", bytes.Repeat([]byte("x"), 200))
				return err
			}
			check("InTx: first statement violates a constraint", b.InTx(ctx, id, func(tx store.Tx) error { return writeOther(ctx, tx) }), "23514", true)
			err = b.InTx(ctx, id, func(tx store.Tx) error {
				var n int
				return tx.QueryRow(ctx, "SELECT 1/$1::int", 0).Scan(&n)
			})
			check("InTx: first statement fails", err, "22012", true)
			sleepCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			err = b.InTx(sleepCtx, id, func(tx store.Tx) error {
				_, err := tx.Exec(sleepCtx, "INSERT INTO tenantmcp_documents (key, content) SELECT $1, 'x' FROM pg_sleep($2)", "new", 30.0)
				return err
			})
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("InTx cancelled mid-batch: err = %v, want context.DeadlineExceeded", err)
			}
			check("InTx cancelled mid-batch", err, "", false)

			// A panic with results unread: RLS's batched first statement is
			// read to its end and rolled back on the same connection; the
			// schema strategy's is a pgx.Tx, which pgx cannot roll back while
			// a result is unread, so it discards the connection.
			pending := s == RowLevelSecurity
			errBoom := errors.New("boom")
			for _, p := range []struct {
				name    string
				samePID bool
				fn      func(store.Tx) error
			}{
				{"after the first statement", true, func(tx store.Tx) error {
					if _, err := tx.Exec(ctx, "INSERT INTO tenantmcp_documents (key, content) VALUES ($1, 'x')", "new"); err != nil {
						t.Errorf("insert: %v", err)
					}
					panic(errBoom)
				}},
				{"with its row unread", pending, func(tx store.Tx) error {
					tx.QueryRow(ctx, "INSERT INTO tenantmcp_documents (key, content) VALUES ($1, 'x') RETURNING key", "new")
					panic(errBoom)
				}},
				{"with its rows open", pending, func(tx store.Tx) error {
					rows, err := tx.Query(ctx, "SELECT key FROM tenantmcp_documents WHERE key <> $1", "x")
					if err != nil {
						t.Errorf("query: %v", err)
					}
					rows.Next()
					panic(errBoom)
				}},
			} {
				err := func() (err error) {
					defer func() {
						if r := recover(); r != nil {
							err = r.(error)
						}
					}()
					return b.InTx(ctx, id, p.fn)
				}()
				if !errors.Is(err, errBoom) {
					t.Errorf("panic %s: err = %v, want the panic", p.name, err)
				}
				check("panic "+p.name, err, "", p.samePID)
			}
		})
	}
}

// TestPipelinedTxForms: InTx's batched first statement reads like any
// other (rows streamed, a row, a missing row, several statements without
// arguments), and the statements after it see its work.
func TestPipelinedTxForms(t *testing.T) {
	t.Parallel()
	e := setup(t, RowLevelSecurity)
	b := e.newBackend(t, RowLevelSecurity, e.pool(t, 1))
	ctx := context.Background()
	id := tenant.NewID()
	putDocs(t, b, id, 3)
	err := b.InTx(ctx, id, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, "SELECT key FROM tenantmcp_documents WHERE starts_with(key, $1) ORDER BY key", string(id))
		if err != nil {
			return err
		}
		var keys []string
		for rows.Next() { // not closed: ending them finishes the batch
			var k string
			if err := rows.Scan(&k); err != nil {
				return err
			}
			keys = append(keys, k)
		}
		if err := rows.Err(); err != nil || len(keys) != 3 {
			t.Errorf("first statement's rows: %q, %v; want 3 keys", keys, err)
		}
		n, err := tx.Exec(ctx, "DELETE FROM tenantmcp_documents WHERE key = $1", keys[0])
		if err != nil || n != 1 {
			t.Errorf("second statement: %d rows, %v", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = b.InTx(ctx, id, func(tx store.Tx) error {
		var c []byte
		if err := tx.QueryRow(ctx, "SELECT content FROM tenantmcp_documents WHERE key = $1", "missing").Scan(&c); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing row: err = %v, want store.ErrNotFound", err)
		}
		var setting string
		if err := tx.QueryRow(ctx, "SELECT current_setting('app.tenant_id')").Scan(&setting); err != nil || setting != string(id) {
			t.Errorf("tenant setting in the transaction: %q, %v", setting, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = b.InTx(ctx, id, func(tx store.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off; SET LOCAL work_mem = '8MB'"); err != nil {
			return err
		}
		var mem string
		if err := tx.QueryRow(ctx, "SHOW work_mem").Scan(&mem); err != nil || mem != "8MB" {
			t.Errorf("work_mem = %q, %v; want the first statements' 8MB", mem, err)
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM tenantmcp_documents", pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil || n != 2 {
			t.Errorf("statement with an exec mode: %d rows, %v; want 2", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.InTx(ctx, id, func(store.Tx) error { return nil }); err != nil {
		t.Errorf("empty transaction: %v", err)
	}
}

// limitedBackend returns a backend of strategy s over pool with l's
// AcquireTimeout and StatementTimeout; with schemas it provisions tenants
// on demand.
func (e *env) limitedBackend(t testing.TB, s Strategy, pool *pgxpool.Pool, l limits) backend {
	t.Helper()
	var b backend
	var err error
	if s == RowLevelSecurity {
		b, err = NewRLS(pool, &RLSOptions{AcquireTimeout: l.acquire, StatementTimeout: l.statement})
	} else {
		b, err = NewSchemas(pool, &SchemaOptions{Provisioner: e.provisioner(t), AcquireTimeout: l.acquire, StatementTimeout: l.statement})
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAcquireTimeout: with every connection busy, an operation waits at
// most AcquireTimeout and fails with ErrPoolTimeout, sending nothing.
func TestAcquireTimeout(t *testing.T) {
	for _, s := range strategies {
		t.Run(string(s), func(t *testing.T) {
			t.Parallel()
			e := setup(t, s)
			pool := e.pool(t, 1)
			b := e.limitedBackend(t, s, pool, limits{acquire: 50 * time.Millisecond})
			ctx := context.Background()
			id := tenant.NewID()
			if err := b.Put(ctx, id, "k", []byte("v")); err != nil {
				t.Fatal(err)
			}
			held, err := pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, getErr := b.Get(ctx, id, "k")
			txErr := b.InTx(ctx, id, func(store.Tx) error { t.Error("fn ran without a connection"); return nil })
			for what, err := range map[string]error{"Get": getErr, "Put": b.Put(ctx, id, "k", []byte("w")), "InTx": txErr} {
				if !errors.Is(err, ErrPoolTimeout) {
					t.Errorf("%s with the pool busy: err = %v, want ErrPoolTimeout", what, err)
				}
			}
			// The caller's own deadline is not the pool's timeout.
			short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
			_, err = b.Get(short, id, "k")
			cancel()
			if errors.Is(err, ErrPoolTimeout) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Get past the caller's deadline: err = %v, want context.DeadlineExceeded", err)
			}
			held.Release()
			if v, err := b.Get(ctx, id, "k"); err != nil || string(v) != "v" {
				t.Errorf("Get once a connection is free: %q, %v", v, err)
			}
		})
	}
}

// TestStatementTimeout: StatementTimeout bounds every statement of a
// tenant transaction, and ends with it.
func TestStatementTimeout(t *testing.T) {
	for _, s := range strategies {
		t.Run(string(s), func(t *testing.T) {
			t.Parallel()
			e := setup(t, s)
			pool := e.pool(t, 1)
			b := e.limitedBackend(t, s, pool, limits{statement: 100 * time.Millisecond})
			ctx := context.Background()
			id := tenant.NewID()
			putDocs(t, b, id, 1)
			clean := stateOf(t, pool)
			var err error
			for _, q := range []struct {
				what string
				args []any
			}{{"batched first statement", []any{1.0}}, {"simple first statement", nil}} {
				err := b.InTx(ctx, id, func(tx store.Tx) error {
					if q.args == nil {
						_, err := tx.Exec(ctx, "SELECT pg_sleep(1)")
						return err
					}
					_, err := tx.Exec(ctx, "SELECT pg_sleep($1)", q.args...)
					return err
				})
				wantCode(t, err, "57014", q.what) // query_canceled: statement timeout
			}
			var timeout string
			err = b.InTx(ctx, id, func(tx store.Tx) error {
				return tx.QueryRow(ctx, "SELECT current_setting('statement_timeout')").Scan(&timeout)
			})
			if err != nil || timeout != "100ms" {
				t.Errorf("statement_timeout in a tenant transaction = %q, %v; want 100ms", timeout, err)
			}
			if diff := cmp.Diff(clean, stateOf(t, pool)); diff != "" {
				t.Errorf("connection state changed (-before +after):\n%s", diff)
			}
			if err := pool.QueryRow(ctx, "SELECT current_setting('statement_timeout')").Scan(&timeout); err != nil || timeout != "0" {
				t.Errorf("statement_timeout after the transaction = %q, %v; want the server's 0", timeout, err)
			}
		})
	}
}

// pkeyScan matches a scan of the documents' primary key (a bitmap scan
// for the few rows of a List is one too); indexCond an index condition on
// tenant_id.
var (
	pkeyScan  = regexp.MustCompile(`(Index Scan|Index Only Scan|Bitmap Index Scan) (using|on) tenantmcp_documents_pkey`)
	indexCond = regexp.MustCompile(`Index Cond: \(+tenant_id = `)
)

// TestRLSPreparedPlans extends TestRLSPolicyUsesIndex to the statements
// the documents operations prepare once per connection: on a table of
// 10,000 rows of 50 tenants, after tenants have taken turns on the one
// connection, Get's and Delete's statements run their cached generic plan
// (they are not re-planned per execution or per tenant), and the generic
// and custom plans of every statement use the primary key with the tenant
// as index condition.
func TestRLSPreparedPlans(t *testing.T) {
	t.Parallel()
	e := setup(t, RowLevelSecurity)
	pool := e.pool(t, 1)
	b := e.newBackend(t, RowLevelSecurity, pool)
	ctx := context.Background()
	tenants := ids(50)
	i := 0
	_, err := e.admin.CopyFrom(ctx, pgx.Identifier{"public", "tenantmcp_documents"}, []string{"tenant_id", "key", "content"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == 10000 {
				return nil, nil
			}
			i++
			return []any{string(tenants[i%50]), fmt.Sprintf("doc/%05d", i), []byte("content")}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	e.superExec(t, "ANALYZE public.tenantmcp_documents")
	for round := range 10 {
		for _, id := range tenants[:5] {
			if _, err := b.Get(ctx, id, "missing"); !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
			if _, err := b.List(ctx, id, "doc/001"); err != nil {
				t.Fatal(err)
			}
			if err := b.Delete(ctx, id, "missing"); !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
		}
		_ = round
	}
	type prepared struct {
		name           string
		generic, total int64
	}
	stmts := map[string]prepared{}
	err = b.InTx(ctx, tenants[0], func(tx store.Tx) error {
		rows, err := tx.Query(ctx, "SELECT name, statement, generic_plans, generic_plans + custom_plans FROM pg_prepared_statements WHERE statement = ANY($1)",
			[]string{rlsGet, rlsList, rlsDelete})
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p prepared
			var q string
			if err := rows.Scan(&p.name, &q, &p.generic, &p.total); err != nil {
				return err
			}
			stmts[q] = p
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		sql, args string
		generic   bool // runs its cached generic plan
	}{
		{rlsGet, "($1, 'doc/00050')", true},
		// The prefix becomes an index range only as a constant, so a plan
		// for the values always wins: List is planned at every execution.
		{rlsList, "($1, 'doc/001')", false},
		{rlsDelete, "($1, 'missing')", true},
	} {
		p, ok := stmts[q.sql]
		if !ok {
			t.Errorf("%q is not prepared on the connection", q.sql)
			continue
		}
		// PostgreSQL plans the first five executions for their values,
		// then keeps a generic plan that costs no more.
		if q.generic && (p.total < 50 || p.generic < p.total-5) {
			t.Errorf("%q: %d of %d executions ran the cached generic plan, want all but the first 5", q.sql, p.generic, p.total)
		}
		for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
			// EXPLAIN EXECUTE takes no bind parameters: the tenant goes in
			// as a literal, after checking it is an id.
			args := strings.Replace(q.args, "$1", "'"+string(tenants[0])+"'", 1)
			text, err := explain(ctx, b, tenants[0], "SET LOCAL plan_cache_mode = "+mode, "EXPLAIN EXECUTE "+ident(p.name)+args)
			if err != nil {
				t.Fatal(err)
			}
			if !pkeyScan.MatchString(text) {
				t.Errorf("%q, %s: not an index scan of the primary key:\n%s", q.sql, mode, text)
			}
			// The planner puts the explicit tenant_id = $1 in the index
			// condition and, since the policy's tenant_id =
			// current_setting('app.tenant_id', true) then implies it, checks
			// the policy once per execution ("One-Time Filter").
			if !indexCond.MatchString(text) {
				t.Errorf("%q, %s: the tenant is not an index condition:\n%s", q.sql, mode, text)
			}
		}
	}
}

// TestQueryModes: with pgx's exec and simple_protocol modes (what
// PgBouncer without prepared statements needs) both strategies work the
// same, tenants taking turns on one connection, and the schema strategy
// prepares nothing.
func TestQueryModes(t *testing.T) {
	for _, s := range strategies {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
			t.Run(string(s)+"/"+mode.String(), func(t *testing.T) {
				t.Parallel()
				e := setup(t, s)
				cfg, err := pgxpool.ParseConfig(testenv.WithUser(t, e.dsn, e.app, ""))
				if err != nil {
					t.Fatal(err)
				}
				cfg.MaxConns = 1
				cfg.ConnConfig.DefaultQueryExecMode = mode
				pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(pool.Close)
				b := e.newBackend(t, s, pool)
				ctx := context.Background()
				tenants := ids(2)
				for round := range 3 {
					for _, id := range tenants {
						key := fmt.Sprintf("k%d", round)
						if err := b.Put(ctx, id, key, []byte(id)); err != nil {
							t.Fatalf("Put: %v", err)
						}
						if v, err := b.Get(ctx, id, key); err != nil || string(v) != string(id) {
							t.Fatalf("Get = %q, %v", v, err)
						}
						if keys, err := b.List(ctx, id, ""); err != nil || len(keys) != 1 {
							t.Fatalf("List = %q, %v; want the tenant's one key", keys, err)
						}
						if err := b.Delete(ctx, id, key); err != nil {
							t.Fatalf("Delete: %v", err)
						}
						err := b.InTx(ctx, id, func(tx store.Tx) error {
							var n int
							return tx.QueryRow(ctx, "SELECT count(*) FROM tenantmcp_documents WHERE key <> $1", "x").Scan(&n)
						})
						if err != nil {
							t.Fatalf("InTx: %v", err)
						}
					}
				}
				var prepared int
				if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE statement = ANY($1)", schemaDocs[:]).Scan(&prepared); err != nil {
					t.Fatal(err)
				}
				if prepared != 0 {
					t.Errorf("%d documents statements prepared in %s mode, want none", prepared, mode)
				}
				if diff := cmp.Diff(connState{PID: stateOf(t, pool).PID, User: e.app, SearchPath: `"$user", public`}, stateOf(t, pool)); diff != "" {
					t.Errorf("connection state (-want +got):\n%s", diff)
				}
			})
		}
	}
}
