package pgstore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/pgstore"
	"github.com/tenantmcp/tenantmcp/registry/registrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestContract runs the suite with one database and a fresh schema per
// subtest (which also exercises Options.Schema).
func TestContract(t *testing.T) {
	t.Parallel()
	pool := newPool(t, testenv.Postgres(t))
	registrytest.Run(t, func(t *testing.T) registry.Store {
		s := pgstore.New(pool, &pgstore.Options{Schema: "reg_" + testenv.Suffix()})
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		return s
	})
}

func TestOpenPublicSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	s, err := pgstore.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec := registrytest.Record("https://idp.example.com/", "org_1")
	if err := s.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	// The table is public.tenantmcp_tenants, with jsonb columns.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var region string
	if err := conn.QueryRow(ctx, `SELECT config->>'region' FROM public.tenantmcp_tenants WHERE id = $1`, string(rec.ID)).Scan(&region); err != nil {
		t.Fatal(err)
	}
	if region != "eu-west-1" {
		t.Errorf("config->>'region' = %q, want eu-west-1", region)
	}
	var typ string
	if err := conn.QueryRow(ctx, `SELECT data_type FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = 'tenantmcp_tenants' AND column_name = 'flags'`).Scan(&typ); err != nil {
		t.Fatal(err)
	}
	if typ != "jsonb" {
		t.Errorf("flags column type = %q, want jsonb", typ)
	}
	// A second Open (another replica) finds the schema current.
	s2, err := pgstore.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.GetByID(ctx, rec.ID); err != nil {
		t.Error(err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	_, err := pgstore.Open(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", nil)
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if _, err := pgstore.Open(context.Background(), "::not a dsn::", nil); err == nil {
		t.Fatal("Open of a malformed DSN succeeded")
	}
}

// Replicas starting together migrate a fresh schema exactly once.
func TestConcurrentMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	schema := `odd "schema"; DROP TABLE x; --`
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() {
			s, err := pgstore.Open(ctx, dsn, &pgstore.Options{Schema: schema, MaxConns: 2})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	pool := newPool(t, dsn)
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{schema, "tenantmcp_registry_version"}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != pgstore.SchemaVersion {
		t.Errorf("%d version rows, want one per migration (%d)", n, pgstore.SchemaVersion)
	}
	s := pgstore.New(pool, &pgstore.Options{Schema: schema})
	if err := s.Migrate(ctx); err != nil {
		t.Errorf("Migrate again: %v", err)
	}
	if err := s.Create(ctx, registrytest.Record("https://idp.example.com/", "org_1")); err != nil {
		t.Errorf("Create in the odd schema: %v", err)
	}
}

// GrantTo lets a less privileged role use the registry, and that role can
// run Migrate on a current schema.
func TestGrantTo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	role := "tmcp_regapp_" + testenv.Suffix()
	admin := newPool(t, dsn)
	if _, err := admin.Exec(ctx, `CREATE ROLE `+role+` LOGIN`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), `DROP OWNED BY `+role+`; DROP ROLE `+role); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	if err := pgstore.New(admin, &pgstore.Options{Schema: "control", GrantTo: role}).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	app, err := pgstore.Open(ctx, testenv.WithUser(t, dsn, role, ""), &pgstore.Options{Schema: "control"})
	if err != nil {
		t.Fatalf("Open as the granted role: %v", err)
	}
	defer app.Close()
	// The role may listen for changes and its writes notify (LISTEN and
	// NOTIFY need no grant).
	changes := registrytest.Watch(t, app)
	changes.Ready(t)
	rec := changes.ExpectCreate(t, app, "org_1")
	if _, err := app.Get(ctx, rec.Issuer, rec.ExternalID); err != nil {
		t.Fatal(err)
	}
	// The role may take, renew and release leases.
	now := time.Now().UTC()
	l := registry.Lease{Issuer: rec.Issuer, ExternalID: rec.ExternalID, Tenant: rec.ID, Operation: "archive",
		Holder: "ops", Token: "tok", AcquiredAt: now, ExpiresAt: now.Add(time.Minute)}
	if err := app.AcquireLease(ctx, l); err != nil {
		t.Errorf("AcquireLease as the granted role: %v", err)
	}
	if err := app.RenewLease(ctx, l.Issuer, l.ExternalID, l.Token, now.Add(2*time.Minute)); err != nil {
		t.Errorf("RenewLease as the granted role: %v", err)
	}
	if err := app.ReleaseLease(ctx, l.Issuer, l.ExternalID, l.Token); err != nil {
		t.Errorf("ReleaseLease as the granted role: %v", err)
	}
	// The role may not change the schema.
	_, err = pgstore.Open(ctx, testenv.WithUser(t, dsn, role, ""), &pgstore.Options{Schema: "other"})
	if err == nil || !strings.Contains(err.Error(), "create schema") {
		t.Errorf("Open of a new schema as the app role: err = %v, want a create schema error", err)
	}
}

// A registry migrated by an older version (no lease table), used by a
// server that does not migrate: taking a lease fails saying what is
// missing and what to do, and the records are still served.
func TestLeaseOnAnOlderSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := newPool(t, testenv.Postgres(t))
	s := pgstore.New(pool, nil)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `DROP TABLE public.`+pgstore.LeaseTableName+`; DELETE FROM public.tenantmcp_registry_version WHERE version = 3`); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	err := s.AcquireLease(ctx, registry.Lease{Issuer: "https://idp.example.com/", ExternalID: "org_1", Token: "t", AcquiredAt: now, ExpiresAt: now.Add(time.Minute)})
	if err == nil || !strings.Contains(err.Error(), pgstore.LeaseTableName+`" does not exist`) || !strings.Contains(err.Error(), "migrate it") {
		t.Errorf("AcquireLease without the lease table: err = %v, want it to name the table and say to migrate", err)
	}
	if err := s.Create(ctx, registrytest.Record("https://idp.example.com/", "org_1")); err != nil {
		t.Errorf("Create on the older schema: %v", err)
	}
	// Migrate brings the table back.
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.AcquireLease(ctx, registry.Lease{Issuer: "https://idp.example.com/", ExternalID: "org_1", Token: "t", AcquiredAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Errorf("AcquireLease after Migrate: %v", err)
	}
}

func TestUniqueViolationMapsToErrExists(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := pgstore.Open(ctx, testenv.Postgres(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := registrytest.Record("https://idp.example.com/", "org_1")
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	err = s.Create(ctx, registrytest.Record("https://idp.example.com/", "org_1"))
	if !errors.Is(err, registry.ErrExists) || !strings.Contains(err.Error(), `"org_1"`) {
		t.Errorf("duplicate key: err = %v", err)
	}
	b := registrytest.Record("https://idp.example.com/", "org_2")
	b.ID = a.ID
	err = s.Create(ctx, b)
	if !errors.Is(err, registry.ErrExists) || !strings.Contains(err.Error(), string(a.ID)) {
		t.Errorf("duplicate id: err = %v", err)
	}
}
