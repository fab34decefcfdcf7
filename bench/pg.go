package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	tmconfig "github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/pgstore"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/postgres"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// defaultPostgres is used when TENANTMCP_TEST_POSTGRES is unset (the same
// default as the repository's tests).
const defaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// docKey and docContent are the document every tenant has in (e); the
// get_document call reads it.
const docKey = "bench/doc"

func docContent(rec *registry.Tenant) []byte {
	return []byte("document of " + rec.ExternalID + " " + string(rec.ID))
}

// pgEnv is (e)'s database: a fresh database with its own owner and
// application roles, set up with postgres.Setup and migrated for row level
// security; the server connects as the application role.
type pgEnv struct {
	adminDSN   string // the server's superuser DSN (to drop everything)
	db         string
	owner, app string
	admin      *pgxpool.Pool // superuser, in db
	appPool    *pgxpool.Pool // application role, in db
	regStore   *pgstore.Store
	rls        *postgres.RLS
}

func randSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func withDB(dsn, db, user string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	u.Path = "/" + db
	if user != "" {
		u.User = url.User(user)
	}
	return u.String(), nil
}

// errNoPostgres means PostgreSQL was not reachable; (e) is skipped.
var errNoPostgres = errors.New("PostgreSQL not reachable")

// openPG creates the database and roles. poolSize bounds the application
// pool (one connection per load connection is plenty). With timeouts,
// (e)'s documents backend has serve's default acquire and statement
// timeouts, as a deployment that leaves them alone runs.
func openPG(ctx context.Context, adminDSN string, poolSize int, timeouts bool) (_ *pgEnv, err error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, adminDSN)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", errNoPostgres, redact(adminDSN), err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	sfx := randSuffix()
	e := &pgEnv{adminDSN: adminDSN, db: "tmcp_bench_" + sfx, owner: "tmcp_bench_owner_" + sfx, app: "tmcp_bench_app_" + sfx}
	if _, err := c.Exec(ctx, "CREATE DATABASE "+e.db); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	dsn, err := withDB(adminDSN, e.db, "")
	if err != nil {
		return nil, err
	}
	if err := postgres.Setup(ctx, dsn, &postgres.SetupOptions{OwnerRole: e.owner, AppRole: e.app}); err != nil {
		return nil, err
	}
	if e.admin, err = pgxpool.New(ctx, dsn); err != nil {
		return nil, err
	}
	if err := postgres.Migrate(ctx, e.admin, postgres.RowLevelSecurity, &postgres.MigrateOptions{OwnerRole: e.owner, AppRole: e.app}); err != nil {
		return nil, err
	}
	if err := pgstore.New(e.admin, &pgstore.Options{GrantTo: e.app}).Migrate(ctx); err != nil {
		return nil, err
	}
	appDSN, err := withDB(adminDSN, e.db, e.app)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(appDSN)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(poolSize)
	cfg.ConnConfig.RuntimeParams["application_name"] = appNameE
	if e.appPool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, err
	}
	if err := postgres.CheckAppRole(ctx, e.appPool); err != nil {
		return nil, err
	}
	var opts postgres.RLSOptions
	if timeouts {
		d := tmconfig.Default().Database
		opts.AcquireTimeout, opts.StatementTimeout = d.AcquireTimeout, d.StatementTimeout
	}
	if e.rls, err = postgres.NewRLS(e.appPool, &opts); err != nil {
		return nil, err
	}
	e.regStore = pgstore.New(e.appPool, nil)
	return e, nil
}

// The application_name of (e)'s and (f)'s pools, by which the bench
// finds their backends (pgEnv.backends).
const (
	appNameE = "tenantmcp bench (e)"
	appNameF = "tenantmcp bench (f)"
)

// backends returns a function listing the process ids of the backends
// connected with application_name app, for workload.backends.
func (e *pgEnv) backends(app string) func() ([]int, error) {
	return func() ([]int, error) {
		rows, err := e.admin.Query(context.Background(),
			"SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()", app)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[int])
	}
}

func (e *pgEnv) set() *store.Set { return &store.Set{Docs: e.rls, SQL: e.rls} }

// seed stores the tenant's document.
func (e *pgEnv) seed(ctx context.Context, rec *registry.Tenant) error {
	return e.rls.Put(ctx, rec.ID, docKey, docContent(rec))
}

// rows counts the documents (as the superuser, which RLS does not
// filter).
func (e *pgEnv) rows(ctx context.Context) (int64, error) {
	var n int64
	err := e.admin.QueryRow(ctx, "SELECT count(*) FROM public.tenantmcp_documents").Scan(&n)
	return n, err
}

// fill adds filler documents (other keys) for the given tenants until the
// table holds about total rows, with COPY as the superuser (so the test of
// RLS at scale does not take an hour to set up).
func (e *pgEnv) fill(ctx context.Context, ids []tenant.ID, total int64) error {
	have, err := e.rows(ctx)
	if err != nil {
		return err
	}
	need := total - have
	if need <= 0 || len(ids) == 0 {
		return nil
	}
	per := need / int64(len(ids))
	content := []byte("filler document: the table is large so that the planner and the index do real work")
	var i int64
	now := time.Now()
	_, err = e.admin.CopyFrom(ctx, pgx.Identifier{"public", "tenantmcp_documents"},
		[]string{"tenant_id", "key", "content", "updated_at"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i >= per*int64(len(ids)) {
				return nil, nil
			}
			// Tenant by tenant, as rows arrive in a real deployment over time
			// would not be, but so the COPY stays sequential and cheap.
			id := ids[i/per]
			k := i % per
			i++
			return []any{string(id), fmt.Sprintf("fill/%08d", k), content, now}, nil
		}))
	if err != nil {
		return fmt.Errorf("fill documents: %w", err)
	}
	_, err = e.admin.Exec(ctx, "ANALYZE public.tenantmcp_documents")
	return err
}

// Close drops the database and the roles.
func (e *pgEnv) Close() {
	if e.appPool != nil {
		e.appPool.Close()
	}
	if e.admin != nil {
		e.admin.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, e.adminDSN)
	if err != nil {
		fmt.Printf("warning: could not drop database %s and roles %s, %s: %v\n", e.db, e.owner, e.app, err)
		return
	}
	defer c.Close(ctx)
	for _, stmt := range []string{
		"DROP DATABASE IF EXISTS " + e.db + " WITH (FORCE)",
		"DROP ROLE IF EXISTS " + e.app,
		"DROP ROLE IF EXISTS " + e.owner,
	} {
		if _, err := c.Exec(ctx, stmt); err != nil {
			fmt.Printf("warning: %s: %v\n", stmt, err)
		}
	}
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
